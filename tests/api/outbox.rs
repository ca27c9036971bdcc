//! The transactional outbox: a request that causes an email succeeds while
//! SMTP is down, and the email is delivered once SMTP is back, also across a
//! restart, in order and exactly once.

use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame::app::Application;
use sesame::config::Config;
use tempfile::TempDir;

use crate::support::*;
use crate::support::{CapturedMail, MailServer, find_six_digit_code};

// ---------------------------------------------------------------- setup

/// A server started directly from a configuration: `spawn_app` always brings
/// its own live mailbox, and these tests need SMTP down at start.
struct Server {
    app: Application,
    api: Api,
}

impl Server {
    async fn start(config: Config) -> Server {
        let app = Application::start(config).await.expect("app starts");
        let api = Api::new(&format!("http://127.0.0.1:{}", app.port()));
        Server { app, api }
    }

    /// Signs up with the test password; asserts the `201`.
    async fn signup(&self, email: &str) -> Value {
        let answer = self.api.signup(&Signup::new(email)).await;
        answer.expect(StatusCode::CREATED)
    }

    /// Activates with a code, then proves it by logging in.
    async fn activate_and_log_in(&self, email: &str, code: &str) {
        self.api.activate(email, code).await.expect(StatusCode::OK);
        let tokens = self.api.login(email, PASSWORD).await.expect(StatusCode::OK);
        assert!(tokens["accessToken"].is_string(), "{tokens}");
    }

    /// The samples of `GET /metrics`.
    async fn metrics(&self) -> std::collections::HashMap<String, f64> {
        let port = self.app.metrics_port().expect("a metrics listener");
        let page = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .expect("the metrics listener answers")
            .text()
            .await
            .expect("body");
        crate::observability::samples(&page)
    }

    /// Stops gracefully: in-flight requests and the email being sent finish,
    /// the database is closed.
    async fn stop(self) {
        self.app.stop().await.expect("app stops cleanly");
    }
}

/// A port that had an SMTP server a moment ago and now refuses connections.
/// Returns the stopped server (its `url()` still names the port).
async fn smtp_outage() -> MailServer {
    let mail = MailServer::start().await;
    mail.shutdown();
    mail
}

/// Brings SMTP back on the port of a stopped server.
async fn smtp_back(stopped: &MailServer) -> MailServer {
    stopped.restart().await
}

/// Runs a `SELECT COUNT(*) ...` on the app's database; a `?` in it is
/// bound to the current time in the store's timestamp format.
async fn count(dir: &TempDir, sql: &str) -> i64 {
    let now = sesame::store::stored_text(Utc::now());
    let binds: &[&str] = if sql.contains('?') { &[&now] } else { &[] };
    TestDb::in_dir(dir.path()).count(sql, binds).await
}

/// Polls the database until `sql` counts `expected`.
async fn wait_for_count(dir: &TempDir, sql: &str, expected: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = count(dir, sql).await;
        if n == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for `{sql}` to be {expected}; it is {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Emails not delivered yet.
const UNSENT: &str = "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL";
/// Undelivered emails whose delivery was tried and failed.
const FAILED_AND_UNSENT: &str = "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND attempts >= 1 AND last_error IS NOT NULL";

fn recipients(mails: &[CapturedMail]) -> Vec<String> {
    mails
        .iter()
        .map(|m| m.to.join(",").to_ascii_lowercase())
        .collect()
}

fn code_in(mail: &CapturedMail) -> String {
    find_six_digit_code(&mail.text_body()).expect("verification email carries a 6-digit code")
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn signup_succeeds_while_smtp_is_down_and_the_code_arrives_once_smtp_is_back() {
    let down = smtp_outage().await;
    let dir = TempDir::new().expect("temp dir");
    let server = Server::start(test_config(&dir, &down)).await;

    let created = server.signup("outage@example.com").await;
    assert_eq!(created["success"], json!(true), "{created}");
    // The worker tried, failed, and kept the email for later.
    wait_for_count(&dir, FAILED_AND_UNSENT, 1).await;

    let mail = smtp_back(&down).await;
    let delivered = mail.wait_for(1, WAIT).await;
    assert_eq!(recipients(&delivered), ["outage@example.com"]);
    server
        .activate_and_log_in("outage@example.com", &code_in(&delivered[0]))
        .await;

    server.stop().await;
    assert_eq!(count(&dir, UNSENT).await, 0, "the email is marked sent");
    assert_eq!(mail.messages().len(), 1, "the email was delivered once");
}

#[tokio::test]
async fn queued_emails_survive_a_restart_and_arrive_in_order_exactly_once() {
    let down = smtp_outage().await;
    let dir = TempDir::new().expect("temp dir");
    let config = test_config(&dir, &down);
    let users = [
        "first@example.com",
        "second@example.com",
        "third@example.com",
    ];

    let before = Server::start(config.clone()).await;
    for user in users {
        before.signup(user).await;
    }
    before.stop().await;
    assert_eq!(
        count(&dir, UNSENT).await,
        3,
        "all three emails are queued, none sent"
    );

    let mail = smtp_back(&down).await;
    let after = Server::start(config).await;
    let delivered = mail.wait_for(3, WAIT).await;
    assert_eq!(recipients(&delivered[..3]), users, "signup order");

    // One more email, queued behind the others: once it is in, any duplicate
    // of the first three would have been delivered before it.
    after.signup("fourth@example.com").await;
    mail.wait_for_mail_to("fourth@example.com", 1, WAIT).await;
    let all = mail.messages();
    assert_eq!(
        recipients(&all),
        [users.as_slice(), &["fourth@example.com"]].concat(),
        "each email exactly once, in order"
    );

    // A code written before the restart still works after it.
    after
        .activate_and_log_in("first@example.com", &code_in(&all[0]))
        .await;

    after.stop().await;
    assert_eq!(
        count(&dir, UNSENT).await,
        0,
        "every outbox row is marked sent"
    );
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM outbox").await, 4);
}

#[tokio::test]
async fn an_smtp_outage_after_a_delivery_does_not_lose_the_next_email() {
    let first = MailServer::start().await;
    let dir = TempDir::new().expect("temp dir");
    let server = Server::start(test_config(&dir, &first)).await;

    server.signup("before@example.com").await;
    first.wait_for_mail_to("before@example.com", 1, WAIT).await;

    // The worker may hold a pooled connection to the old server: it must
    // notice it is dead and retry, not drop the email.
    first.shutdown();
    server.signup("during@example.com").await;
    wait_for_count(&dir, FAILED_AND_UNSENT, 1).await;

    let second = smtp_back(&first).await;
    let delivered = second.wait_for_mail_to("during@example.com", 1, WAIT).await;
    server
        .activate_and_log_in("during@example.com", &code_in(&delivered))
        .await;

    server.stop().await;
    assert_eq!(count(&dir, UNSENT).await, 0);
    assert_eq!(
        recipients(&first.messages()),
        ["before@example.com"],
        "nothing reached the old server after it went down"
    );
    assert_eq!(
        recipients(&second.messages()),
        ["during@example.com"],
        "delivered once after the outage"
    );
}

#[tokio::test]
async fn an_email_waiting_out_its_backoff_is_not_overtaken_by_a_later_one() {
    let down = smtp_outage().await;
    let dir = TempDir::new().expect("temp dir");
    let mut config = test_config(&dir, &down);
    config.outbox_retry_base = Duration::from_secs(1);
    config.outbox_retry_max = Duration::from_secs(10);
    let server = Server::start(config).await;

    server.signup("earlier@example.com").await;
    // Two failures: the earlier email's next try is 2 s after the second one.
    wait_for_count(&dir, "SELECT COUNT(*) FROM outbox WHERE attempts >= 2", 1).await;
    // Queued while the earlier one waits out its backoff. Whether the worker
    // tries it at once (and fails) or not, it must not go out first: the
    // earlier email is still in the queue ahead of it.
    server.signup("later@example.com").await;

    let mail = smtp_back(&down).await;
    let delivered = mail.wait_for(2, WAIT).await;
    assert_eq!(
        recipients(&delivered),
        ["earlier@example.com", "later@example.com"],
        "emails are delivered in the order they were queued"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_full_outbox_drains_in_order_without_duplicates_when_smtp_returns() {
    let down = smtp_outage().await;
    let dir = TempDir::new().expect("temp dir");
    let server = Server::start(test_config(&dir, &down)).await;
    // More than the worker fetches in one round (20).
    let users: Vec<String> = (0..25)
        .map(|i| format!("queued-{i:02}@example.com"))
        .collect();
    for user in &users {
        server.signup(user).await;
    }
    wait_for_count(&dir, FAILED_AND_UNSENT, 1).await;
    let metrics = server.metrics().await;
    assert_eq!(metrics["sesame_outbox_depth"], 25.0);
    assert_eq!(metrics["sesame_emails_queued_total"], 25.0);
    assert_eq!(metrics["sesame_emails_sent_total"], 0.0);
    assert!(metrics["sesame_email_delivery_retries_total"] >= 1.0);

    let mail = smtp_back(&down).await;
    let delivered = mail.wait_for(users.len(), WAIT).await;
    assert_eq!(recipients(&delivered[..users.len()]), users, "queue order");

    // One more behind them: any duplicate would have arrived before it.
    server.signup("last@example.com").await;
    mail.wait_for_mail_to("last@example.com", 1, WAIT).await;
    assert_eq!(
        recipients(&mail.messages()),
        [users.as_slice(), &["last@example.com".to_owned()]].concat(),
        "each email exactly once, in order"
    );
    wait_for_count(&dir, UNSENT, 0).await;
    let metrics = server.metrics().await;
    assert_eq!(metrics["sesame_outbox_depth"], 0.0);
    assert_eq!(metrics["sesame_emails_sent_total"], 26.0);
    server.stop().await;
}

#[tokio::test]
async fn two_instances_on_one_database_deliver_each_email_once_in_queue_order() {
    // Both queue emails while SMTP is down, so both workers are waiting to
    // drain the same queue when it comes back.
    let down = smtp_outage().await;
    let dir = TempDir::new().expect("temp dir");
    let one = Server::start(test_config(&dir, &down)).await;
    let two = Server::start(test_config(&dir, &down)).await;
    let users: Vec<String> = (0..30)
        .map(|i| format!("pair-{i:02}@example.com"))
        .collect();
    for (i, user) in users.iter().enumerate() {
        let server = if i % 2 == 0 { &one } else { &two };
        server.signup(user).await;
    }
    wait_for_count(&dir, FAILED_AND_UNSENT, 1).await;

    let mail = smtp_back(&down).await;
    mail.wait_for(users.len(), WAIT).await;
    wait_for_count(&dir, UNSENT, 0).await;
    // A stop finishes the email being sent: any duplicate in flight lands.
    one.stop().await;
    two.stop().await;
    assert_eq!(
        recipients(&mail.messages()),
        users,
        "each email exactly once, in queue order"
    );
}

#[tokio::test]
async fn a_lease_left_by_a_crashed_process_is_taken_over_once_it_expires() {
    let mail = MailServer::start().await;
    let dir = TempDir::new().expect("temp dir");
    let server = Server::start(test_config(&dir, &mail)).await;
    // A process that held the lease and died: nobody releases it.
    let expires = sesame::store::stored_text(Utc::now() + chrono::Duration::seconds(2));
    let planted = TestDb::in_dir(dir.path())
        .execute(
            "INSERT INTO outbox_lease (id, holder, expires_at) VALUES (1, 'crashed', ?) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
            &[&expires],
        )
        .await;
    assert_eq!(planted, 1, "a stale lease is planted");

    server.signup("after-the-crash@example.com").await;
    let arrived = mail
        .wait_for_mail_to("after-the-crash@example.com", 1, WAIT)
        .await;
    assert_eq!(code_in(&arrived).len(), 6);
    // Given up once the queue is empty.
    wait_for_count(&dir, "SELECT COUNT(*) FROM outbox_lease", 0).await;
    server.stop().await;
}
