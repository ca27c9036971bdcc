//! `spawn_app()`: a real sesame on port 0 with its own database (a SQLite
//! file in a temp dir, or a fresh PostgreSQL database: [`super::backend`])
//! and a real SMTP listener capturing its mail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use sesame::app::Application;
use sesame::config::{Argon2Params, Config, MailTransport};
use sesame::domain::secret::Secret;
use tempfile::TempDir;

use super::backend;
use super::client::{Answer, Api, IntoAnswer, Signup};
use super::mailbox::MailServer;

/// How long tests wait for something that should happen (generous: CI is slow).
pub const WAIT: Duration = Duration::from_secs(30);

/// How often [`eventually`] tries again.
pub const POLL: Duration = Duration::from_millis(100);

/// Repeats `attempt` every [`POLL`] until it gives a value; fails after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A password that meets the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server, its mailbox and its database directory.
pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:PORT` of the metrics listener, when there is one.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    /// The typed client of this server's API.
    pub api: Api,
    pub mail: MailServer,
    pub config: Config,
    pub dir: Arc<TempDir>,
    app: Option<Application>,
}

/// Test configuration: cheap argon2 (the default parameters are exercised
/// by the benchmark and a dedicated test), fast outbox retries.
pub fn test_config(dir: &TempDir, mail: &MailServer) -> Config {
    let mut config = Config::defaults();
    config.bind = "127.0.0.1:0".parse().expect("valid address");
    config.database_url = backend::database_url(dir.path());
    config.mail = MailTransport::Smtp(Secret::new(mail.url()));
    config.argon2 = Argon2Params {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    config.outbox_retry_base = Duration::from_millis(50);
    config.outbox_retry_max = Duration::from_millis(500);
    // Limits that would get in the way of tests doing many things quickly
    // from one IP; the tests of the limits themselves turn them back on.
    config.ip_rate_limit = 0;
    config.email_min_interval = Duration::ZERO;
    // The metrics listener, on a port of its own (never the API's).
    config.metrics_bind = Some("127.0.0.1:0".parse().expect("valid address"));
    config
}

/// The SQLite file of a test app (on SQLite).
pub fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("sesame.db")
}

/// Starts an app with the test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an app after `adjust` changed the test configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mail = MailServer::start().await;
    let dir = Arc::new(TempDir::new().expect("temp dir"));
    let mut config = test_config(&dir, &mail);
    adjust(&mut config);
    start(config, mail, dir).await
}

async fn start(config: Config, mail: MailServer, dir: Arc<TempDir>) -> TestApp {
    let app = Application::start(config.clone())
        .await
        .expect("app starts");
    let api = Api::new(&format!("http://127.0.0.1:{}", app.port()));
    let metrics_address = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    TestApp {
        address: api.address.clone(),
        metrics_address,
        client: api.http.clone(),
        api,
        mail,
        config,
        dir,
        app: Some(app),
    }
}

impl TestApp {
    /// The password hashing queue's counters (hashes run, skipped, refused).
    pub fn hash_stats(&self) -> sesame::domain::password::QueueStats {
        let app = self.app.as_ref().expect("the app is running");
        app.state().hasher.stats()
    }

    /// `GET /metrics` on the metrics listener.
    pub async fn metrics_page(&self) -> Response {
        let address = self
            .metrics_address
            .as_deref()
            .expect("this app serves metrics (SESAME_METRICS_BIND)");
        self.client
            .get(format!("{address}/metrics"))
            .send()
            .await
            .expect("the metrics listener answers")
    }

    /// Stops the server gracefully (database closed).
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await.expect("app stops cleanly");
        }
    }

    /// Stops the server and starts a new one on the same database and mailbox,
    /// with `adjust` applied to the configuration.
    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        self.stop().await;
        let mut config = self.config.clone();
        adjust(&mut config);
        start(config, self.mail.clone(), self.dir.clone()).await
    }

    /// Sends a request with an optional JSON body and bearer token; the
    /// raw response, for tests of headers and transport.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Response {
        self.api.send_raw(method, path, body, token).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(&body), None).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.request(Method::PATCH, path, Some(&body), None).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path, None, None).await
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, None, Some(token)).await
    }

    /// Signs up with the test password.
    pub async fn signup(&self, email: &str) -> Answer {
        self.api.signup(&Signup::new(email)).await
    }

    /// Signs up with a referral code; returns the body of the `201`.
    pub async fn signup_referred(&self, email: &str, referrer: &str) -> Value {
        let form = Signup::new(email).referrer(referrer);
        self.api.signup(&form).await.expect(StatusCode::CREATED)
    }

    /// The verification code in the `nth` email to `email`, as a user reads it.
    pub async fn code_from_mail(&self, email: &str, nth: usize) -> String {
        self.mail.wait_for_mail_to(email, nth, WAIT).await.code()
    }

    /// The reset token in the `nth` email to `email`, from its link.
    pub async fn reset_token_from_mail(&self, email: &str, nth: usize) -> String {
        let mail = self.mail.wait_for_mail_to(email, nth, WAIT).await;
        mail.link_param("token")
    }

    /// Signs up and activates with the emailed code; returns the signup body.
    pub async fn activated_user(&self, email: &str) -> Value {
        let body = self.signup(email).await.expect(StatusCode::CREATED);
        let code = self.code_from_mail(email, 1).await;
        self.api.activate(email, &code).await.expect(StatusCode::OK);
        body
    }

    /// Logs in with the test password; returns the token body.
    pub async fn login(&self, email: &str) -> Value {
        self.api.login(email, PASSWORD).await.expect(StatusCode::OK)
    }

    /// Waits until every email queued so far has been delivered: the outbox
    /// delivers in order, so once a fresh address's verification email
    /// (queued last) has arrived, everything queued before it has too.
    pub async fn drain_outbox(&self, sentinel: &str) {
        let answer = self.signup(sentinel).await;
        let sent = answer.status.is_success();
        assert!(sent, "sentinel signup failed: {}", answer.text);
        self.mail.wait_for_mail_to(sentinel, 1, WAIT).await;
    }

    /// An activated, logged-in user: (access token, refresh token).
    pub async fn logged_in_user(&self, email: &str) -> (String, String) {
        self.activated_user(email).await;
        let tokens = self.login(email).await;
        (
            str_field(&tokens, "accessToken"),
            str_field(&tokens, "refreshToken"),
        )
    }
}

/// Asserts the status and returns the JSON body (the status message shows the body).
pub async fn expect_json(resp: impl IntoAnswer, status: StatusCode) -> Value {
    resp.into_answer().await.expect(status)
}

/// Asserts an error answer in the contract's shape, with its status and code.
pub async fn expect_error(resp: impl IntoAnswer, status: StatusCode, code: &str) -> Value {
    resp.into_answer().await.expect_error(status, code)
}

/// Asserts a `401` with `code` that challenges the client to bring a
/// bearer token (`WWW-Authenticate: Bearer`).
pub async fn expect_401(resp: impl IntoAnswer, code: &str) -> Value {
    let answer = resp.into_answer().await;
    let challenge = answer.header("www-authenticate").map(str::to_owned);
    let body = answer.expect_error(StatusCode::UNAUTHORIZED, code);
    assert_eq!(challenge.as_deref(), Some("Bearer"), "{body}");
    body
}

/// A string field of a JSON body.
pub fn str_field(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{field}` in {body}"))
        .to_owned()
}
