//! The tutorial's ping and the liveness and readiness probes.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn ping_answers_that_the_server_is_healthy() {
    let app = spawn_app().await;
    let body = expect_json(app.api.ping().await, StatusCode::OK).await;
    assert_eq!(
        body,
        json!({"error": false, "message": "Server is healthy"}),
        "the tutorial's exact body"
    );
}

#[tokio::test]
async fn the_liveness_probe_answers_200_ok() {
    let app = spawn_app().await;
    let body = expect_json(app.api.health_live().await, StatusCode::OK).await;
    assert_eq!(body["status"], json!("ok"), "{body}");
}

#[tokio::test]
async fn the_readiness_probe_answers_200_ok_while_the_database_answers() {
    let app = spawn_app().await;
    let body = expect_json(app.api.health_ready().await, StatusCode::OK).await;
    assert_eq!(body["status"], json!("ok"), "{body}");
}

#[tokio::test]
async fn the_probes_stay_healthy_after_real_traffic() {
    let app = spawn_app().await;
    app.activated_user("probe@example.com").await;
    for path in ["/ping", "/health/live", "/health/ready"] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
}
