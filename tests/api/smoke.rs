use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn the_whole_tutorial_flow_works_end_to_end() {
    let app = spawn_app().await;
    let referrer = app.activated_user("alice@example.com").await;
    let code = str_field(&referrer, "referralCode");
    app.signup_referred("bob@example.com", &code.to_lowercase())
        .await;
    let tokens = app.login("alice@example.com").await;
    let access = str_field(&tokens, "accessToken");
    let me = expect_json(app.api.me(&access).await, StatusCode::OK).await;
    assert_eq!(me["user"]["email"], json!("alice@example.com"));
    let referred = expect_json(
        app.get_auth("/users/referred", &access).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(referred["total"], json!(1));
    assert_eq!(referred["accounts"][0]["email"], json!("b***@example.com"));
    assert_eq!(referred["accounts"][0]["active"], json!(false));
}
