//! Transport-level rules every route shares: the error body for routing and
//! parsing failures, the body size limit (with and without `Content-Length`),
//! response headers, and the OpenAPI document and Swagger UI.

use std::collections::BTreeSet;

use reqwest::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// The body limit the size tests run with.
const LIMIT: usize = 1024;

/// Text that must never reach a client: SQL, source paths, panics.
const INTERNALS: [&str; 4] = ["sqlx", "SELECT", "/src/", "panicked"];

const STALE: &str =
    "openapi.json is stale: regenerate it with `cargo run -- openapi > openapi.json`";

// ---------------------------------------------------------------- helpers

/// Fails if `text` shows internals.
fn assert_no_internals(text: &str) {
    for needle in INTERNALS {
        assert!(
            !text.contains(needle),
            "an answer leaks internals ({needle:?}): {text}"
        );
    }
}

/// Asserts a contract error body with its status and code, plus the headers
/// every error carries; returns the headers and the body.
async fn expect_clean_error(
    resp: impl IntoAnswer,
    status: StatusCode,
    code: &str,
) -> (HeaderMap, Value) {
    let resp = resp.into_answer().await;
    let headers = resp.headers.clone();
    let body = expect_error(resp, status, code).await;
    assert_no_internals(&body.to_string());
    assert_eq!(
        header(&headers, "x-content-type-options"),
        Some("nosniff"),
        "{headers:?}"
    );
    assert!(
        header(&headers, "content-type").is_some_and(|ct| ct.starts_with("application/json")),
        "{headers:?}"
    );
    assert_eq!(
        header(&headers, "cache-control"),
        Some("no-store"),
        "{headers:?}"
    );
    (headers, body)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The methods of an `Allow` header, upper-cased.
fn allowed_methods(headers: &HeaderMap) -> BTreeSet<String> {
    let allow = header(headers, ALLOW.as_str())
        .unwrap_or_else(|| panic!("405 without an Allow header: {headers:?}"));
    allow
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect()
}

fn set(methods: &[&str]) -> BTreeSet<String> {
    methods.iter().map(|m| (*m).to_owned()).collect()
}

/// Sends `body` as-is with the given content type (reqwest sets `Content-Length`).
async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: impl Into<String>,
) -> Response {
    app.client
        .post(format!("{}{}", app.address, path))
        .header(CONTENT_TYPE, content_type)
        .body(body.into())
        .send()
        .await
        .expect("request reaches the server")
}

/// A well-formed signup body of exactly `len` bytes (padded with JSON whitespace).
fn signup_body_of_len(email: &str, len: usize) -> String {
    let body =
        json!({"email": email, "password": PASSWORD, "confirmPassword": PASSWORD}).to_string();
    assert!(
        body.len() < len,
        "cannot pad {} bytes down to {len}",
        body.len()
    );
    let mut padded = String::from("{");
    padded.push_str(&" ".repeat(len - body.len()));
    padded.push_str(&body[1..]);
    assert_eq!(padded.len(), len);
    padded
}

/// An HTTP answer read off a raw socket.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("body is not JSON: {:?}", self.body))
    }
}

/// Connects to the app, writes `head` then `chunks` (each as one HTTP chunk),
/// then the last chunk unless `finish` is false, and reads the answer. Write
/// errors are tolerated: the server may answer and hang up before reading all.
async fn send_chunked(app: &TestApp, head: &str, chunks: &[Vec<u8>], finish: bool) -> RawResponse {
    let addr = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect to the app");
    let mut request = head.as_bytes().to_vec();
    for chunk in chunks {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    if finish {
        request.extend_from_slice(b"0\r\n\r\n");
    }
    let _ = stream.write_all(&request).await;
    let _ = stream.flush().await;
    tokio::time::timeout(WAIT, read_response(&mut stream))
        .await
        .expect("the server answers in time")
}

/// A chunked `POST` head without `Content-Length`.
fn chunked_head(app: &TestApp, path: &str) -> String {
    let host = app.address.trim_start_matches("http://");
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
}

/// Reads one HTTP/1.1 answer: until its `Content-Length` is satisfied, its
/// chunked body ends, or the connection closes.
async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => panic!(
                "connection closed before a full response head: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let find_header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let length: Option<usize> = find_header("content-length").and_then(|l| l.parse().ok());
    let chunked = find_header("transfer-encoding").is_some_and(|te| te.contains("chunked"));
    loop {
        let done = match length {
            Some(len) => body.len() >= len,
            None => chunked && find(&body, b"0\r\n\r\n").is_some(),
        };
        if done {
            break;
        }
        match stream.read(&mut chunk).await {
            // A reset after the answer counts as the end of it.
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    if let Some(len) = length {
        body.truncate(len);
    } else if chunked {
        body = dechunk(&body);
    }
    RawResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(raw.len());
        out.extend_from_slice(&raw[start..end]);
        raw = raw.get(end + 2..).unwrap_or_default();
    }
    out
}

/// Asserts a raw answer is the contract's error with this status and code.
fn assert_raw_error(resp: &RawResponse, status: u16, code: &str) -> Value {
    assert_eq!(
        resp.status, status,
        "unexpected status; body: {}",
        resp.body
    );
    let body = resp.json();
    assert_eq!(body["error"], json!(true), "{body}");
    assert_eq!(body["code"], json!(code), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_no_internals(&resp.body);
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    body
}

async fn small_limit_app() -> TestApp {
    spawn_app_with(|config| config.max_body_bytes = LIMIT).await
}

/// The spec the running code describes, as `sesame openapi` prints it.
fn generated_spec() -> Value {
    let spec = sesame::api::service("http://localhost:5000").spec();
    serde_json::from_str(&spec).expect("the generated spec is JSON")
}

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation of the spec: (method, path, operation).
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let paths = spec["paths"].as_object().expect("spec has paths");
    let mut ops = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item is an object") {
            if HTTP_METHODS.contains(&method.as_str()) {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    assert!(!ops.is_empty(), "the spec lists no operations");
    ops
}

// ---------------------------------------------------------------- routing

#[tokio::test]
async fn an_unknown_route_answers_404_not_found_in_the_error_shape() {
    let app = spawn_app().await;
    for path in ["/nope", "/users/nope", "/users/me/nothing/here"] {
        let resp = app.get(path).await;
        let (_, body) = expect_clean_error(resp, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let keys: BTreeSet<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["error", "code", "message"]),
            "{path}: {body}"
        );
    }
    let resp = app.post("/nope", json!({})).await;
    expect_clean_error(resp, StatusCode::NOT_FOUND, "NOT_FOUND").await;
}

#[tokio::test]
async fn delete_on_ping_answers_405_and_allows_only_get() {
    let app = spawn_app().await;
    let resp = app.request(Method::DELETE, "/ping", None, None).await;
    let (headers, _) =
        expect_clean_error(resp, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    let allowed = allowed_methods(&headers);
    assert!(allowed.contains("GET"), "{allowed:?}");
    assert!(!allowed.contains("DELETE"), "{allowed:?}");
    assert!(allowed.is_subset(&set(&["GET", "HEAD"])), "{allowed:?}");
}

#[tokio::test]
async fn get_on_signup_answers_405_and_allows_only_post() {
    let app = spawn_app().await;
    let resp = app.get("/users/signup").await;
    let (headers, _) =
        expect_clean_error(resp, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    assert_eq!(allowed_methods(&headers), set(&["POST"]));
}

#[tokio::test]
async fn the_allow_header_lists_every_method_of_a_path_with_several() {
    let app = spawn_app().await;
    let resp = app.request(Method::PUT, "/users/logout", None, None).await;
    let (headers, _) =
        expect_clean_error(resp, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    let allowed = allowed_methods(&headers);
    assert!(
        allowed.is_superset(&set(&["GET", "POST"])) && !allowed.contains("PUT"),
        "{allowed:?}"
    );
}

#[tokio::test]
async fn every_method_the_allow_header_lists_is_really_allowed() {
    let app = spawn_app().await;
    for (wrong, path) in [
        (Method::DELETE, "/ping"),
        (Method::GET, "/users/signup"),
        (Method::PUT, "/users/logout"),
    ] {
        let resp = app.request(wrong, path, None, None).await;
        let (headers, _) =
            expect_clean_error(resp, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
        for method in allowed_methods(&headers) {
            let method: Method = method.parse().expect("a method name");
            let resp = app.request(method.clone(), path, None, None).await;
            assert_ne!(
                resp.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "Allow on {path} lists {method}, which answers 405"
            );
        }
    }
}

// ---------------------------------------------------------------- request bodies

#[tokio::test]
async fn signup_with_a_text_plain_body_answers_415() {
    let app = spawn_app().await;
    let body = json!({"email": "a@example.com", "password": PASSWORD, "confirmPassword": PASSWORD});
    let resp = post_raw(&app, "/users/signup", "text/plain", body.to_string()).await;
    expect_clean_error(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    // Nothing was created: the same address can still sign up.
    expect_json(app.signup("a@example.com").await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn malformed_json_answers_400_validation_failed() {
    let app = spawn_app().await;
    for body in [
        "{",
        "{\"email\": \"a@example.com\",}",
        "not json at all",
        "{\"email\": \"a@example.com\" \"password\": \"x\"}",
        "",
    ] {
        let resp = post_raw(&app, "/users/signup", "application/json", body).await;
        expect_clean_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    }
}

#[tokio::test]
async fn fields_of_the_wrong_type_answer_400_validation_failed() {
    let app = spawn_app().await;
    let bodies = [
        json!({"email": 5, "password": PASSWORD, "confirmPassword": PASSWORD}),
        json!({"email": ["a@example.com"], "password": PASSWORD, "confirmPassword": PASSWORD}),
        json!({"email": "a@example.com", "password": PASSWORD, "confirmPassword": [PASSWORD]}),
        json!({"email": "a@example.com", "password": {"p": PASSWORD}, "confirmPassword": PASSWORD}),
        json!({"email": "a@example.com", "password": PASSWORD, "confirmPassword": PASSWORD, "name": {"first": "x"}}),
        json!({"email": null, "password": PASSWORD, "confirmPassword": PASSWORD}),
        json!({"password": PASSWORD, "confirmPassword": PASSWORD}),
    ];
    for body in bodies {
        let resp = app.post("/users/signup", body.clone()).await;
        let (_, err) = expect_clean_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert!(err["message"].is_string(), "{body} -> {err}");
    }
    // None of them created an account.
    expect_json(app.signup("a@example.com").await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn numbers_and_booleans_in_string_fields_answer_400_validation_failed() {
    let app = spawn_app().await;
    let numeric = json!(918_273_645_019_283_u64);
    let resp = app
        .post(
            "/users/signup",
            json!({"email": "numbers@example.com", "password": numeric, "confirmPassword": numeric}),
        )
        .await;
    expect_clean_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    let resp = app
        .post(
            "/users/login",
            json!({"email": "numbers@example.com", "password": 12_345_678}),
        )
        .await;
    expect_clean_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    let resp = app
        .patch(
            "/users/activate",
            json!({"email": "numbers@example.com", "code": 123_456}),
        )
        .await;
    expect_clean_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    let resp = app
        .post("/users/activate/resend", json!({"email": true}))
        .await;
    expect_clean_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
}

#[tokio::test]
async fn a_validation_error_does_not_echo_the_value_that_was_sent() {
    let app = spawn_app().await;
    let secret = "my-secret-passphrase-4711";
    let bodies = [
        json!({"email": "a@example.com", "password": [secret], "confirmPassword": [secret]}),
        json!({"email": "a@example.com", "password": {"p": secret}, "confirmPassword": secret}),
        json!(secret),
        json!([secret]),
    ];
    for body in bodies {
        let resp = app.post("/users/signup", body.clone()).await;
        let (_, err) = expect_clean_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert!(
            !err.to_string().contains(secret),
            "the error repeats the password that was sent: {err}"
        );
    }
}

#[tokio::test]
async fn a_json_array_number_or_string_instead_of_an_object_answers_400() {
    let app = spawn_app().await;
    for body in [
        json!([]),
        json!(["a@example.com"]),
        json!(42),
        json!("a@example.com"),
        json!(null),
        json!(true),
    ] {
        let resp = app.post("/users/signup", body.clone()).await;
        let (_, err) = expect_clean_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert_eq!(err["error"], json!(true), "{body} -> {err}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_with_content_length_answers_413() {
    let app = small_limit_app().await;
    let body = signup_body_of_len("big@example.com", 4 * 1024);
    let resp = post_raw(&app, "/users/signup", "application/json", body).await;
    expect_clean_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
    // Refused before the handler: the address is still free.
    expect_json(app.signup("big@example.com").await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn a_body_one_byte_over_the_limit_answers_413() {
    let app = small_limit_app().await;
    let body = signup_body_of_len("edge@example.com", LIMIT + 1);
    let resp = post_raw(&app, "/users/signup", "application/json", body).await;
    expect_clean_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
}

#[tokio::test]
async fn a_body_of_exactly_the_limit_is_processed_normally() {
    let app = small_limit_app().await;
    let body = signup_body_of_len("edge@example.com", LIMIT);
    let resp = post_raw(&app, "/users/signup", "application/json", body).await;
    let created = expect_json(resp, StatusCode::CREATED).await;
    assert_eq!(created["success"], json!(true), "{created}");
}

#[tokio::test]
async fn a_body_just_under_the_limit_is_processed_normally() {
    let app = small_limit_app().await;
    let body = signup_body_of_len("under@example.com", LIMIT - 24);
    let resp = post_raw(&app, "/users/signup", "application/json", body).await;
    expect_json(resp, StatusCode::CREATED).await;
    // And an invalid body of that size gets its real answer, not 413.
    let invalid = format!("{{\"email\": \"{}\"}}", "x".repeat(LIMIT - 40));
    assert!(invalid.len() < LIMIT);
    let resp = post_raw(&app, "/users/signup", "application/json", invalid).await;
    expect_clean_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_without_content_length_answers_413() {
    let app = small_limit_app().await;
    let body = signup_body_of_len("chunky@example.com", 4 * 1024);
    let chunks: Vec<Vec<u8>> = body.as_bytes().chunks(512).map(<[u8]>::to_vec).collect();
    let head = chunked_head(&app, "/users/signup");
    assert!(!head.to_ascii_lowercase().contains("content-length"));
    let resp = send_chunked(&app, &head, &chunks, true).await;
    assert_raw_error(&resp, 413, "PAYLOAD_TOO_LARGE");
    expect_json(app.signup("chunky@example.com").await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit_without_waiting_for_its_end() {
    let app = small_limit_app().await;
    // Twice the limit, and the final chunk never comes: only a server that
    // stops reading at the limit can answer.
    let chunks = vec![vec![b' '; LIMIT], vec![b' '; LIMIT]];
    let resp = send_chunked(&app, &chunked_head(&app, "/users/signup"), &chunks, false).await;
    assert_raw_error(&resp, 413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn a_chunked_body_within_the_limit_is_processed_normally() {
    let app = small_limit_app().await;
    let body = signup_body_of_len("chunked@example.com", LIMIT);
    let chunks: Vec<Vec<u8>> = body.as_bytes().chunks(100).map(<[u8]>::to_vec).collect();
    let resp = send_chunked(&app, &chunked_head(&app, "/users/signup"), &chunks, true).await;
    assert_eq!(resp.status, 201, "body: {}", resp.body);
    assert_eq!(resp.json()["success"], json!(true), "{}", resp.body);
    // The account exists: signing up again is a conflict.
    expect_clean_error(
        app.signup("chunked@example.com").await,
        StatusCode::CONFLICT,
        "EMAIL_IN_USE",
    )
    .await;
}

#[tokio::test]
async fn no_error_answer_leaks_sql_paths_or_stack_traces() {
    let app = small_limit_app().await;
    let responses = vec![
        ("unknown route", app.get("/nope").await),
        (
            "wrong method",
            app.request(Method::DELETE, "/ping", None, None).await,
        ),
        ("wrong method", app.get("/users/signup").await),
        (
            "text/plain",
            post_raw(&app, "/users/signup", "text/plain", "{}").await,
        ),
        (
            "malformed",
            post_raw(&app, "/users/signup", "application/json", "{\"email\":").await,
        ),
        (
            "wrong type",
            app.post(
                "/users/signup",
                json!({"email": 5, "password": PASSWORD, "confirmPassword": PASSWORD}),
            )
            .await,
        ),
        ("array", app.post("/users/signup", json!([1, 2])).await),
        (
            "string",
            app.post("/users/login", json!("a@example.com")).await,
        ),
        (
            "too large",
            post_raw(
                &app,
                "/users/signup",
                "application/json",
                " ".repeat(4 * LIMIT),
            )
            .await,
        ),
        (
            "sql-looking input",
            app.post(
                "/users/login",
                json!({"email": "x' OR 1=1; --@example.com", "password": "' OR ''='"}),
            )
            .await,
        ),
        ("bad token", app.get_auth("/users/me", "not.a.jwt").await),
    ];
    let mut answers: Vec<(String, StatusCode, String)> = Vec::new();
    for (what, resp) in responses {
        let status = resp.status();
        answers.push((what.to_owned(), status, resp.text().await.expect("body")));
    }
    let chunked = send_chunked(
        &app,
        &chunked_head(&app, "/users/signup"),
        &[vec![b'{'; 3 * LIMIT]],
        true,
    )
    .await;
    answers.push((
        "chunked too large".into(),
        StatusCode::from_u16(chunked.status).unwrap(),
        chunked.body,
    ));

    for (what, status, text) in &answers {
        assert!(
            status.is_client_error(),
            "{what}: expected a 4xx, got {status}: {text}"
        );
        let body: Value = serde_json::from_str(text)
            .unwrap_or_else(|_| panic!("{what}: body is not JSON: {text}"));
        assert_eq!(body["error"], json!(true), "{what}: {text}");
        assert!(body["code"].is_string(), "{what}: {text}");
        assert_no_internals(text);
    }
}

// ---------------------------------------------------------------- headers

#[tokio::test]
async fn every_response_carries_x_content_type_options_nosniff() {
    let app = small_limit_app().await;
    let responses = vec![
        ("GET /ping", app.get("/ping").await),
        ("GET /health/live", app.get("/health/live").await),
        ("GET /docs", app.get("/docs").await),
        ("GET /openapi.json", app.get("/openapi.json").await),
        ("GET /nope", app.get("/nope").await),
        (
            "DELETE /ping",
            app.request(Method::DELETE, "/ping", None, None).await,
        ),
        (
            "POST /users/signup",
            app.post("/users/signup", Signup::new("nosniff@example.com").json())
                .await,
        ),
        ("GET /users/me", app.get("/users/me").await),
        (
            "POST text/plain",
            post_raw(&app, "/users/signup", "text/plain", "x").await,
        ),
        (
            "POST too large",
            post_raw(
                &app,
                "/users/signup",
                "application/json",
                " ".repeat(2 * LIMIT),
            )
            .await,
        ),
    ];
    for (what, resp) in responses {
        assert_eq!(
            header(resp.headers(), "x-content-type-options"),
            Some("nosniff"),
            "{what} -> {}: {:?}",
            resp.status(),
            resp.headers()
        );
    }
    let chunked = send_chunked(
        &app,
        &chunked_head(&app, "/users/signup"),
        &[vec![b' '; 2 * LIMIT]],
        true,
    )
    .await;
    assert_eq!(chunked.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn json_answers_carry_cache_control_no_store() {
    let app = spawn_app().await;
    let responses = vec![
        ("GET /ping", app.get("/ping").await),
        ("GET /health/live", app.get("/health/live").await),
        ("GET /health/ready", app.get("/health/ready").await),
        ("GET /openapi.json", app.get("/openapi.json").await),
        (
            "GET /.well-known/jwks.json",
            app.get("/.well-known/jwks.json").await,
        ),
        ("GET /nope", app.get("/nope").await),
        (
            "POST /users/signup",
            app.post("/users/signup", Signup::new("cache@example.com").json())
                .await,
        ),
        (
            "POST /users/login",
            app.post(
                "/users/login",
                json!({"email": "cache@example.com", "password": "wrong password!"}),
            )
            .await,
        ),
    ];
    for (what, resp) in responses {
        let headers = resp.headers();
        assert!(
            header(headers, "content-type").is_some_and(|ct| ct.starts_with("application/json")),
            "{what} is not JSON: {headers:?}"
        );
        assert_eq!(
            header(headers, CACHE_CONTROL.as_str()),
            Some("no-store"),
            "{what} -> {}: {headers:?}",
            resp.status()
        );
    }
}

// ---------------------------------------------------------------- docs and spec

#[tokio::test]
async fn docs_serve_swagger_ui_as_html() {
    let app = spawn_app().await;
    let resp = app.get("/docs").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = header(resp.headers(), "content-type")
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = resp.text().await.expect("body");
    assert!(html.to_ascii_lowercase().contains("swagger"), "{html}");
}

#[tokio::test]
async fn openapi_json_serves_the_spec() {
    let app = spawn_app().await;
    let spec = expect_json(app.get("/openapi.json").await, StatusCode::OK).await;
    assert!(
        spec["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "{spec}"
    );
    assert_eq!(spec["info"]["title"], json!("sesame"));
    assert!(spec["paths"]["/users/signup"]["post"].is_object(), "{spec}");
    assert_eq!(spec["servers"][0]["url"], json!(app.config.public_url));
}

#[test]
fn the_committed_openapi_json_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("cannot read {path}: {e}");
        panic!("{STALE}")
    });
    let committed: Value = serde_json::from_str(&committed).unwrap_or_else(|e| {
        eprintln!("{path} is not JSON: {e}");
        panic!("{STALE}")
    });
    let generated = generated_spec();
    if committed != generated {
        for key in ["paths", "components", "info", "servers", "tags"] {
            if committed[key] != generated[key] {
                eprintln!("openapi.json differs from the code under `{key}`");
            }
        }
        panic!("{STALE}");
    }
}

#[tokio::test]
async fn the_served_spec_equals_the_committed_document() {
    let app = spawn_app().await;
    assert_eq!(
        app.config.public_url, "http://localhost:5000",
        "the test app no longer runs with the default public URL"
    );
    let served = expect_json(app.get("/openapi.json").await, StatusCode::OK).await;
    assert!(
        served == generated_spec(),
        "GET /openapi.json differs from `sesame openapi`"
    );
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
            .unwrap_or_else(|_| panic!("{STALE}")),
    )
    .unwrap_or_else(|_| panic!("{STALE}"));
    assert!(
        served == committed,
        "GET /openapi.json differs from the committed openapi.json"
    );
}

#[test]
fn every_operation_has_an_operation_id_and_a_summary() {
    let spec = generated_spec();
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&spec) {
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.trim().is_empty()),
            "{method} {path} has no summary"
        );
    }
}

#[test]
fn every_operation_that_takes_input_documents_its_4xx_responses() {
    // Operations without parameters, body or auth (ping, health, JWKS) cannot
    // fail on the client's account; only 404/405 apply, and those are global.
    let spec = generated_spec();
    let takes_input = |op: &Value| {
        op.get("parameters").is_some()
            || op.get("requestBody").is_some()
            || op.get("security").is_some()
    };
    let mut checked = 0;
    let missing: Vec<String> = operations(&spec)
        .into_iter()
        .filter(|(_, _, op)| takes_input(op))
        .inspect(|_| checked += 1)
        .filter(|(_, _, op)| {
            !op["responses"]
                .as_object()
                .is_some_and(|r| r.keys().any(|status| status.starts_with('4')))
        })
        .map(|(method, path, _)| format!("{} {path}", method.to_uppercase()))
        .collect();
    assert!(checked >= 10, "only {checked} operations take input");
    assert!(
        missing.is_empty(),
        "operations without a 4xx response: {missing:?}"
    );
}

#[test]
fn every_schema_property_has_a_description() {
    let spec = generated_spec();
    let schemas = spec["components"]["schemas"]
        .as_object()
        .expect("spec has component schemas");
    let mut missing = Vec::new();
    let mut checked = 0;
    for (name, schema) in schemas {
        let Some(properties) = schema["properties"].as_object() else {
            continue;
        };
        for (property, def) in properties {
            checked += 1;
            // A property that is only a `$ref` is described by the schema it
            // names: OpenAPI 3.0 ignores a description beside `$ref`, and the
            // `allOf` wrapper that would carry one breaks client generators.
            let described = match def["$ref"].as_str() {
                Some(target) => schemas
                    .get(target.trim_start_matches("#/components/schemas/"))
                    .and_then(|schema| schema["description"].as_str()),
                None => def["description"].as_str(),
            };
            if described.is_none_or(|d| d.trim().is_empty()) {
                missing.push(format!("{name}.{property}"));
            }
        }
    }
    assert!(checked > 0, "no schema properties found");
    assert!(
        missing.is_empty(),
        "properties without a description: {missing:?}"
    );
}

#[test]
fn users_me_requires_the_bearer_auth_security_scheme() {
    let spec = generated_spec();
    let scheme = &spec["components"]["securitySchemes"]["BearerAuth"];
    assert_eq!(scheme["type"], json!("http"), "{scheme}");
    assert_eq!(scheme["scheme"], json!("bearer"), "{scheme}");
    let security = spec["paths"]["/users/me"]["get"]["security"]
        .as_array()
        .expect("GET /users/me lists security requirements");
    assert!(
        security.iter().any(|req| req.get("BearerAuth").is_some()),
        "GET /users/me does not require BearerAuth: {security:?}"
    );
    // Anonymous endpoints must not ask for it.
    assert!(spec["paths"]["/users/signup"]["post"]["security"].is_null());
}

#[tokio::test]
async fn users_me_without_a_token_answers_401_with_www_authenticate() {
    let app = spawn_app().await;
    let (headers, _) = expect_clean_error(
        app.get("/users/me").await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;
    assert!(
        header(&headers, "www-authenticate").is_some_and(|v| v.starts_with("Bearer")),
        "{headers:?}"
    );
}
