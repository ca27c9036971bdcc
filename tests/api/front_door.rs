//! What a newcomer sees first: `GET /` sends a browser to Swagger UI, while
//! every other unknown route stays a JSON `404`.

use reqwest::header::{ALLOW, CONTENT_TYPE, LOCATION};
use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode};

use crate::support::*;

#[tokio::test]
async fn the_root_sends_a_browser_to_the_docs() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(WAIT)
        .build()
        .expect("client");

    for method in [Method::GET, Method::HEAD] {
        let resp = client
            .request(method.clone(), format!("{}/", app.address))
            .send()
            .await
            .expect("request reaches the server");
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{method} /");
        assert_eq!(
            resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()),
            Some("/docs"),
            "{method} /"
        );
    }

    // A browser follows it to Swagger UI.
    let resp = app.get("/").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.url().path(), "/docs");
    let content_type = resp.headers()[CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = resp.text().await.expect("body");
    assert!(
        page.contains("SwaggerUIBundle"),
        "not Swagger UI: {page:.200}"
    );
}

#[tokio::test]
async fn the_root_answers_other_methods_with_405_and_allow() {
    let app = spawn_app().await;

    let resp = app.post("/", serde_json::json!({})).await;

    let allow = resp
        .headers()
        .get(ALLOW)
        .map(|v| v.to_str().expect("ascii").to_owned());
    expect_error(resp, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    assert_eq!(allow.as_deref(), Some("GET, HEAD"));
}

#[tokio::test]
async fn other_unknown_routes_stay_json_404s() {
    let app = spawn_app().await;

    for path in ["/index.html", "/doc", "/docs/", "/users", "//"] {
        let resp = app.get(path).await;
        expect_error(resp, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    }
}
