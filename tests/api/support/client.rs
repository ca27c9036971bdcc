//! A typed client of sesame's HTTP API: one method per operation of
//! `openapi.json`, each answering an [`Answer`] (status, headers, JSON body).
//! Tests that send what no well-behaved client would (broken JSON, odd
//! headers) keep using [`crate::support::TestApp::request`] and friends.
// Not every test uses every operation.
#![allow(dead_code)]

use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use super::app::{PASSWORD, WAIT};

/// What the server answered: status, headers and the body read as JSON
/// (`Value::Null` when it is not JSON; `text` keeps it as sent).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Answer {
    /// Reads a whole response.
    pub async fn read(resp: Response) -> Answer {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("the body arrives");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            body,
        }
    }

    /// Asserts the status and a JSON body; the body (the message shows it).
    pub fn expect(self, status: StatusCode) -> Value {
        let text = &self.text;
        assert_eq!(self.status, status, "unexpected status; body: {text}");
        assert!(
            serde_json::from_str::<Value>(text).is_ok(),
            "body is not JSON: {text}"
        );
        self.body
    }

    /// Asserts an error in the contract's shape, with its status and code.
    pub fn expect_error(self, status: StatusCode, code: &str) -> Value {
        let body = self.expect(status);
        assert_eq!(body["error"], json!(true), "{body}");
        assert_eq!(body["code"], json!(code), "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        body
    }

    /// The status (as `reqwest::Response::status` spells it).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers (as `reqwest::Response::headers` spells it).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The status and the body as sent, to compare two answers whole.
    pub fn status_and_text(self) -> (StatusCode, String) {
        (self.status, self.text)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Something that becomes an [`Answer`]: a raw response or an answer already read.
// Only this binary uses the trait, so the future's missing `Send` bound bothers no one.
#[allow(async_fn_in_trait)]
pub trait IntoAnswer {
    async fn into_answer(self) -> Answer;
}

impl IntoAnswer for Response {
    async fn into_answer(self) -> Answer {
        Answer::read(self).await
    }
}

impl IntoAnswer for Answer {
    async fn into_answer(self) -> Answer {
        self
    }
}

/// The body of `POST /users/signup`; [`Signup::new`] fills in the test
/// password twice.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Signup {
    pub email: String,
    pub password: String,
    pub confirm_password: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Signup {
    pub fn new(email: &str) -> Signup {
        Signup {
            email: email.to_owned(),
            password: PASSWORD.to_owned(),
            confirm_password: PASSWORD.to_owned(),
            referrer: None,
            name: None,
        }
    }

    /// The password, confirmed alike.
    pub fn password(mut self, password: &str) -> Signup {
        self.password = password.to_owned();
        self.confirm_password = password.to_owned();
        self
    }

    pub fn confirm(mut self, confirm_password: &str) -> Signup {
        self.confirm_password = confirm_password.to_owned();
        self
    }

    pub fn referrer(mut self, code: &str) -> Signup {
        self.referrer = Some(code.to_owned());
        self
    }

    pub fn name(mut self, name: &str) -> Signup {
        self.name = Some(name.to_owned());
        self
    }

    /// The body as JSON, for tests that send it their own way.
    pub fn json(&self) -> Value {
        serde_json::to_value(self).expect("a signup body")
    }
}

/// The HTTP API of one running server.
#[derive(Clone)]
pub struct Api {
    pub address: String,
    pub http: reqwest::Client,
}

impl Api {
    /// A client for the server at `address` (`http://127.0.0.1:PORT`).
    pub fn new(address: &str) -> Api {
        let http = reqwest::Client::builder()
            .timeout(WAIT)
            .build()
            .expect("client");
        Api {
            address: address.to_owned(),
            http,
        }
    }

    /// Sends one request with an optional JSON body and bearer token.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Answer {
        Answer::read(self.send_raw(method, path, body, token).await).await
    }

    /// [`Api::send`], leaving the response unread.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Response {
        let mut req = self.http.request(method, format!("{}{path}", self.address));
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request reaches the server")
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Method::GET, path, None, token).await
    }

    // ------------------------------------------------------------ system

    /// `GET /ping`
    pub async fn ping(&self) -> Answer {
        self.get("/ping", None).await
    }

    /// `GET /health/live`
    pub async fn health_live(&self) -> Answer {
        self.get("/health/live", None).await
    }

    /// `GET /health/ready`
    pub async fn health_ready(&self) -> Answer {
        self.get("/health/ready", None).await
    }

    /// `GET /.well-known/jwks.json`
    pub async fn jwks(&self) -> Answer {
        self.get("/.well-known/jwks.json", None).await
    }

    // ------------------------------------------------------------ accounts

    /// `POST /users/signup`
    pub async fn signup(&self, form: &Signup) -> Answer {
        self.send(Method::POST, "/users/signup", Some(&form.json()), None)
            .await
    }

    /// `PATCH /users/activate`
    pub async fn activate(&self, email: &str, code: &str) -> Answer {
        let body = json!({"email": email, "code": code});
        self.send(Method::PATCH, "/users/activate", Some(&body), None)
            .await
    }

    /// `POST /users/activate/resend`
    pub async fn resend_activation(&self, email: &str) -> Answer {
        let body = json!({"email": email});
        self.send(Method::POST, "/users/activate/resend", Some(&body), None)
            .await
    }

    /// `POST /users/login`
    pub async fn login(&self, email: &str, password: &str) -> Answer {
        let body = json!({"email": email, "password": password});
        self.send(Method::POST, "/users/login", Some(&body), None)
            .await
    }

    /// `POST /users/login` from a browser that names itself (`User-Agent`).
    pub async fn login_from(&self, email: &str, password: &str, user_agent: &str) -> Answer {
        let body = json!({"email": email, "password": password});
        let req = self.http.post(format!("{}/users/login", self.address));
        let req = req
            .header(reqwest::header::USER_AGENT, user_agent)
            .json(&body);
        Answer::read(req.send().await.expect("request reaches the server")).await
    }

    /// `POST /users/token/refresh`
    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        let body = json!({"refreshToken": refresh_token});
        self.send(Method::POST, "/users/token/refresh", Some(&body), None)
            .await
    }

    /// `PATCH /users/forgot`
    pub async fn forgot_password(&self, email: &str) -> Answer {
        let body = json!({"email": email});
        self.send(Method::PATCH, "/users/forgot", Some(&body), None)
            .await
    }

    /// `PATCH /users/reset`, with the new password confirmed alike.
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Answer {
        self.reset_password_confirmed(token, new_password, new_password)
            .await
    }

    /// `PATCH /users/reset` with a confirmation of the caller's choice.
    pub async fn reset_password_confirmed(
        &self,
        token: &str,
        new_password: &str,
        confirm_password: &str,
    ) -> Answer {
        let body = json!({"token": token, "newPassword": new_password, "confirmPassword": confirm_password});
        self.send(Method::PATCH, "/users/reset", Some(&body), None)
            .await
    }

    /// `PATCH /users/email/revert`
    pub async fn revert_email_change(&self, token: &str) -> Answer {
        let body = json!({"token": token});
        self.send(Method::PATCH, "/users/email/revert", Some(&body), None)
            .await
    }

    // ------------------------------------------------------------ the signed-in user

    /// `GET /users/me`
    pub async fn me(&self, token: &str) -> Answer {
        self.get("/users/me", Some(token)).await
    }

    /// `PATCH /users/me` (the body as the test wants it: `name` may be null).
    pub async fn update_me(&self, token: &str, body: &Value) -> Answer {
        self.send(Method::PATCH, "/users/me", Some(body), Some(token))
            .await
    }

    /// `DELETE /users/me`
    pub async fn delete_me(&self, token: &str, password: &str) -> Answer {
        let body = json!({"password": password});
        self.send(Method::DELETE, "/users/me", Some(&body), Some(token))
            .await
    }

    /// `DELETE /users/me` with a second-factor `code` for the step-up.
    pub async fn delete_me_with_code(&self, token: &str, password: &str, code: &str) -> Answer {
        let body = json!({"password": password, "code": code});
        self.send(Method::DELETE, "/users/me", Some(&body), Some(token))
            .await
    }

    /// `GET /users/referred` with a query string such as `?limit=2` (or "").
    pub async fn referred(&self, token: &str, query: &str) -> Answer {
        self.get(&format!("/users/referred{query}"), Some(token))
            .await
    }

    /// `PATCH /users/me/password`, with the new password confirmed alike.
    pub async fn change_password(&self, token: &str, current: &str, new: &str) -> Answer {
        let body = json!({"currentPassword": current, "newPassword": new, "confirmPassword": new});
        self.send(
            Method::PATCH,
            "/users/me/password",
            Some(&body),
            Some(token),
        )
        .await
    }

    /// `POST /users/me/email`
    pub async fn request_email_change(
        &self,
        token: &str,
        new_email: &str,
        password: &str,
    ) -> Answer {
        let body = json!({"newEmail": new_email, "password": password});
        self.send(Method::POST, "/users/me/email", Some(&body), Some(token))
            .await
    }

    /// `PATCH /users/me/email`
    pub async fn confirm_email_change(&self, token: &str, code: &str) -> Answer {
        let body = json!({"code": code});
        self.send(Method::PATCH, "/users/me/email", Some(&body), Some(token))
            .await
    }

    /// `GET /users/me/sessions`
    pub async fn sessions(&self, token: &str) -> Answer {
        self.get("/users/me/sessions", Some(token)).await
    }

    /// `DELETE /users/me/sessions/{sessionId}`
    pub async fn revoke_session(&self, token: &str, session_id: &str) -> Answer {
        let path = format!("/users/me/sessions/{session_id}");
        self.send(Method::DELETE, &path, None, Some(token)).await
    }

    /// `GET /users/logout`: ends this session.
    pub async fn logout_get(&self, token: &str) -> Answer {
        self.get("/users/logout", Some(token)).await
    }

    /// `POST /users/logout`: ends this session, or every one with `all`.
    pub async fn logout(&self, token: &str, all: Option<bool>) -> Answer {
        let body = all.map(|all| json!({"all": all}));
        self.send(Method::POST, "/users/logout", body.as_ref(), Some(token))
            .await
    }

    // ------------------------------------------------------------ admin

    /// `GET /admin/users` with a query string such as `?search=x` (or "").
    pub async fn list_accounts(&self, token: &str, query: &str) -> Answer {
        self.get(&format!("/admin/users{query}"), Some(token)).await
    }

    /// `GET /admin/users/{userId}`
    pub async fn get_account(&self, token: &str, user_id: &str) -> Answer {
        self.get(&format!("/admin/users/{user_id}"), Some(token))
            .await
    }

    /// `PATCH /admin/users/{userId}`
    pub async fn update_account(&self, token: &str, user_id: &str, body: &Value) -> Answer {
        let path = format!("/admin/users/{user_id}");
        self.send(Method::PATCH, &path, Some(body), Some(token))
            .await
    }

    /// `DELETE /admin/users/{userId}`
    pub async fn delete_account(&self, token: &str, user_id: &str) -> Answer {
        let path = format!("/admin/users/{user_id}");
        self.send(Method::DELETE, &path, None, Some(token)).await
    }
}
