//! Accounts in the states tests start from: admins made as `sesame admin
//! create` makes them, extra sessions, refused tokens, and the test
//! database behind an app.
// Not every test file uses every helper.
#![allow(dead_code)]

use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use super::app::*;
use super::database::TestDb;

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
        let body = self.api.me(token).await.expect(StatusCode::OK);
        body["user"].clone()
    }

    /// The app's database file.
    pub fn db(&self) -> TestDb {
        TestDb::at(&self.config.database_url)
    }

    /// A second login of an activated user: (access, refresh).
    pub async fn another_session(&self, email: &str) -> (String, String) {
        let tokens = self.login(email).await;
        (
            str_field(&tokens, "accessToken"),
            str_field(&tokens, "refreshToken"),
        )
    }

    /// Asserts the `401 UNAUTHORIZED` a dead access token gets.
    pub async fn expect_token_refused(&self, access: &str) {
        let answer = self.api.me(access).await;
        answer.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }

    /// Asserts the `401 INVALID_TOKEN` a dead refresh token gets.
    pub async fn expect_refresh_refused(&self, refresh_token: &str) {
        let answer = self.api.refresh(refresh_token).await;
        answer.expect_error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    }
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
