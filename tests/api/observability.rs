//! `GET /metrics`, request ids, and the one log line per request.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::process::{Server, sesame};
use crate::support::*;
use crate::support::{MailServer, find_query_param, find_six_digit_code};

/// The samples of a metrics page: `name{labels}` → value.
pub fn samples(page: &str) -> HashMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn metrics(app: &TestApp) -> HashMap<String, f64> {
    let resp = app.metrics_page().await;
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    samples(&resp.text().await.expect("body"))
}

/// The value of one sample; absent counts as 0 (a labelled series appears
/// on its first event).
fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

fn requests(method: &str, route: &str, status: u16) -> String {
    format!(r#"sesame_http_requests_total{{method="{method}",route="{route}",status="{status}"}}"#)
}

/// Polls the metrics page until `key` has `expected`.
async fn wait_for_metric(app: &TestApp, key: &str, expected: f64) -> HashMap<String, f64> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = metrics(app).await;
        if value(&now, key) == expected {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} is {} after {WAIT:?}, expected {expected}",
            value(&now, key)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_metrics_page_counts_a_known_sequence_of_requests() {
    let app = spawn_app().await;
    let before = metrics(&app).await;
    assert_eq!(value(&before, "sesame_signups_total"), 0.0);
    assert_eq!(
        value(&before, r#"sesame_logins_total{result="failed"}"#),
        0.0
    );
    let email = "counted@example.com";
    app.activated_user(email).await; // signup 201, activate 200
    let dup = app.signup(email).await;
    assert_eq!(dup.status(), StatusCode::CONFLICT);
    let tokens = app.login(email).await; // 200
    let wrong = app
        .post(
            "/users/login",
            json!({"email": email, "password": "not the password"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let access = str_field(&tokens, "accessToken");
    assert_eq!(app.api.me(&access).await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/users/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/no/such/page").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/users/signup").await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );

    let m = wait_for_metric(&app, "sesame_emails_sent_total", 1.0).await;
    for (key, expected) in [
        (requests("POST", "/users/signup", 201), 1.0),
        (requests("POST", "/users/signup", 409), 1.0),
        (requests("PATCH", "/users/activate", 200), 1.0),
        (requests("POST", "/users/login", 200), 1.0),
        (requests("POST", "/users/login", 401), 1.0),
        (requests("GET", "/users/me", 200), 1.0),
        (requests("GET", "/users/me", 401), 1.0),
        (requests("GET", "unmatched", 404), 1.0),
        (requests("GET", "/users/signup", 405), 1.0),
        (
            r#"sesame_http_request_duration_seconds_count{method="POST",route="/users/signup"}"#
                .into(),
            2.0,
        ),
        (
            r#"sesame_http_request_duration_seconds_bucket{method="POST",route="/users/login",le="+Inf"}"#
                .into(),
            2.0,
        ),
        (r#"sesame_logins_total{result="succeeded"}"#.into(), 1.0),
        (r#"sesame_logins_total{result="failed"}"#.into(), 1.0),
        ("sesame_signups_total".into(), 1.0),
        ("sesame_emails_queued_total".into(), 1.0),
        ("sesame_emails_sent_total".into(), 1.0),
        ("sesame_emails_failed_total".into(), 0.0),
        ("sesame_outbox_depth".into(), 0.0),
        ("sesame_active_sessions".into(), 1.0),
        // Nothing: the scrape is on the metrics listener, not the API's.
        ("sesame_http_requests_in_flight".into(), 0.0),
    ] {
        assert_eq!(value(&m, &key), expected, "{key}");
    }
    // Scrapes are not API requests.
    assert_eq!(value(&m, &requests("GET", "/metrics", 200)), 0.0);

    // Logging out ends the only session.
    let resp = app
        .request(Method::POST, "/users/logout", None, Some(&access))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let m = metrics(&app).await;
    assert_eq!(value(&m, "sesame_active_sessions"), 0.0);
}

#[tokio::test]
async fn the_metrics_page_carries_no_email_password_or_token() {
    let app = spawn_app().await;
    let email = "private-person@example.com";
    let (access, refresh) = app.logged_in_user(email).await;
    let page = app.metrics_page().await.text().await.expect("body");
    for secret in [email, "private-person", PASSWORD, &access, &refresh] {
        assert!(!page.contains(secret), "{secret:?} on the metrics page");
    }
}

#[tokio::test]
async fn each_application_counts_only_its_own_requests() {
    let busy = spawn_app().await;
    let quiet = spawn_app().await;
    for _ in 0..3 {
        busy.get("/ping").await;
    }
    assert_eq!(
        value(&metrics(&busy).await, &requests("GET", "/ping", 200)),
        3.0
    );
    assert_eq!(
        value(&metrics(&quiet).await, &requests("GET", "/ping", 200)),
        0.0
    );
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_proxys_id_is_kept() {
    let app = spawn_app().await;
    let mut seen = Vec::new();
    for path in ["/ping", "/ping", "/no/such/page"] {
        let resp = app.get(path).await;
        let id = resp.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(!id.is_empty());
        assert!(!seen.contains(&id), "ids are unique: {id}");
        seen.push(id);
    }
    let resp = app
        .client
        .get(format!("{}/ping", app.address))
        .header("X-Request-Id", "proxy-7f3a:42")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.headers()["x-request-id"], "proxy-7f3a:42");
    let resp = app
        .client
        .get(format!("{}/ping", app.address))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .expect("request");
    assert_ne!(resp.headers()["x-request-id"], "bad id with spaces");
}

fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// The whole account lifecycle against the binary with JSON logs: every
/// request leaves exactly one line with its id, method, route, status and
/// latency, and no line holds a password, code or token.
#[tokio::test]
async fn the_log_has_one_line_per_request_and_no_secret() {
    let mail = MailServer::start().await;
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_SMTP_URL", mail.url()).arg("serve");
    let mut server = Server::start(cmd).await;
    let client = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client");
    let url = |path: &str| format!("{}{path}", server.address);
    let email = "logged@example.com";
    let new_password = "an entirely new passphrase";
    let mut ids = Vec::new();

    let resp = client
        .post(url("/users/signup"))
        .json(&json!({"email": email, "password": PASSWORD, "confirmPassword": PASSWORD}))
        .send()
        .await
        .expect("signup");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let signup_id = request_id(&resp);
    ids.push(signup_id.clone());
    let code = find_six_digit_code(&mail.wait_for_mail_to(email, 1, WAIT).await.text_body())
        .expect("code");
    let resp = client
        .patch(url("/users/activate"))
        .json(&json!({"email": email, "code": code}))
        .send()
        .await
        .expect("activate");
    assert_eq!(resp.status(), StatusCode::OK);
    ids.push(request_id(&resp));
    let resp = client
        .post(url("/users/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    ids.push(request_id(&resp));
    let tokens: Value = resp.json().await.expect("tokens");
    let access = str_field(&tokens, "accessToken");
    let refresh = str_field(&tokens, "refreshToken");
    let resp = client
        .post(url("/users/token/refresh"))
        .json(&json!({"refreshToken": refresh}))
        .send()
        .await
        .expect("refresh");
    assert_eq!(resp.status(), StatusCode::OK);
    ids.push(request_id(&resp));
    let resp = client
        .get(url("/users/me"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("me");
    ids.push(request_id(&resp));
    let resp = client
        .patch(url("/users/forgot"))
        .json(&json!({"email": email}))
        .send()
        .await
        .expect("forgot");
    ids.push(request_id(&resp));
    let reset_token = find_query_param(
        &mail.wait_for_mail_to(email, 2, WAIT).await.text_body(),
        "token",
    )
    .expect("reset token");
    let resp = client
        .patch(url("/users/reset"))
        .json(&json!({"token": reset_token, "newPassword": new_password, "confirmPassword": new_password}))
        .send()
        .await
        .expect("reset");
    assert_eq!(resp.status(), StatusCode::OK);
    ids.push(request_id(&resp));
    // What an email link looks like when someone pastes it at the API.
    let resp = client
        .get(url(
            "/verify?email=logged%40example.com&code=913370&token=QUERYSECRET",
        ))
        .send()
        .await
        .expect("link");
    ids.push(request_id(&resp));

    server.terminate().await;
    assert!(server.wait().await.success());
    let output = server.output();
    let text = without_numbers_and_ids(&output);
    for secret in [
        PASSWORD,
        new_password,
        code.as_str(),
        access.as_str(),
        refresh.as_str(),
        reset_token.as_str(),
        "913370",
        "QUERYSECRET",
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} is in the log:\n{output}"
        );
    }

    let lines = server.log_lines();
    let request_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == json!("request"))
        .collect();
    assert_eq!(
        request_lines.len(),
        ids.len(),
        "one line per request:\n{output}"
    );
    for id in &ids {
        assert_eq!(
            request_lines
                .iter()
                .filter(|l| l["request_id"] == json!(id))
                .count(),
            1,
            "one line for request {id}"
        );
    }
    let signup = request_lines
        .iter()
        .find(|l| l["request_id"] == json!(signup_id))
        .expect("the signup's line");
    assert_eq!(signup["method"], json!("POST"));
    assert_eq!(signup["route"], json!("/users/signup"));
    assert_eq!(signup["status"], json!(201));
    assert!(signup["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0));
    assert_eq!(signup["level"], json!("INFO"));
}

/// The log without the fields where a 6-digit code could show up by chance
/// (timestamps, latencies, request ids), so the secret check cannot flake.
fn without_numbers_and_ids(output: &str) -> String {
    output
        .lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(mut fields)) => {
                for noisy in ["timestamp", "latency_ms", "request_id", "span"] {
                    fields.remove(noisy);
                }
                Value::Object(fields).to_string()
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
