//! Per-IP rate limits on the anonymous auth endpoints: a client over its
//! budget gets `429 RATE_LIMITED` with `Retry-After`, each endpoint has its
//! own budget, reads are never limited, the budget comes back, and the
//! client IP is taken from `X-Forwarded-For` only behind a trusted proxy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sesame::http::rate_limits::TrustedProxies;
use tokio::time::Instant;

use crate::support::*;

/// A window short enough to wait for: 3 requests per 6 s give one back every
/// 2 s, so four requests in a row still fall inside one cell's time on a
/// loaded machine (with 2 s, a cell came back every 0.67 s and a slow CI
/// let the fourth request through).
const SHORT_WINDOW: Duration = Duration::from_secs(6);

/// A window so long that no budget comes back during a test.
const LONG_WINDOW: Duration = Duration::from_secs(3600);

/// An app whose limited endpoints take `per_window` requests per `window` per IP.
async fn limited_app(per_window: u32, window: Duration) -> TestApp {
    spawn_app_with(|config| {
        config.ip_rate_limit = per_window;
        config.ip_rate_window = window;
    })
    .await
}

/// A login with a wrong password, optionally through a proxy that forwards for `xff`.
async fn login_from(app: &TestApp, email: &str, password: &str, xff: Option<&str>) -> Response {
    let mut req = app
        .client
        .post(format!("{}/users/login", app.address))
        .json(&json!({"email": email, "password": password}));
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.expect("request reaches the server")
}

/// A login to an address without an account. Each uses a new address, so
/// the per-address lockout never answers in place of the rate limit.
async fn wrong_login(app: &TestApp, xff: Option<&str>) -> Response {
    let n = NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed);
    let email = format!("nobody{n}@example.com");
    login_from(app, &email, "not the password", xff).await
}

static NEXT_ADDRESS: AtomicUsize = AtomicUsize::new(0);

/// The `Retry-After` of a response, as whole seconds.
fn retry_after(resp: &Response) -> u64 {
    let value = resp
        .headers()
        .get(RETRY_AFTER)
        .unwrap_or_else(|| panic!("no Retry-After on {}: {:?}", resp.status(), resp.headers()));
    let text = value.to_str().expect("ASCII Retry-After");
    text.parse()
        .unwrap_or_else(|_| panic!("Retry-After is not whole seconds: {text:?}"))
}

/// Asserts a `429 RATE_LIMITED` in the contract's shape; returns its `Retry-After`.
async fn expect_rate_limited(resp: Response) -> u64 {
    let secs = retry_after(&resp);
    expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    secs
}

/// Asserts that a request got through the limiter to a wrong-credentials answer.
async fn expect_let_through(resp: Response) {
    expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
}

/// Uses up the login budget of one (forwarded) client: `per_window` answers
/// get through, the next is refused.
async fn exhaust_login_budget(app: &TestApp, per_window: u32, xff: Option<&str>) {
    for _ in 0..per_window {
        expect_let_through(wrong_login(app, xff).await).await;
    }
    expect_rate_limited(wrong_login(app, xff).await).await;
}

/// The `ip` column of every session of a user, from the database file.
async fn session_ips(app: &TestApp, email: &str) -> Vec<Option<String>> {
    let sql = "SELECT s.ip FROM sessions s JOIN users u ON u.id = s.user_id \
               WHERE u.email = ? ORDER BY s.created_at";
    app.db().column(sql, &[email]).await
}

// ---------------------------------------------------------------- trigger and lift

#[tokio::test]
async fn the_fourth_login_in_a_window_answers_429_with_retry_after() {
    let app = limited_app(3, SHORT_WINDOW).await;

    for _ in 0..3 {
        expect_let_through(wrong_login(&app, None).await).await;
    }
    let resp = wrong_login(&app, None).await;
    let secs = retry_after(&resp);
    let body = expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;

    assert!(
        (1..=2).contains(&secs),
        "Retry-After {secs} for a budget that gives one request back every 2 s"
    );
    assert_eq!(body.get("fields"), None, "{body}");
}

#[tokio::test]
async fn a_rate_limited_client_gets_in_again_once_its_budget_recovers() {
    let app = limited_app(3, SHORT_WINDOW).await;
    exhaust_login_budget(&app, 3, None).await;

    let status = eventually("the login limit to lift", || async {
        let resp = wrong_login(&app, None).await;
        (resp.status() != StatusCode::TOO_MANY_REQUESTS).then(|| resp.status())
    })
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn waiting_as_long_as_retry_after_says_is_enough() {
    let app = limited_app(3, SHORT_WINDOW).await;
    for _ in 0..3 {
        expect_let_through(wrong_login(&app, None).await).await;
    }
    let secs = expect_rate_limited(wrong_login(&app, None).await).await;

    // The server's own promise: this sleep is the header under test.
    tokio::time::sleep(Duration::from_secs(secs)).await;

    expect_let_through(wrong_login(&app, None).await).await;
}

#[tokio::test]
async fn refused_requests_do_not_push_the_budget_further_away() {
    let app = limited_app(3, SHORT_WINDOW).await;
    exhaust_login_budget(&app, 3, None).await;
    let started = Instant::now();

    // Hammering while refused must not keep the client locked out for longer.
    let lifted_after = eventually("the login limit to lift while hammering", || async {
        let resp = wrong_login(&app, None).await;
        (resp.status() != StatusCode::TOO_MANY_REQUESTS).then(|| started.elapsed())
    })
    .await;

    assert!(
        lifted_after < SHORT_WINDOW,
        "a refused client waited {lifted_after:?} for one request of a 3-per-6s budget"
    );
}

// ---------------------------------------------------------------- what is limited

#[tokio::test]
async fn each_endpoint_keeps_its_own_budget() {
    let app = limited_app(3, LONG_WINDOW).await;
    exhaust_login_budget(&app, 3, None).await;

    expect_json(app.signup("budget@example.com").await, StatusCode::CREATED).await;
    let forgot = app
        .patch("/users/forgot", json!({"email": "budget@example.com"}))
        .await;
    expect_json(forgot, StatusCode::OK).await;
    expect_rate_limited(wrong_login(&app, None).await).await;
}

#[tokio::test]
async fn every_anonymous_auth_endpoint_is_limited() {
    let app = limited_app(2, LONG_WINDOW).await;
    let token = "A".repeat(43);
    let calls: Vec<(Method, &str, Value)> = vec![
        (
            Method::POST,
            "/users/signup",
            json!({"email": "x", "password": "x", "confirmPassword": "y"}),
        ),
        (
            Method::POST,
            "/users/login",
            json!({"email": "x@example.com", "password": "x"}),
        ),
        (
            Method::PATCH,
            "/users/activate",
            json!({"email": "x@example.com", "code": "000000"}),
        ),
        (
            Method::POST,
            "/users/activate/resend",
            json!({"email": "x@example.com"}),
        ),
        (
            Method::PATCH,
            "/users/forgot",
            json!({"email": "x@example.com"}),
        ),
        (
            Method::PATCH,
            "/users/reset",
            json!({"token": token, "newPassword": "x", "confirmPassword": "x"}),
        ),
        (
            Method::POST,
            "/users/token/refresh",
            json!({"refreshToken": token}),
        ),
        (
            Method::PATCH,
            "/users/email/revert",
            json!({"token": token}),
        ),
    ];
    for (method, path, body) in calls {
        for n in 1..=2 {
            let resp = app.request(method.clone(), path, Some(&body), None).await;
            assert_ne!(
                resp.status(),
                StatusCode::TOO_MANY_REQUESTS,
                "{method} {path}: request {n} of a budget of 2 was refused"
            );
            assert!(
                resp.status().is_client_error() || resp.status().is_success(),
                "{method} {path} -> {}",
                resp.status()
            );
        }
        let resp = app.request(method.clone(), path, Some(&body), None).await;
        assert_eq!(
            resp.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{method} {path}: the third request of a budget of 2 got through"
        );
        expect_rate_limited(resp).await;
    }
}

#[tokio::test]
async fn reads_are_never_rate_limited() {
    let app = limited_app(1, LONG_WINDOW).await;
    // One signup, one activation and one login fit a budget of one each.
    let (access, _) = app.logged_in_user("reader@example.com").await;

    for _ in 0..30 {
        expect_json(app.api.me(&access).await, StatusCode::OK).await;
        expect_json(app.api.ping().await, StatusCode::OK).await;
        expect_json(app.api.health_live().await, StatusCode::OK).await;
        // A GET on a limited path is a wrong method, not a spent request.
        let resp = app.get("/users/login").await;
        expect_error(resp, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    }
    expect_rate_limited(wrong_login(&app, None).await).await;
}

#[tokio::test]
async fn a_limit_of_zero_turns_rate_limiting_off() {
    let app = limited_app(0, Duration::from_secs(60)).await;

    for n in 0..50 {
        let resp = wrong_login(&app, None).await;
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "login #{n} with rate limiting off"
        );
    }
}

#[tokio::test]
async fn path_spellings_that_reach_login_share_its_budget() {
    let app = limited_app(2, LONG_WINDOW).await;
    exhaust_login_budget(&app, 2, None).await;

    for path in [
        "/users/login/",
        "//users/login",
        "/users//login",
        "/users/./login",
        "/users/%6Cogin",
        "/USERS/LOGIN",
    ] {
        let resp = app
            .client
            .post(format!("{}{path}", app.address))
            .json(&json!({"email": "nobody@example.com", "password": "not the password"}))
            .send()
            .await
            .expect("request reaches the server");
        let status = resp.status();
        let body = resp.text().await.expect("body");
        // Either the limiter refuses it, or the router does not take it for
        // login: a login answer here would be a way around the limit.
        assert!(
            status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::NOT_FOUND,
            "POST {path} -> {status}: {body}"
        );
    }
}

// ---------------------------------------------------------------- client IP

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let app = spawn_app_with(|config| {
        config.ip_rate_limit = 3;
        config.ip_rate_window = LONG_WINDOW;
        config.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;

    exhaust_login_budget(&app, 3, Some("203.0.113.1")).await;

    expect_let_through(wrong_login(&app, Some("203.0.113.2")).await).await;
    // The client chain's last untrusted hop is the client, not what it claims left of it.
    expect_let_through(wrong_login(&app, Some("203.0.113.1, 198.51.100.9")).await).await;
    expect_rate_limited(wrong_login(&app, Some("198.51.100.2, 203.0.113.1")).await).await;
    // The proxy itself (no header) is a client of its own.
    expect_let_through(wrong_login(&app, None).await).await;
}

#[tokio::test]
async fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let app = limited_app(3, LONG_WINDOW).await;

    exhaust_login_budget(&app, 3, Some("203.0.113.1")).await;

    for spoofed in ["203.0.113.2", "198.51.100.7", "10.0.0.1, 192.0.2.44"] {
        let resp = wrong_login(&app, Some(spoofed)).await;
        assert_eq!(
            resp.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "X-Forwarded-For: {spoofed} bought a fresh budget"
        );
    }
    expect_rate_limited(wrong_login(&app, None).await).await;
}

#[tokio::test]
async fn a_session_records_the_forwarded_client_ip_behind_a_trusted_proxy() {
    let app = spawn_app_with(|config| {
        config.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    app.activated_user("proxied@example.com").await;

    let resp = login_from(
        &app,
        "proxied@example.com",
        PASSWORD,
        Some("192.0.2.1, 198.51.100.7"),
    )
    .await;
    expect_json(resp, StatusCode::OK).await;

    assert_eq!(
        session_ips(&app, "proxied@example.com").await,
        vec![Some("198.51.100.7".to_owned())]
    );
}

#[tokio::test]
async fn a_session_records_the_socket_peer_when_no_proxy_is_trusted() {
    let app = spawn_app().await;
    app.activated_user("direct@example.com").await;

    let resp = login_from(&app, "direct@example.com", PASSWORD, Some("198.51.100.7")).await;
    expect_json(resp, StatusCode::OK).await;

    assert_eq!(
        session_ips(&app, "direct@example.com").await,
        vec![Some("127.0.0.1".to_owned())]
    );
}

#[tokio::test]
async fn a_client_cannot_choose_its_ip_by_sending_its_own_x_forwarded_for_line() {
    let app = spawn_app_with(|config| {
        config.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    app.activated_user("spoof@example.com").await;

    // The client sends its own line; the trusted proxy appends a second one
    // with the address it saw. Repeated header lines are one comma-separated
    // list (RFC 9110 §5.3), so the proxy's entry is the last.
    let resp = app
        .client
        .post(format!("{}/users/login", app.address))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"email": "spoof@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("request reaches the server");
    expect_json(resp, StatusCode::OK).await;

    assert_eq!(
        session_ips(&app, "spoof@example.com").await,
        vec![Some("203.0.113.9".to_owned())]
    );
}
