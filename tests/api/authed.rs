//! Helpers for the account, session and admin tests: requests with a bearer
//! token, admins made as `sesame admin create` makes them, and direct
//! access to the test database for what the API does not show.
// Not every test file uses every helper.
#![allow(dead_code)]

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::SqlitePool;

use crate::helpers::*;

impl TestApp {
    pub async fn patch_auth(&self, path: &str, body: Value, token: &str) -> Response {
        self.request(Method::PATCH, path, Some(&body), Some(token))
            .await
    }

    pub async fn post_auth(&self, path: &str, body: Value, token: &str) -> Response {
        self.request(Method::POST, path, Some(&body), Some(token))
            .await
    }

    pub async fn delete_auth(&self, path: &str, body: Option<Value>, token: &str) -> Response {
        self.request(Method::DELETE, path, body.as_ref(), Some(token))
            .await
    }

    /// Makes an active admin the way `sesame admin create` does (with the
    /// test's cheap argon2 parameters) and logs in; returns the access token.
    pub async fn admin_token(&self, email: &str) -> String {
        sesame::cli::admin::create_admin(
            &self.config.database_url,
            self.config.argon2,
            email,
            PASSWORD,
        )
        .await
        .expect("admin created");
        str_field(&self.login(email).await, "accessToken")
    }

    /// The profile behind an access token (asserting `200`).
    pub async fn me(&self, token: &str) -> Value {
        let body = expect_json(self.get_auth("/users/me", token).await, StatusCode::OK).await;
        body["user"].clone()
    }

    /// Opens the test database directly (close it when done).
    pub async fn db(&self) -> SqlitePool {
        SqlitePool::connect(&format!("sqlite://{}", db_path(&self.dir).display()))
            .await
            .expect("open the test database")
    }

    /// Runs a `SELECT COUNT(*) ...` on the database file, binding `binds`.
    pub async fn count(&self, sql: &str, binds: &[&str]) -> i64 {
        let db = self.db().await;
        let mut query = sqlx::query_scalar(sql);
        for value in binds {
            query = query.bind(*value);
        }
        let count = query
            .fetch_one(&db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        db.close().await;
        count
    }

    /// How many rows of `table` have `column = value`.
    pub async fn count_rows(&self, table: &str, column: &str, value: &str) -> i64 {
        self.count(
            &format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?"),
            &[value],
        )
        .await
    }
}

/// Logs in with a password; the raw answer.
pub async fn login_with(app: &TestApp, email: &str, password: &str) -> Response {
    app.post(
        "/users/login",
        json!({"email": email, "password": password}),
    )
    .await
}

/// Presents a refresh token; the raw answer.
pub async fn refresh(app: &TestApp, refresh_token: &str) -> Response {
    app.post(
        "/users/token/refresh",
        json!({ "refreshToken": refresh_token }),
    )
    .await
}

/// Asserts the `401 UNAUTHORIZED` a dead access token gets.
pub async fn expect_token_refused(app: &TestApp, access: &str) {
    expect_error(
        app.get_auth("/users/me", access).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;
}

/// Asserts the `401 INVALID_TOKEN` a dead refresh token gets.
pub async fn expect_refresh_refused(app: &TestApp, refresh_token: &str) {
    expect_error(
        refresh(app, refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_TOKEN",
    )
    .await;
}

/// A second login of an activated user: (access, refresh).
pub async fn another_session(app: &TestApp, email: &str) -> (String, String) {
    let tokens = app.login(email).await;
    (
        str_field(&tokens, "accessToken"),
        str_field(&tokens, "refreshToken"),
    )
}

/// The `sid` claim of an access token.
pub fn session_id_of(access: &str) -> String {
    use base64::Engine;
    let claims = access.split('.').nth(1).expect("a JWT");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .expect("base64url claims");
    let claims: Value = serde_json::from_slice(&claims).expect("JSON claims");
    str_field(&claims, "sid")
}
