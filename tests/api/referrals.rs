//! Referral codes at signup, `GET /users/referred`, and `referredBy` in `/users/me`.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// A logged-in referrer: (access token, referral code).
async fn referrer(app: &TestApp, email: &str) -> (String, String) {
    let signup = app.activated_user(email).await;
    let tokens = app.login(email).await;
    (
        str_field(&tokens, "accessToken"),
        str_field(&signup, "referralCode"),
    )
}

/// A page of the accounts `token`'s user referred (asserting `200`).
async fn referred(app: &TestApp, token: &str, query: &str) -> Value {
    app.api.referred(token, query).await.expect(StatusCode::OK)
}

/// The masked emails of a page of referred accounts, in order.
fn emails(page: &Value) -> Vec<&str> {
    page["accounts"]
        .as_array()
        .unwrap_or_else(|| panic!("no `accounts` array in {page}"))
        .iter()
        .map(|a| {
            a["email"]
                .as_str()
                .unwrap_or_else(|| panic!("no email in {a}"))
        })
        .collect()
}

#[tokio::test]
async fn referred_lists_the_accounts_that_signed_up_with_my_code_oldest_first() {
    let app = spawn_app().await;
    let (token, code) = referrer(&app, "alice@example.com").await;

    let before = Utc::now();
    app.signup_referred("bob@example.com", &code).await;
    app.signup_referred("carol@example.net", &code).await;
    let after = Utc::now();
    expect_json(app.signup("dave@example.com").await, StatusCode::CREATED).await;

    let page = referred(&app, &token, "").await;
    assert_eq!(page["success"], json!(true), "{page}");
    assert_eq!(page["total"], json!(2), "{page}");
    assert_eq!(
        emails(&page),
        ["b***@example.com", "c***@example.net"],
        "{page}"
    );
    for account in page["accounts"].as_array().expect("accounts") {
        assert_eq!(account["active"], json!(false), "{account}");
        let joined = account["joinedAt"]
            .as_str()
            .unwrap_or_else(|| panic!("no joinedAt in {account}"));
        let joined = DateTime::parse_from_rfc3339(joined)
            .unwrap_or_else(|_| panic!("joinedAt is not RFC 3339: {account}"));
        assert_eq!(joined.offset().local_minus_utc(), 0, "not UTC: {account}");
        // Stored with microseconds: allow for the rounding.
        let slack = chrono::Duration::milliseconds(1);
        assert!(
            joined >= before - slack && joined <= after + slack,
            "joinedAt {joined} is not between {before} and {after}"
        );
    }
}

#[tokio::test]
async fn a_referral_code_is_accepted_in_any_case_and_with_surrounding_spaces() {
    let app = spawn_app().await;
    let (token, code) = referrer(&app, "alice@example.com").await;

    app.signup_referred("bob@example.com", &code.to_lowercase())
        .await;
    app.signup_referred("carol@example.com", &format!("  {code} "))
        .await;

    let page = referred(&app, &token, "").await;
    assert_eq!(page["total"], json!(2), "{page}");
}

#[tokio::test]
async fn referred_shows_which_accounts_have_activated() {
    let app = spawn_app().await;
    let (token, code) = referrer(&app, "alice@example.com").await;
    app.signup_referred("bob@example.com", &code).await;
    app.signup_referred("carol@example.com", &code).await;

    let bob_code = app.code_from_mail("bob@example.com", 1).await;
    let resp = app
        .patch(
            "/users/activate",
            json!({"email": "bob@example.com", "code": bob_code}),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;

    let page = referred(&app, &token, "").await;
    assert_eq!(
        emails(&page),
        ["b***@example.com", "c***@example.com"],
        "{page}"
    );
    assert_eq!(page["accounts"][0]["active"], json!(true), "{page}");
    assert_eq!(page["accounts"][1]["active"], json!(false), "{page}");
}

#[tokio::test]
async fn referred_pages_with_limit_and_offset() {
    let app = spawn_app().await;
    let (token, code) = referrer(&app, "alice@example.com").await;
    for email in ["ann@example.com", "bob@example.com", "cat@example.com"] {
        app.signup_referred(email, &code).await;
    }

    let first = referred(&app, &token, "?limit=2").await;
    assert_eq!(first["total"], json!(3), "{first}");
    assert_eq!(
        emails(&first),
        ["a***@example.com", "b***@example.com"],
        "{first}"
    );

    let rest = referred(&app, &token, "?offset=2").await;
    assert_eq!(rest["total"], json!(3), "{rest}");
    assert_eq!(emails(&rest), ["c***@example.com"], "{rest}");

    let second = referred(&app, &token, "?limit=2&offset=2").await;
    assert_eq!(emails(&second), ["c***@example.com"], "{second}");

    let beyond = referred(&app, &token, "?offset=3").await;
    assert_eq!(beyond["total"], json!(3), "{beyond}");
    assert_eq!(beyond["accounts"], json!([]), "{beyond}");

    let widest = referred(&app, &token, "?limit=200").await;
    assert_eq!(emails(&widest).len(), 3, "{widest}");
}

#[tokio::test]
async fn bad_paging_parameters_are_refused_with_validation_failed() {
    let app = spawn_app().await;
    let (token, _) = referrer(&app, "alice@example.com").await;
    for query in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "limit=-1",
        "limit=",
        "offset=abc",
        "offset=-1",
    ] {
        let resp = app
            .get_auth(&format!("/users/referred?{query}"), &token)
            .await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert_eq!(status, StatusCode::BAD_REQUEST, "for ?{query}: {text}");
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("for ?{query}: {text}"));
        assert_eq!(body["error"], json!(true), "for ?{query}: {body}");
        assert_eq!(
            body["code"],
            json!("VALIDATION_FAILED"),
            "for ?{query}: {body}"
        );
    }
}

#[tokio::test]
async fn referred_without_a_valid_token_is_refused_with_401_and_a_bearer_challenge() {
    let app = spawn_app().await;
    let (token, _) = referrer(&app, "alice@example.com").await;

    let garbage = format!("{token}x");
    for token in [None, Some("not-a-jwt"), Some(garbage.as_str())] {
        let resp = app
            .request(reqwest::Method::GET, "/users/referred", None, token)
            .await;
        let challenge = resp
            .headers()
            .get("WWW-Authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        expect_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        assert!(
            challenge
                .as_deref()
                .is_some_and(|c| c.starts_with("Bearer")),
            "WWW-Authenticate: {challenge:?}"
        );
    }
}

#[tokio::test]
async fn other_users_referrals_are_not_listed() {
    let app = spawn_app().await;
    let (alice, alice_code) = referrer(&app, "alice@example.com").await;
    let (zoe, zoe_code) = referrer(&app, "zoe@example.com").await;
    app.signup_referred("bob@example.com", &alice_code).await;
    app.signup_referred("yan@example.com", &zoe_code).await;
    app.signup_referred("xia@example.com", &zoe_code).await;

    let page = referred(&app, &alice, "").await;
    assert_eq!(page["total"], json!(1), "{page}");
    assert_eq!(emails(&page), ["b***@example.com"], "{page}");

    let page = referred(&app, &zoe, "").await;
    assert_eq!(page["total"], json!(2), "{page}");
    assert_eq!(
        emails(&page),
        ["y***@example.com", "x***@example.com"],
        "{page}"
    );

    // Someone who referred nobody sees an empty list.
    let (nobody, _) = referrer(&app, "walt@example.com").await;
    let page = referred(&app, &nobody, "").await;
    assert_eq!(page["total"], json!(0), "{page}");
    assert_eq!(page["accounts"], json!([]), "{page}");
}

#[tokio::test]
async fn me_shows_the_referrers_code_as_referred_by() {
    let app = spawn_app().await;
    let (alice, code) = referrer(&app, "alice@example.com").await;

    app.signup_referred("bob@example.com", &code.to_lowercase())
        .await;
    let bob_code = app.code_from_mail("bob@example.com", 1).await;
    let resp = app
        .patch(
            "/users/activate",
            json!({"email": "bob@example.com", "code": bob_code}),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    let bob = str_field(&app.login("bob@example.com").await, "accessToken");

    let me = app.api.me(&bob).await.expect(StatusCode::OK);
    assert_eq!(me["user"]["referredBy"], json!(code), "{me}");
    let me = app.api.me(&alice).await.expect(StatusCode::OK);
    assert!(me["user"]["referredBy"].is_null(), "{me}");
}
