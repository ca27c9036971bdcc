//! A user's own sessions: listing them, ending one, and refreshing one from
//! several tabs at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

/// Logs in with a `User-Agent`; returns (access, refresh).
async fn login_from(app: &TestApp, email: &str, user_agent: &str) -> (String, String) {
    let answer = app.api.login_from(email, PASSWORD, user_agent).await;
    let body = answer.expect(StatusCode::OK);
    (
        str_field(&body, "accessToken"),
        str_field(&body, "refreshToken"),
    )
}

async fn list_sessions(app: &TestApp, access: &str) -> Vec<Value> {
    let body = expect_json(app.api.sessions(access).await, StatusCode::OK).await;
    assert_eq!(body["success"], json!(true), "{body}");
    body["sessions"]
        .as_array()
        .expect("sessions is an array")
        .clone()
}

fn ids(sessions: &[Value]) -> Vec<String> {
    sessions.iter().map(|s| str_field(s, "sessionId")).collect()
}

fn timestamp(value: &Value, field: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&str_field(value, field))
        .unwrap_or_else(|e| panic!("`{field}` is not RFC 3339 ({e}): {value}"))
        .with_timezone(&Utc)
}

#[tokio::test]
async fn the_list_shows_each_login_newest_first_with_its_client_and_marks_this_one() {
    let app = spawn_app().await;
    app.activated_user("sam@example.com").await;
    let (laptop, _) = login_from(&app, "sam@example.com", "Laptop Firefox").await;
    let (phone, _) = login_from(&app, "sam@example.com", "Phone Safari").await;
    // Someone else's session is not listed.
    app.logged_in_user("kim@example.com").await;

    let sessions = list_sessions(&app, &laptop).await;

    assert_eq!(
        ids(&sessions),
        [session_id_of(&phone), session_id_of(&laptop)]
    );
    let (newest, oldest) = (&sessions[0], &sessions[1]);
    assert_eq!(newest["userAgent"], json!("Phone Safari"), "{newest}");
    assert_eq!(oldest["userAgent"], json!("Laptop Firefox"), "{oldest}");
    assert_eq!(newest["current"], json!(false), "{newest}");
    assert_eq!(oldest["current"], json!(true), "{oldest}");
    for session in &sessions {
        assert_eq!(session["ip"], json!("127.0.0.1"), "{session}");
        assert!(
            timestamp(session, "createdAt") <= timestamp(session, "lastUsedAt"),
            "{session}"
        );
        assert!(timestamp(session, "lastUsedAt") <= Utc::now(), "{session}");
    }
    assert!(timestamp(oldest, "createdAt") <= timestamp(newest, "createdAt"));
}

#[tokio::test]
async fn ending_another_session_stops_its_tokens_on_the_very_next_request() {
    let app = spawn_app().await;
    let (mine, my_refresh) = app.logged_in_user("sam@example.com").await;
    let (stolen, stolen_refresh) = app.another_session("sam@example.com").await;
    app.me(&stolen).await;

    let resp = app.api.revoke_session(&mine, &session_id_of(&stolen)).await;

    let body = expect_json(resp, StatusCode::OK).await;
    assert_eq!(body["success"], json!(true), "{body}");
    app.expect_token_refused(&stolen).await;
    app.expect_refresh_refused(&stolen_refresh).await;
    assert_eq!(
        ids(&list_sessions(&app, &mine).await),
        [session_id_of(&mine)]
    );
    expect_json(app.api.refresh(&my_refresh).await, StatusCode::OK).await;
}

#[tokio::test]
async fn ending_the_current_session_logs_it_out() {
    let app = spawn_app().await;
    let (access, refresh_token) = app.logged_in_user("sam@example.com").await;

    let resp = app
        .api
        .revoke_session(&access, &session_id_of(&access))
        .await;

    expect_json(resp, StatusCode::OK).await;
    app.expect_token_refused(&access).await;
    app.expect_refresh_refused(&refresh_token).await;
}

#[tokio::test]
async fn an_unknown_foreign_or_ended_session_is_not_found() {
    let app = spawn_app().await;
    let (mine, _) = app.logged_in_user("sam@example.com").await;
    let (ended, _) = app.another_session("sam@example.com").await;
    let (kims, _) = app.logged_in_user("kim@example.com").await;
    expect_json(app.api.logout_get(&ended).await, StatusCode::OK).await;

    for session_id in [
        session_id_of(&kims),
        session_id_of(&ended),
        uuid::Uuid::now_v7().to_string(),
        "not-a-session".to_owned(),
    ] {
        let resp = app.api.revoke_session(&mine, &session_id).await;
        expect_error(resp, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    }
    // Kim's session was not touched.
    app.me(&kims).await;
}

#[tokio::test]
async fn the_session_endpoints_need_a_live_session() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    let sid = session_id_of(&access);
    expect_json(app.api.logout_get(&access).await, StatusCode::OK).await;

    for resp in [
        app.api.sessions(&access).await,
        app.api
            .send(reqwest::Method::GET, "/users/me/sessions", None, None)
            .await,
        app.api.revoke_session(&access, &sid).await,
    ] {
        expect_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    }
}

#[tokio::test]
async fn using_a_session_moves_its_last_used_time() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    let long_ago = "2000-01-01T00:00:00.000000Z";
    let sql = "UPDATE sessions SET last_used_at = ? WHERE id = ?";
    let aged = app
        .db()
        .execute(sql, &[long_ago, &session_id_of(&access)])
        .await;
    assert_eq!(aged, 1, "the session was aged");
    let started = Utc::now() - chrono::Duration::seconds(1);

    app.me(&access).await;

    let sessions = list_sessions(&app, &access).await;
    assert!(
        timestamp(&sessions[0], "lastUsedAt") >= started,
        "{}",
        sessions[0]
    );
}

// ---------------------------------------------------------------- concurrent refresh

/// Presents one refresh token from `tabs` tabs at the same moment: each on
/// its own task and connection, released together by a barrier.
async fn refresh_from_tabs(app: &TestApp, refresh_token: &str, tabs: usize) -> Vec<Response> {
    let barrier = Arc::new(tokio::sync::Barrier::new(tabs));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tabs {
        let request = app
            .client
            .post(format!("{}/users/token/refresh", app.address))
            .json(&json!({ "refreshToken": refresh_token }));
        let barrier = barrier.clone();
        set.spawn(async move {
            barrier.wait().await;
            request.send().await.expect("request reaches the server")
        });
    }
    set.join_all().await
}

#[tokio::test]
async fn tabs_refreshing_with_the_same_token_at_once_all_get_working_pairs_for_the_session() {
    let app = spawn_app().await;
    assert_eq!(app.config.refresh_reuse_grace, Duration::from_secs(10));
    let (access, refresh_token) = app.logged_in_user("sam@example.com").await;
    let sid = session_id_of(&access);

    let answers = refresh_from_tabs(&app, &refresh_token, 4).await;

    let mut successors = Vec::new();
    for resp in answers {
        let body = expect_json(resp, StatusCode::OK).await;
        let tab_access = str_field(&body, "accessToken");
        assert_eq!(session_id_of(&tab_access), sid);
        app.me(&tab_access).await;
        successors.push(str_field(&body, "refreshToken"));
    }
    let mut distinct = successors.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        successors.len(),
        "each tab got its own refresh token"
    );
    for successor in &successors {
        expect_json(app.api.refresh(successor).await, StatusCode::OK).await;
    }
    assert_eq!(ids(&list_sessions(&app, &access).await), [sid]);
}

#[tokio::test]
async fn without_a_grace_window_concurrent_reuse_is_theft_and_ends_the_session() {
    let app = spawn_app_with(|config| config.refresh_reuse_grace = Duration::ZERO).await;
    let (_, refresh_token) = app.logged_in_user("sam@example.com").await;

    let answers = refresh_from_tabs(&app, &refresh_token, 3).await;

    let mut winners = Vec::new();
    for resp in answers {
        if resp.status() == StatusCode::OK {
            winners.push(expect_json(resp, StatusCode::OK).await);
        } else {
            expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one presentation spends the token"
    );
    // The reuse that followed revoked the session, the winner's pair included.
    app.expect_token_refused(&str_field(&winners[0], "accessToken"))
        .await;
    app.expect_refresh_refused(&str_field(&winners[0], "refreshToken"))
        .await;
}
