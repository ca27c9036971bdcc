//! Graceful shutdown: on SIGTERM the server stops accepting, finishes the
//! requests in flight and the email being sent, closes the database and
//! exits 0, all within a bound.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tempfile::TempDir;

use crate::support::MailServer;
use crate::support::process::{Server, sesame};
use crate::support::*;

/// `sesame_http_requests_in_flight` from the metrics page.
async fn in_flight(client: &reqwest::Client, address: &str) -> f64 {
    let page = client
        .get(format!("{address}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    page.lines()
        .find_map(|l| l.strip_prefix("sesame_http_requests_in_flight "))
        .and_then(|v| v.parse().ok())
        .expect("an in-flight gauge")
}

#[tokio::test]
async fn sigterm_during_a_slow_signup_lets_it_finish_then_exits_0() {
    let dir = TempDir::new().expect("temp dir");
    let mail = MailServer::start().await;
    let mut cmd = sesame(dir.path());
    // Expensive hashing: the signup takes seconds, long enough to be caught
    // in flight.
    cmd.env("SESAME_SMTP_URL", mail.url())
        .env("SESAME_METRICS_BIND", "127.0.0.1:0")
        .env("SESAME_ARGON2_MEMORY_KIB", "65536")
        .env("SESAME_ARGON2_ITERATIONS", "4")
        .env("SESAME_SHUTDOWN_TIMEOUT_SECS", "60")
        .arg("serve");
    let mut server = Server::start(cmd).await;
    let client = reqwest::Client::builder()
        .timeout(WAIT * 2)
        .build()
        .expect("client");

    let signup = tokio::spawn({
        let client = client.clone();
        let url = format!("{}/users/signup", server.address);
        async move {
            client
                .post(url)
                .json(&json!({"email": "slow@example.com", "password": PASSWORD, "confirmPassword": PASSWORD}))
                .send()
                .await
        }
    });
    // In flight: the signup (the scrape is on the metrics listener).
    let metrics = server.metrics_address().expect("a metrics listener");
    let deadline = Instant::now() + WAIT;
    while in_flight(&client, &metrics).await < 1.0 {
        assert!(Instant::now() < deadline, "the signup never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    server.terminate().await;
    // New connections are refused while the signup is still being handled.
    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let deadline = Instant::now() + WAIT;
    while probe
        .get(format!("{}/ping", server.address))
        .send()
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !signup.is_finished(),
        "the signup was still in flight when the server stopped accepting"
    );

    let resp = signup
        .await
        .expect("signup task")
        .expect("the in-flight signup gets its answer");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let status = server.wait().await;
    assert!(
        status.success(),
        "exit {status}; output:\n{}",
        server.output()
    );

    // Closed cleanly: on SQLite, the write-ahead log is folded into the
    // database file (gone, or truncated to nothing). The account answered
    // 201 is there.
    if !on_postgres() {
        let wal = std::fs::metadata(dir.path().join("sesame.db-wal")).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the database was closed cleanly");
    }
    let db = TestDb::in_dir(dir.path());
    let users = db.count_rows("users", "email", "slow@example.com").await;
    assert_eq!(users, 1);
}

/// Counts outbox rows not delivered yet.
async fn unsent(dir: &TempDir) -> i64 {
    let sql = "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL";
    TestDb::in_dir(dir.path()).count(sql, &[]).await
}

/// Polls until the app refuses new connections: its stop has begun.
async fn wait_until_refusing(address: &str) {
    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let deadline = Instant::now() + WAIT;
    while probe.get(format!("{address}/ping")).send().await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn stopping_waits_for_the_email_being_sent_and_records_it() {
    let mut app = spawn_app().await;
    let (mail, dir, address) = (app.mail.clone(), app.dir.clone(), app.address.clone());
    mail.hold_replies();
    app.signup("in-transit@example.com").await;
    // The SMTP server has the email's data and has not answered yet.
    mail.wait_until_holding(1, WAIT).await;

    let stopping = tokio::spawn(async move { app.stop().await });
    wait_until_refusing(&address).await;
    // A stop that did not wait for the worker would be done in moments.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "stopped while an email was in mid-send"
    );

    mail.release();
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("stops once the email is answered")
        .expect("stop task");
    assert_eq!(mail.messages().len(), 1, "the email arrived once");
    assert_eq!(
        unsent(&dir).await,
        0,
        "and it is recorded as sent: a restart will not send it again"
    );
}

#[tokio::test]
async fn a_stuck_smtp_server_holds_shutdown_only_for_the_configured_bound() {
    let mut app = spawn_app_with(|config| {
        config.shutdown_timeout = Duration::from_secs(1);
    })
    .await;
    app.mail.hold_replies();
    app.signup("stuck@example.com").await;
    app.mail.wait_until_holding(1, WAIT).await;

    let started = Instant::now();
    app.stop().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "stop took {took:?} with a 1 s bound"
    );
    assert_eq!(unsent(&app.dir).await, 1, "the email stays queued");

    // After a restart it goes out.
    let fresh = MailServer::start().await;
    let url = fresh.url();
    let app = app
        .restart_with(|config| {
            config.mail =
                sesame::config::MailTransport::Smtp(sesame::domain::secret::Secret::new(url));
        })
        .await;
    fresh.wait_for_mail_to("stuck@example.com", 1, WAIT).await;
    drop(app);
}
