//! Sessions as a user sees them: logging in, reading the profile with the
//! access token, what an unauthenticated call gets, and logging out.

use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

fn rfc3339_utc(value: &Value, field: &str) -> DateTime<Utc> {
    let text = value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{field}` in {value}"));
    let parsed = DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("`{field}` is not RFC 3339 ({e}): {text}"));
    assert_eq!(
        parsed.offset().local_minus_utc(),
        0,
        "`{field}` is not UTC: {text}"
    );
    parsed.with_timezone(&Utc)
}

#[tokio::test]
async fn login_answers_a_bearer_token_pair_that_is_never_cached() {
    let app = spawn_app().await;
    app.activated_user("sam@example.com").await;

    let resp = app.api.login("sam@example.com", PASSWORD).await;
    let cache_control = resp.headers().get(CACHE_CONTROL).cloned();
    let body = expect_json(resp, StatusCode::OK).await;

    assert_eq!(body["success"], json!(true), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["tokenType"], json!("Bearer"), "{body}");
    assert_eq!(body["expiresIn"], json!(900), "{body}");
    let access = str_field(&body, "accessToken");
    let refresh_token = str_field(&body, "refreshToken");
    assert_eq!(access.split('.').count(), 3, "not a JWT: {access}");
    assert!(!refresh_token.is_empty() && refresh_token != access);
    assert_eq!(
        cache_control.as_ref().and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    // The pair is real: the access token opens the profile.
    expect_json(app.api.me(&access).await, StatusCode::OK).await;
}

#[tokio::test]
async fn login_answers_an_unknown_email_and_a_wrong_password_identically() {
    let app = spawn_app().await;
    app.activated_user("sam@example.com").await;

    let unknown = app.api.login("nobody@example.com", PASSWORD).await;
    let unknown = expect_error(unknown, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    let wrong = app
        .api
        .login("sam@example.com", "not the right password")
        .await;
    let wrong = expect_error(wrong, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;

    assert_eq!(unknown, wrong);
}

#[tokio::test]
async fn the_profile_shows_every_field_of_the_contract() {
    let app = spawn_app().await;
    let signup = expect_json(
        app.post(
            "/users/signup",
            json!({
                "email": "Sam@Example.com",
                "password": PASSWORD,
                "confirmPassword": PASSWORD,
                "name": "Sam Doe",
            }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let code = app.code_from_mail("sam@example.com", 1).await;
    let activated = app
        .patch(
            "/users/activate",
            json!({"email": "sam@example.com", "code": code}),
        )
        .await;
    expect_json(activated, StatusCode::OK).await;
    let access = str_field(&app.login("sam@example.com").await, "accessToken");

    let me = expect_json(app.api.me(&access).await, StatusCode::OK).await;

    assert_eq!(me["success"], json!(true), "{me}");
    let user = &me["user"];
    assert_eq!(user["userId"], signup["userId"], "{me}");
    assert!(
        uuid::Uuid::parse_str(&str_field(user, "userId")).is_ok(),
        "{me}"
    );
    assert_eq!(user["email"], json!("sam@example.com"), "{me}");
    assert_eq!(user["name"], json!("Sam Doe"), "{me}");
    assert_eq!(user["active"], json!(true), "{me}");
    assert_eq!(user["role"], json!("user"), "{me}");
    assert_eq!(user["referralCode"], signup["referralCode"], "{me}");
    assert_eq!(user["referredBy"], Value::Null, "{me}");
    assert!(
        user.as_object()
            .is_some_and(|u| u.contains_key("referredBy")),
        "`referredBy` must be present (as null): {me}"
    );
    let created = rfc3339_utc(user, "createdAt");
    let updated = rfc3339_utc(user, "updatedAt");
    assert!(created <= updated, "{me}");
    assert!(created <= Utc::now(), "{me}");
    let leaked: Vec<&String> = user
        .as_object()
        .expect("user is an object")
        .keys()
        .filter(|k| k.to_lowercase().contains("password") || k.to_lowercase().contains("hash"))
        .collect();
    assert!(leaked.is_empty(), "profile leaks {leaked:?}: {me}");
}

#[tokio::test]
async fn the_profile_without_a_token_is_unauthorized() {
    let app = spawn_app().await;

    expect_401(app.get("/users/me").await, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn the_profile_with_a_garbage_token_is_unauthorized() {
    let app = spawn_app().await;

    expect_401(app.api.me("not-a-jwt").await, "UNAUTHORIZED").await;
    expect_401(app.api.me("a.b.c").await, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn the_profile_with_a_token_lacking_the_bearer_prefix_is_unauthorized() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;

    let resp = app
        .client
        .get(format!("{}/users/me", app.address))
        .header(AUTHORIZATION, &access)
        .send()
        .await
        .expect("request reaches the server");

    expect_401(resp, "UNAUTHORIZED").await;
    // The same token with the prefix works, so the prefix was what mattered.
    expect_json(app.api.me(&access).await, StatusCode::OK).await;
}

#[tokio::test]
async fn get_logout_ends_the_session_at_once() {
    let app = spawn_app().await;
    let (access, refresh_token) = app.logged_in_user("sam@example.com").await;
    expect_json(app.api.me(&access).await, StatusCode::OK).await;

    let body = expect_json(app.api.logout_get(&access).await, StatusCode::OK).await;

    assert_eq!(body["success"], json!(true), "{body}");
    expect_401(app.api.me(&access).await, "UNAUTHORIZED").await;
    app.expect_refresh_refused(&refresh_token).await;
}

/// Many requests at once, over several sessions, each get their own user
/// or, for a session ended before they were sent, `401`. On PostgreSQL the
/// lookups that wait together share one query (`store/session_reads.rs`):
/// this is what shows a batch answers each one with its own row.
#[tokio::test]
async fn concurrent_requests_each_see_their_own_session() {
    let app = spawn_app().await;
    let mut sessions = Vec::new();
    for i in 0..6 {
        let email = format!("user{i}@example.com");
        let (access, _) = app.logged_in_user(&email).await;
        sessions.push((email, access));
    }
    // A second login of user0: a live session next to one that ends.
    let second_of_user0 = str_field(&app.login("user0@example.com").await, "accessToken");
    for (_, access) in sessions.iter().skip(4) {
        app.api.logout(access, None).await.expect(StatusCode::OK);
    }
    app.api
        .logout(&sessions[0].1, None)
        .await
        .expect(StatusCode::OK);
    sessions.push(("user0@example.com".to_owned(), second_of_user0));
    let ended = |i: usize| i == 0 || i == 4 || i == 5;

    let mut requests = tokio::task::JoinSet::new();
    for round in 0..20 {
        for (i, (email, access)) in sessions.iter().enumerate() {
            let (api, email, access) = (app.api.clone(), email.clone(), access.clone());
            requests.spawn(async move { (round, i, email, api.me(&access).await) });
        }
    }
    let mut answered = 0;
    while let Some(done) = requests.join_next().await {
        let (round, i, email, answer) = done.expect("request task");
        if ended(i) {
            answer.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        } else {
            let body = answer.expect(StatusCode::OK);
            assert_eq!(body["user"]["email"], json!(email), "round {round}: {body}");
        }
        answered += 1;
    }
    assert_eq!(answered, 20 * 7);
}

/// On PostgreSQL, a batch of session reads that fails (here: the server
/// ended every connection sesame held) answers no request "session
/// ended": each is `200` or `503 STORAGE_UNAVAILABLE` with `Retry-After`,
/// and the checks after it succeed again.
#[tokio::test]
async fn token_checks_whose_database_connections_were_cut_answer_503_never_401() {
    if !on_postgres() {
        eprintln!("skipped: batched session reads exist on PostgreSQL only");
        return;
    }
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    app.api.me(&access).await.expect(StatusCode::OK);

    let cut: i64 = app
        .db()
        .scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'sesame' \
             AND pid <> pg_backend_pid()",
            &[],
        )
        .await;
    assert!(cut > 0, "sesame held no connection to cut");

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (api, access) = (app.api.clone(), access.clone());
        requests.spawn(async move { api.me(&access).await });
    }
    while let Some(done) = requests.join_next().await {
        let answer = done.expect("request task");
        if answer.status() != StatusCode::OK {
            assert!(
                answer.headers().contains_key("retry-after"),
                "{}",
                answer.text
            );
            answer.expect_error(StatusCode::SERVICE_UNAVAILABLE, "STORAGE_UNAVAILABLE");
        }
    }
    // The pool replaces the connections it found cut.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.api.me(&access).await.status() != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "token checks never recovered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn post_logout_without_a_body_ends_the_current_session() {
    let app = spawn_app().await;
    let (access, refresh_token) = app.logged_in_user("sam@example.com").await;

    let body = expect_json(app.api.logout(&access, None).await, StatusCode::OK).await;

    assert_eq!(body["success"], json!(true), "{body}");
    expect_401(app.api.me(&access).await, "UNAUTHORIZED").await;
    app.expect_refresh_refused(&refresh_token).await;
}

#[tokio::test]
async fn post_logout_with_an_empty_object_ends_only_the_current_session() {
    let app = spawn_app().await;
    let (first, first_refresh) = app.logged_in_user("sam@example.com").await;
    let second = app.login("sam@example.com").await;
    let (second, second_refresh) = (
        str_field(&second, "accessToken"),
        str_field(&second, "refreshToken"),
    );

    let body = expect_json(
        app.api
            .send(
                Method::POST,
                "/users/logout",
                Some(&json!({})),
                Some(&first),
            )
            .await,
        StatusCode::OK,
    )
    .await;

    assert_eq!(body["success"], json!(true), "{body}");
    expect_401(app.api.me(&first).await, "UNAUTHORIZED").await;
    app.expect_refresh_refused(&first_refresh).await;
    expect_json(app.api.me(&second).await, StatusCode::OK).await;
    expect_json(app.api.refresh(&second_refresh).await, StatusCode::OK).await;
}

#[tokio::test]
async fn post_logout_with_all_ends_every_session_of_the_user() {
    let app = spawn_app().await;
    let (first, first_refresh) = app.logged_in_user("sam@example.com").await;
    let second = app.login("sam@example.com").await;
    let (second, second_refresh) = (
        str_field(&second, "accessToken"),
        str_field(&second, "refreshToken"),
    );
    // Another user's session is not touched.
    let (other, _) = app.logged_in_user("kim@example.com").await;

    let body = expect_json(app.api.logout(&first, Some(true)).await, StatusCode::OK).await;

    assert_eq!(body["success"], json!(true), "{body}");
    for access in [&first, &second] {
        expect_401(app.api.me(access).await, "UNAUTHORIZED").await;
    }
    for refresh_token in [&first_refresh, &second_refresh] {
        app.expect_refresh_refused(refresh_token).await;
    }
    expect_json(app.api.me(&other).await, StatusCode::OK).await;
}

#[tokio::test]
async fn post_logout_with_all_false_ends_only_the_current_session() {
    let app = spawn_app().await;
    let (first, _) = app.logged_in_user("sam@example.com").await;
    let second = str_field(&app.login("sam@example.com").await, "accessToken");

    expect_json(app.api.logout(&first, Some(false)).await, StatusCode::OK).await;

    expect_401(app.api.me(&first).await, "UNAUTHORIZED").await;
    expect_json(app.api.me(&second).await, StatusCode::OK).await;
}

#[tokio::test]
async fn logout_without_a_token_is_unauthorized() {
    let app = spawn_app().await;

    expect_401(app.get("/users/logout").await, "UNAUTHORIZED").await;
    expect_401(
        app.request(Method::POST, "/users/logout", Some(&json!({})), None)
            .await,
        "UNAUTHORIZED",
    )
    .await;
}

/// Sets `disabled` on an account directly in the database, as an operator would.
async fn disable_in_database(app: &TestApp, email: &str) {
    let sql = "UPDATE users SET disabled = TRUE WHERE email = ?";
    let changed = app.db().execute(sql, &[email]).await;
    assert_eq!(changed, 1, "no user {email} in the database");
}

#[tokio::test]
async fn a_disabled_account_is_told_so_only_with_the_right_password() {
    let app = spawn_app().await;
    app.activated_user("sam@example.com").await;
    disable_in_database(&app, "sam@example.com").await;

    let right = app.api.login("sam@example.com", PASSWORD).await;
    expect_error(right, StatusCode::FORBIDDEN, "ACCOUNT_DISABLED").await;
    let wrong = app
        .api
        .login("sam@example.com", "not the right password")
        .await;
    expect_error(wrong, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
}

#[tokio::test]
async fn disabling_an_account_stops_its_existing_tokens() {
    let app = spawn_app().await;
    let (access, refresh_token) = app.logged_in_user("sam@example.com").await;
    expect_json(app.api.me(&access).await, StatusCode::OK).await;

    disable_in_database(&app, "sam@example.com").await;

    expect_401(app.api.me(&access).await, "UNAUTHORIZED").await;
    app.expect_refresh_refused(&refresh_token).await;
}
