//! Response headers that protect browsers: the Content-Security-Policy of
//! the Swagger UI page (its inline scripts allowed by hash) and of JSON
//! answers, nosniff, no referrer, no caching of tokens, and CORS only for
//! the configured origins.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CACHE_CONTROL,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderMap, ORIGIN, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::*;

const APP_ORIGIN: &str = "https://app.example";
const EVIL_ORIGIN: &str = "https://evil.example";

fn header(headers: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<&str> {
    headers.get(name).map(|v| v.to_str().expect("ASCII header"))
}

/// The directives of a Content-Security-Policy, by name.
fn directives(csp: &str) -> BTreeMap<String, Vec<String>> {
    csp.split(';')
        .filter_map(|d| {
            let mut words = d.split_whitespace();
            let name = words.next()?.to_ascii_lowercase();
            Some((name, words.map(str::to_owned).collect()))
        })
        .collect()
}

/// Finds `needle` in `haystack` from `from`, ignoring ASCII case.
fn find_ci(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    let hay = haystack.as_bytes();
    let needle = needle.as_bytes();
    (from..=hay.len().checked_sub(needle.len())?)
        .find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

/// A `<script` or `</script` that really is the tag name (followed by
/// whitespace, `/` or `>`), from `from`.
fn find_tag(html: &str, tag: &str, from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let found = find_ci(html, tag, at)?;
        let next = html.as_bytes().get(found + tag.len()).copied();
        if matches!(
            next,
            Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/' | b'>')
        ) {
            return Some(found);
        }
        at = found + 1;
    }
}

/// The start tag and content of every `<script>` element, as an HTML parser
/// splits them (attribute values may hold `>`; content ends at `</script`).
fn scripts(html: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(open) = find_tag(html, "<script", at) {
        let mut quote = None;
        let mut end = None;
        for (i, c) in html[open..].char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '>') => {
                    end = Some(open + i);
                    break;
                }
                _ => {}
            }
        }
        let tag_end = end.expect("unterminated <script> tag");
        let close = find_tag(html, "</script", tag_end).expect("unterminated <script> element");
        found.push((
            html[open..=tag_end].to_owned(),
            html[tag_end + 1..close].to_owned(),
        ));
        at = close + 1;
    }
    found
}

fn csp_hash(script: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(script.as_bytes()))
    )
}

/// Asserts the headers every answer carries.
fn assert_protective_headers(what: &str, headers: &HeaderMap) {
    assert_eq!(
        header(headers, X_CONTENT_TYPE_OPTIONS),
        Some("nosniff"),
        "{what}: {headers:?}"
    );
    assert_eq!(
        header(headers, REFERRER_POLICY),
        Some("no-referrer"),
        "{what}: {headers:?}"
    );
}

/// Asserts the locked-down policy of a JSON answer.
fn assert_json_csp(what: &str, headers: &HeaderMap) {
    let csp = header(headers, CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy: {headers:?}"));
    assert!(csp.starts_with("default-src 'none'"), "{what}: {csp}");
    let directives = directives(csp);
    assert_eq!(
        directives.get("frame-ancestors").map(Vec::as_slice),
        Some(&["'none'".to_owned()][..]),
        "{what}: {csp}"
    );
    assert!(!directives.contains_key("script-src"), "{what}: {csp}");
}

/// Sends a request with an `Origin` and optional extra headers.
async fn from_origin(
    app: &TestApp,
    method: Method,
    path: &str,
    origin: &str,
    extra: &[(reqwest::header::HeaderName, &str)],
    body: Option<&Value>,
) -> Response {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.address))
        .header(ORIGIN, origin);
    for (name, value) in extra {
        req = req.header(name.clone(), *value);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send().await.expect("request reaches the server")
}

/// A CORS preflight for a JSON POST with a bearer token.
async fn preflight(app: &TestApp, path: &str, origin: &str) -> Response {
    from_origin(
        app,
        Method::OPTIONS,
        path,
        origin,
        &[
            (ACCESS_CONTROL_REQUEST_METHOD, "POST"),
            (ACCESS_CONTROL_REQUEST_HEADERS, "content-type,authorization"),
        ],
        None,
    )
    .await
}

/// If `resp` is an error, asserts it is in the contract's shape.
async fn assert_error_shape_if_error(what: &str, resp: Response) {
    let status = resp.status();
    if status.is_success() {
        return;
    }
    let content_type = header(resp.headers(), CONTENT_TYPE)
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.expect("body");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {status} with {content_type:?}: {text}"
    );
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
    assert_eq!(body["error"], json!(true), "{what}: {body}");
    assert!(body["code"].is_string(), "{what}: {body}");
    assert!(status.is_client_error(), "{what}: {status}: {body}");
}

async fn cors_app() -> TestApp {
    spawn_app_with(|config| config.cors_origins = vec![APP_ORIGIN.into()]).await
}

// ---------------------------------------------------------------- the docs page

#[tokio::test]
async fn the_docs_policy_allows_scripts_only_by_hash() {
    let app = spawn_app().await;
    let resp = app.get("/docs").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = header(resp.headers(), CONTENT_SECURITY_POLICY)
        .expect("the docs page has a Content-Security-Policy")
        .to_owned();
    assert_protective_headers("/docs", resp.headers());

    let directives = directives(&csp);
    let script_src = directives
        .get("script-src")
        .expect("a script-src directive");
    assert!(!script_src.is_empty(), "{csp}");
    for source in script_src {
        assert!(
            source.starts_with("'sha256-") && source.ends_with('\''),
            "script-src allows more than hashes: {source} in {csp}"
        );
    }
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    assert_eq!(
        directives.get("default-src").map(Vec::as_slice),
        Some(&["'none'".to_owned()][..]),
        "{csp}"
    );
    assert_eq!(
        directives.get("frame-ancestors").map(Vec::as_slice),
        Some(&["'none'".to_owned()][..]),
        "{csp}"
    );
    assert!(
        directives
            .get("connect-src")
            .is_some_and(|s| s.contains(&"'self'".to_owned())),
        "Try it out must be able to call this server: {csp}"
    );
}

#[tokio::test]
async fn every_inline_script_of_the_docs_page_is_allowed_by_its_hash() {
    let app = spawn_app().await;
    let resp = app.get("/docs").await;
    let csp = header(resp.headers(), CONTENT_SECURITY_POLICY)
        .expect("the docs page has a Content-Security-Policy")
        .to_owned();
    let html = resp.text().await.expect("body");
    let allowed = directives(&csp)
        .remove("script-src")
        .expect("a script-src directive");

    let scripts = scripts(&html);
    assert!(
        scripts.len() >= 2,
        "Swagger UI has its bundle and a start-up script; found {}",
        scripts.len()
    );
    for (tag, content) in &scripts {
        assert!(
            find_ci(tag, "src", 0).is_none(),
            "an external script would be refused by script-src: {tag}"
        );
        let hash = csp_hash(content);
        let start: String = content.trim().chars().take(60).collect();
        assert!(
            allowed.contains(&hash),
            "inline script starting {start:?} hashes to {hash}, not in script-src"
        );
    }
    // No handlers in attributes or javascript: URLs: hashes do not cover them.
    let lower = html.to_ascii_lowercase();
    assert!(
        !lower.contains("href=\"javascript:"),
        "javascript: URL in the page"
    );
}

#[tokio::test]
async fn the_docs_policy_does_not_leak_to_other_pages() {
    let app = spawn_app().await;
    let resp = app.get("/openapi.json").await;
    assert_json_csp("/openapi.json", resp.headers());
    let resp = app.get("/docs/").await;
    if let Some(csp) = header(resp.headers(), CONTENT_SECURITY_POLICY) {
        assert!(!csp.contains("script-src"), "/docs/ -> {csp}");
    }
}

// ---------------------------------------------------------------- JSON answers

#[tokio::test]
async fn json_answers_carry_a_locked_down_policy_nosniff_and_no_referrer() {
    let app = spawn_app_with(|config| {
        config.ip_rate_limit = 1;
        config.ip_rate_window = Duration::from_secs(3600);
    })
    .await;
    let responses = vec![
        ("GET /ping", app.api.ping().await),
        ("GET /health/ready", app.api.health_ready().await),
        ("GET /.well-known/jwks.json", app.api.jwks().await),
        (
            "GET /nope",
            app.api.send(Method::GET, "/nope", None, None).await,
        ),
        (
            "GET /users/me",
            app.api.send(Method::GET, "/users/me", None, None).await,
        ),
        (
            "POST /users/signup 201",
            app.signup("csp@example.com").await,
        ),
        (
            "POST /users/login 401",
            app.api
                .login("nobody@example.com", "not the password")
                .await,
        ),
        (
            "POST /users/login 429",
            app.api
                .login("nobody@example.com", "not the password")
                .await,
        ),
        (
            "DELETE /ping",
            app.api.send(Method::DELETE, "/ping", None, None).await,
        ),
    ];
    for (what, resp) in responses {
        let headers = resp.headers().clone();
        assert!(
            header(&headers, CONTENT_TYPE).is_some_and(|ct| ct.starts_with("application/json")),
            "{what} -> {}: {headers:?}",
            resp.status()
        );
        assert_protective_headers(what, &headers);
        assert_json_csp(what, &headers);
    }
}

#[tokio::test]
async fn answers_that_carry_tokens_are_never_cached() {
    let app = spawn_app().await;
    let signup = app.signup("nocache@example.com").await;
    assert_eq!(header(signup.headers(), CACHE_CONTROL), Some("no-store"));
    expect_json(signup, StatusCode::CREATED).await;
    let code = app.code_from_mail("nocache@example.com", 1).await;
    let activate = app
        .patch(
            "/users/activate",
            json!({"email": "nocache@example.com", "code": code}),
        )
        .await;
    assert_eq!(header(activate.headers(), CACHE_CONTROL), Some("no-store"));

    let login = app
        .post(
            "/users/login",
            json!({"email": "nocache@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(header(login.headers(), CACHE_CONTROL), Some("no-store"));
    let tokens = expect_json(login, StatusCode::OK).await;

    let refresh = app
        .post(
            "/users/token/refresh",
            json!({"refreshToken": str_field(&tokens, "refreshToken")}),
        )
        .await;
    assert_eq!(header(refresh.headers(), CACHE_CONTROL), Some("no-store"));
    let tokens = expect_json(refresh, StatusCode::OK).await;

    let me = app
        .get_auth("/users/me", &str_field(&tokens, "accessToken"))
        .await;
    assert_eq!(header(me.headers(), CACHE_CONTROL), Some("no-store"));
    let forgot = app
        .patch("/users/forgot", json!({"email": "nocache@example.com"}))
        .await;
    assert_eq!(header(forgot.headers(), CACHE_CONTROL), Some("no-store"));
}

// ---------------------------------------------------------------- CORS

#[tokio::test]
async fn without_configured_origins_no_origin_is_allowed() {
    let app = spawn_app().await;
    let login = json!({"email": "nobody@example.com", "password": "not the password"});

    for origin in [EVIL_ORIGIN, APP_ORIGIN, "null"] {
        let simple = from_origin(&app, Method::GET, "/ping", origin, &[], None).await;
        assert_eq!(header(simple.headers(), ACCESS_CONTROL_ALLOW_ORIGIN), None);
        let post = from_origin(
            &app,
            Method::POST,
            "/users/login",
            origin,
            &[],
            Some(&login),
        )
        .await;
        assert_eq!(header(post.headers(), ACCESS_CONTROL_ALLOW_ORIGIN), None);
        let pre = preflight(&app, "/users/login", origin).await;
        assert_eq!(header(pre.headers(), ACCESS_CONTROL_ALLOW_ORIGIN), None);
        assert_error_shape_if_error("preflight with CORS off", pre).await;
    }
}

#[tokio::test]
async fn a_configured_origin_may_call_the_api_from_a_browser() {
    let app = cors_app().await;
    let login = json!({"email": "nobody@example.com", "password": "not the password"});

    let resp = from_origin(
        &app,
        Method::POST,
        "/users/login",
        APP_ORIGIN,
        &[],
        Some(&login),
    )
    .await;

    assert_eq!(
        header(resp.headers(), ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(APP_ORIGIN)
    );
    // Credentials are bearer tokens, never cookies.
    assert_eq!(
        header(resp.headers(), "access-control-allow-credentials"),
        None
    );
    // The app's script may read when to retry and the request id.
    let exposed = header(resp.headers(), "access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in ["retry-after", "x-request-id"] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed:?}");
    }
    expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
}

#[tokio::test]
async fn a_preflight_from_a_configured_origin_succeeds() {
    let app = cors_app().await;

    let resp = preflight(&app, "/users/login", APP_ORIGIN).await;

    assert!(resp.status().is_success(), "{}", resp.status());
    let headers = resp.headers();
    assert_eq!(
        header(headers, ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(APP_ORIGIN)
    );
    let methods = header(headers, ACCESS_CONTROL_ALLOW_METHODS)
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(methods.contains("POST"), "{headers:?}");
    let allowed = header(headers, ACCESS_CONTROL_ALLOW_HEADERS)
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("content-type") && allowed.contains("authorization"),
        "{headers:?}"
    );
}

#[tokio::test]
async fn another_origin_is_not_allowed_when_origins_are_configured() {
    let app = cors_app().await;
    let login = json!({"email": "nobody@example.com", "password": "not the password"});

    for origin in [
        EVIL_ORIGIN,
        "https://app.example.evil.example",
        "http://app.example",
        "https://app.example:8443",
        "null",
    ] {
        let simple = from_origin(&app, Method::GET, "/ping", origin, &[], None).await;
        assert_eq!(
            header(simple.headers(), ACCESS_CONTROL_ALLOW_ORIGIN),
            None,
            "{origin}"
        );
        assert_error_shape_if_error(&format!("GET /ping from {origin}"), simple).await;
        let post = from_origin(
            &app,
            Method::POST,
            "/users/login",
            origin,
            &[],
            Some(&login),
        )
        .await;
        assert_eq!(
            header(post.headers(), ACCESS_CONTROL_ALLOW_ORIGIN),
            None,
            "{origin}"
        );
        assert_error_shape_if_error(&format!("POST from {origin}"), post).await;
        let pre = preflight(&app, "/users/login", origin).await;
        assert_eq!(
            header(pre.headers(), ACCESS_CONTROL_ALLOW_ORIGIN),
            None,
            "{origin}"
        );
        assert_error_shape_if_error(&format!("preflight from {origin}"), pre).await;
    }
}

#[tokio::test]
async fn a_preflight_for_a_method_or_header_outside_the_list_is_refused_in_the_error_shape() {
    let app = cors_app().await;

    let put = from_origin(
        &app,
        Method::OPTIONS,
        "/users/login",
        APP_ORIGIN,
        &[(ACCESS_CONTROL_REQUEST_METHOD, "PUT")],
        None,
    )
    .await;
    assert_ne!(
        header(put.headers(), ACCESS_CONTROL_ALLOW_METHODS),
        Some("PUT")
    );
    assert_error_shape_if_error("preflight for PUT", put).await;

    let odd_header = from_origin(
        &app,
        Method::OPTIONS,
        "/users/login",
        APP_ORIGIN,
        &[
            (ACCESS_CONTROL_REQUEST_METHOD, "POST"),
            (ACCESS_CONTROL_REQUEST_HEADERS, "x-evil"),
        ],
        None,
    )
    .await;
    assert_error_shape_if_error("preflight for x-evil", odd_header).await;
}

#[tokio::test]
async fn errors_keep_the_contract_shape_for_an_allowed_origin() {
    let app = cors_app().await;

    let no_token = from_origin(&app, Method::GET, "/users/me", APP_ORIGIN, &[], None).await;
    assert_eq!(
        header(no_token.headers(), "www-authenticate"),
        Some("Bearer"),
        "{:?}",
        no_token.headers()
    );
    assert_error_shape_if_error("401 without a token", no_token).await;

    let not_found = from_origin(&app, Method::GET, "/nope", APP_ORIGIN, &[], None).await;
    let not_found_status = not_found.status();
    assert_error_shape_if_error("404", not_found).await;
    assert_eq!(not_found_status, StatusCode::NOT_FOUND);

    let wrong_method = from_origin(&app, Method::DELETE, "/ping", APP_ORIGIN, &[], None).await;
    assert!(
        header(wrong_method.headers(), "allow").is_some(),
        "405 without Allow: {:?}",
        wrong_method.headers()
    );
    assert_error_shape_if_error("405", wrong_method).await;

    let malformed = app
        .client
        .post(format!("{}/users/login", app.address))
        .header(ORIGIN, APP_ORIGIN)
        .header(CONTENT_TYPE, "application/json")
        .body("\"hunter2 is my password\"")
        .send()
        .await
        .expect("request reaches the server");
    let headers = malformed.headers().clone();
    let text = malformed.text().await.expect("body");
    assert!(
        !text.contains("hunter2"),
        "the error echoes the body: {text}"
    );
    assert!(
        header(&headers, CONTENT_TYPE).is_some_and(|ct| ct.starts_with("application/json")),
        "400 as {headers:?}: {text}"
    );

    let text_plain = app
        .client
        .post(format!("{}/users/login", app.address))
        .header(ORIGIN, APP_ORIGIN)
        .header(CONTENT_TYPE, "text/plain")
        .body("x")
        .send()
        .await
        .expect("request reaches the server");
    assert_error_shape_if_error("415", text_plain).await;
}

#[tokio::test]
async fn errors_from_the_handlers_reach_an_allowed_origin_with_cors_headers() {
    let app = cors_app().await;

    let resp = from_origin(
        &app,
        Method::GET,
        "/users/me",
        APP_ORIGIN,
        &[(reqwest::header::AUTHORIZATION, "Bearer not.a.token")],
        None,
    )
    .await;

    assert_eq!(
        header(resp.headers(), ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(APP_ORIGIN)
    );
    assert_protective_headers("401 with CORS", resp.headers());
    expect_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
}
