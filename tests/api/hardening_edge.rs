//! The transport and operations half of the second hardening round: each
//! test performs the attack against the real server and checks the answer
//! the contract gives instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sesame::http::rate_limits::TrustedProxies;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::process::{Finished, Server, run, sesame};
use crate::support::{
    Api, PASSWORD, Signup, TestApp, WAIT, database_made_in, eventually, expect_error, expect_json,
    spawn_app, spawn_app_with, sqlite_only, str_field,
};

/// A stranger can type anyone's address and any words as a name; the email
/// that then lands in the owner's mailbox must not carry those words.
#[tokio::test]
async fn the_verification_email_does_not_carry_the_name_typed_at_signup() {
    let app = spawn_app().await;
    let words = "Claim your prize at evil.example";
    let form = Signup::new("owner@example.com").name(words);
    expect_json(app.api.signup(&form).await, StatusCode::CREATED).await;
    let resent = app.api.resend_activation("owner@example.com").await;
    assert!(resent.status.is_success(), "{}", resent.text);

    for nth in [1, 2] {
        let mail = app
            .mail
            .wait_for_mail_to("owner@example.com", nth, WAIT)
            .await;
        let text = mail.text_body();
        let html = mail.html_body().unwrap_or_default();
        assert!(text.contains("Welcome to sesame!"), "{text}");
        for body in [&text, &html, &mail.data] {
            assert!(
                !body.contains("prize"),
                "the typed name reached the email: {body}"
            );
            assert!(
                !body.contains("evil.example"),
                "the typed name reached the email: {body}"
            );
        }
    }
}

/// Runs `sesame ARGS` with `SESAME_SMTP_URL=url` in a fresh directory.
async fn with_smtp_url(url: &str, args: &[&str]) -> Finished {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_SMTP_URL", url).args(args);
    run(cmd).await
}

/// `smtp://user:pass@remote` would send the password and every reset link
/// unencrypted: `serve` and `check-config` refuse it, naming the setting,
/// never the password.
#[tokio::test]
async fn smtp_credentials_in_plain_text_to_another_host_are_refused_at_start() {
    let url = "smtp://apikey:pl41n-t3xt-pass@smtp.example.com:587";
    for args in [&["check-config"][..], &["serve"][..]] {
        let out = with_smtp_url(url, args).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}{}",
            out.stdout,
            out.stderr
        );
        let stderr = out.stderr.trim();
        assert!(stderr.starts_with("sesame: "), "{stderr}");
        assert!(
            stderr.contains("SESAME_SMTP_URL"),
            "names the setting: {stderr}"
        );
        assert!(
            stderr.contains("tls=required"),
            "says how to fix it: {stderr}"
        );
        for output in [&out.stdout, &out.stderr] {
            assert!(!output.contains("pl41n-t3xt-pass"), "{output}");
            assert!(!output.contains("apikey"), "{output}");
        }
    }
    // A plain-text relay without credentials stays allowed (nothing secret
    // to leak but the mail itself, as any MTA-to-MTA hop).
    let out = with_smtp_url("smtp://smtp.example.com:25", &["check-config"]).await;
    assert!(out.status.success(), "{}", out.stderr);
}

/// The ways credentials stay private: TLS from the start, STARTTLS
/// required, or a relay on this machine.
#[tokio::test]
async fn smtp_credentials_over_tls_or_to_loopback_are_accepted() {
    for url in [
        "smtps://apikey:s3cret-pass@smtp.example.com:465",
        "smtp://apikey:s3cret-pass@smtp.example.com:587?tls=required",
        "smtp://apikey:s3cret-pass@127.0.0.1:1025",
        "smtp://apikey:s3cret-pass@localhost:1025",
        "smtp://apikey:s3cret-pass@[::1]:1025",
    ] {
        let out = with_smtp_url(url, &["check-config"]).await;
        assert!(out.status.success(), "{url}: {}", out.stderr);
        assert!(!out.stdout.contains("s3cret-pass"), "{}", out.stdout);
    }
    // And the server itself starts with one of them.
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.env(
        "SESAME_SMTP_URL",
        "smtp://apikey:s3cret-pass@smtp.example.com:587?tls=required",
    )
    .arg("serve");
    let mut server = Server::start(cmd).await;
    server.terminate().await;
    server.wait().await;
    assert!(
        !server.output().contains("s3cret-pass"),
        "{}",
        server.output()
    );
}

/// A secret typed as a flag is visible to every local user in the process
/// list: sesame refuses it, says where it goes instead, and prints none of it.
#[tokio::test]
async fn secrets_given_as_command_line_flags_are_refused() {
    let dir = TempDir::new().expect("temp dir");
    for (flag, value, setting) in [
        (
            "--jwt-secret",
            "flag-secret-that-is-long-enough-0123456789",
            "SESAME_JWT_SECRET",
        ),
        (
            "--smtp-url",
            "smtps://u:flag-pass-0123@smtp.example.com:465",
            "SESAME_SMTP_URL",
        ),
    ] {
        for args in [vec![flag, value], vec!["check-config", flag, value]] {
            let mut cmd = sesame(dir.path());
            cmd.args(&args);
            let out = run(cmd).await;
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", out.stderr);
            let stderr = out.stderr.trim();
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains(flag), "names the flag: {stderr}");
            assert!(stderr.contains(&format!("{setting}_FILE")), "{stderr}");
            assert!(!stderr.contains(value), "{stderr}");
            assert!(!out.stdout.contains(value), "{}", out.stdout);
        }
    }
    assert!(!database_made_in(dir.path()).await, "nothing started");
}

/// A PostgreSQL URL with its password as `--database-url` is refused the
/// same way (nothing is connected to); without a password it is a flag
/// like any other.
#[tokio::test]
async fn a_database_password_given_as_a_command_line_flag_is_refused() {
    let dir = TempDir::new().expect("temp dir");
    let url = "postgres://sesame:flag-db-pass-0123@db.invalid:5432/sesame";
    for args in [
        vec!["--database-url", url],
        vec!["migrate", "--database-url", url],
    ] {
        let mut cmd = sesame(dir.path());
        cmd.args(&args);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", out.stderr);
        let stderr = out.stderr.trim();
        assert!(
            stderr.contains("--database-url"),
            "names the flag: {stderr}"
        );
        assert!(stderr.contains("SESAME_DATABASE_URL"), "{stderr}");
        assert!(!stderr.contains("flag-db-pass-0123"), "{stderr}");
        assert!(!out.stdout.contains("flag-db-pass-0123"), "{}", out.stdout);
    }
}

/// `sesame backup` copies a SQLite file; on PostgreSQL it says to use
/// `pg_dump` and exits non-zero before connecting (the URL's host does not
/// exist), without printing the URL's password.
#[tokio::test]
async fn backup_on_postgresql_points_to_pg_dump() {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.env(
        "SESAME_DATABASE_URL",
        "postgres://sesame:env-db-pass-0123@db.invalid:5432/sesame",
    );
    cmd.args(["backup", "copy.db"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("pg_dump"), "{}", out.stderr);
    assert!(!out.stderr.contains("env-db-pass-0123"), "{}", out.stderr);
    assert!(!dir.path().join("copy.db").exists(), "nothing written");
}

/// `SESAME_JWT_SECRET_FILE` and `SESAME_SMTP_URL_FILE` name files holding
/// the secrets (as systemd credentials and Docker secrets are mounted).
#[tokio::test]
async fn secrets_are_read_from_the_files_their_file_settings_name() {
    let dir = TempDir::new().expect("temp dir");
    let secret = "file-secret-that-is-long-enough-0123456789";
    let jwt_file = dir.path().join("jwt_secret");
    std::fs::write(&jwt_file, format!("{secret}\n")).expect("write secret");
    let smtp_file = dir.path().join("smtp_url");
    std::fs::write(
        &smtp_file,
        "smtps://u:file-pass-0123@smtp.example.com:465\n",
    )
    .expect("write url");

    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_JWT_SECRET_FILE", &jwt_file)
        .env("SESAME_SMTP_URL_FILE", &smtp_file)
        .arg("check-config");
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("HS256"),
        "the secret was read: {}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("sent through smtps://smtp.example.com:465"),
        "the SMTP URL was read: {}",
        out.stdout
    );
    assert!(!out.stdout.contains(secret) && !out.stdout.contains("file-pass-0123"));

    // The server signs with the secret from the file: a token it issues
    // verifies with that secret (HS256), and only with it.
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_JWT_SECRET_FILE", &jwt_file).arg("serve");
    let mut server = Server::start(cmd).await;
    let token = issued_access_token(&server).await;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["sesame"]);
    validation.validate_exp = true;
    let decoded = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    );
    assert!(decoded.is_ok(), "{decoded:?}");
    server.terminate().await;
    server.wait().await;

    // A missing file is named; both the variable and its file is an error.
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_JWT_SECRET_FILE", dir.path().join("missing"))
        .arg("check-config");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.contains("SESAME_JWT_SECRET_FILE"),
        "{}",
        out.stderr
    );
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_JWT_SECRET_FILE", &jwt_file)
        .env("SESAME_JWT_SECRET", secret)
        .arg("check-config");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("only one"), "{}", out.stderr);
    assert!(!out.stderr.contains(secret), "{}", out.stderr);
}

/// Signs up, activates with the code the log transport printed, and logs in
/// on a server run as a process; returns the access token.
async fn issued_access_token(server: &Server) -> String {
    let api = Api::new(&server.address);
    let email = "file-secret@example.com";
    api.signup(&Signup::new(email))
        .await
        .expect(StatusCode::CREATED);
    let marker = "verification code is: ";
    let code = eventually("the verification email in the log", || async {
        let output = server.output();
        let at = output.find(marker)? + marker.len();
        output.get(at..at + 6).map(str::to_owned)
    })
    .await;
    api.activate(email, &code).await.expect(StatusCode::OK);
    let tokens = api.login(email, PASSWORD).await.expect(StatusCode::OK);
    str_field(&tokens, "accessToken")
}

/// The permission bits of a file.
#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The database holds the signing key and password hashes: it, its -wal
/// and -shm files, and a backup of it are readable by their owner only,
/// whatever the umask.
#[cfg(unix)]
#[tokio::test]
async fn the_database_its_wal_and_a_backup_are_readable_by_their_owner_only() {
    if sqlite_only("file modes of the SQLite file, its -wal and -shm, and a sesame backup of it") {
        return;
    }
    let app = spawn_app().await;
    app.activated_user("private@example.com").await;
    let db = crate::support::db_path(&app.dir);
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }

    let backups = app.dir.path().join("backups");
    std::fs::create_dir(&backups).expect("backup dir");
    let backup = backups.join("sesame-backup.db");
    let mut cmd = sesame(app.dir.path());
    cmd.arg("backup").arg(&backup);
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(mode(&backup), 0o600);
    let left: Vec<_> = std::fs::read_dir(&backups)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("sesame-backup.db")],
        "no temporary file left"
    );
}

// ------------------------------------------------- body limit on HTTP/2

/// A client for HTTP/2 over cleartext with prior knowledge, as
/// `curl --http2-prior-knowledge` speaks it.
fn http2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(WAIT)
        .build()
        .expect("HTTP/2 client")
}

/// A body of `total` bytes with no stated length (HTTP/2 frames carry
/// none), counting in `pulled` how much of it the client got to send.
fn lengthless_body(total: usize, pulled: Arc<AtomicUsize>) -> reqwest::Body {
    const CHUNK: usize = 16 * 1024;
    let chunks = (0..total / CHUNK).map(move |_| {
        pulled.fetch_add(CHUNK, Ordering::Relaxed);
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; CHUNK]))
    });
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

/// The attack of the review: 10 MB to `/users/login` over HTTP/2 with
/// prior knowledge, no length anywhere. It is cut at the limit: `413` in
/// the error shape, and the client could push little more than the flow
/// control window, not the 10 MB (the server stopped reading).
#[tokio::test]
async fn a_10_mb_http2_body_without_a_length_is_cut_at_the_limit_with_413() {
    let app = spawn_app().await;
    let pulled = Arc::new(AtomicUsize::new(0));
    let total = 10 * 1024 * 1024;
    let resp = http2_client()
        .post(format!("{}/users/login", app.address))
        .header("content-type", "application/json")
        .body(lengthless_body(total, pulled.clone()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert!(
        resp.headers()
            .get("content-length")
            .is_none_or(|l| l != "0")
    );
    expect_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
    let sent = pulled.load(Ordering::Relaxed);
    assert!(
        sent < 4 * 1024 * 1024,
        "the server read on: {sent} of {total} bytes went out"
    );
}

/// HTTP/2 is served, not only refused: a body within the limit gets its
/// real answer (and parallel oversized streams are each cut).
#[tokio::test]
async fn http2_bodies_within_the_limit_get_their_answer_and_oversized_ones_413() {
    let app = spawn_app().await;
    let client = http2_client();
    let resp = client
        .post(format!("{}/users/login", app.address))
        .json(&json!({"email": "nobody@example.com", "password": "wrong password"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;

    let oversized = (0..8).map(|_| {
        client
            .post(format!("{}/users/login", app.address))
            .header("content-type", "application/json")
            .body(lengthless_body(
                2 * app.config.max_body_bytes,
                Arc::new(AtomicUsize::new(0)),
            ))
            .send()
    });
    for resp in futures_util::future::join_all(oversized).await {
        let resp = resp.expect("an answer");
        expect_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
    }
}

// ------------------------------------------------------- slow clients

/// An app whose connection deadlines are short enough to wait for.
async fn impatient_app() -> TestApp {
    spawn_app_with(|config| {
        config.header_timeout = Duration::from_secs(1);
        config.body_timeout = Duration::from_secs(1);
        config.idle_timeout = Duration::from_secs(2);
    })
    .await
}

/// Reads until the server closes the connection; returns what it sent and
/// how long that took. Fails if the connection is still open after [`WAIT`].
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(started + WAIT, stream.read(&mut buf)).await {
            Err(_) => panic!("the connection is still open after {WAIT:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, started.elapsed()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

fn host(app: &TestApp) -> &str {
    app.address.trim_start_matches("http://")
}

/// Slowloris: half a request head, then nothing. The connection is closed
/// after the header timeout, unanswered, for every one of many such
/// connections at once.
#[tokio::test]
async fn connections_that_send_half_a_header_are_closed_after_the_header_timeout() {
    let app = impatient_app().await;
    let mut connections = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(host(&app)).await.expect("connect");
        stream
            .write_all(b"POST /users/login HTTP/1.1\r\nHost: sesame\r\nContent-Ty")
            .await
            .expect("half a header");
        connections.push(stream);
    }
    let started = Instant::now();
    for stream in &mut connections {
        let (received, _) = read_until_closed(stream).await;
        assert!(
            received.is_empty(),
            "{}",
            String::from_utf8_lossy(&received)
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?} to close 200 connections",
        started.elapsed()
    );
    // The server is not held: it still answers.
    assert_eq!(app.get("/ping").await.status(), StatusCode::OK);
}

/// The slowloris variant that keeps sending: a byte of the head every
/// 200 ms never completes it, and the header timeout counts from the
/// first byte, not the last.
#[tokio::test]
async fn a_head_that_trickles_in_is_cut_at_the_header_timeout() {
    let app = impatient_app().await;
    let mut stream = TcpStream::connect(host(&app)).await.expect("connect");
    let head = b"GET /ping HTTP/1.1\r\nHost: sesame\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let started = Instant::now();
    let mut cut = false;
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (received, _) = read_until_closed(&mut stream).await;
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
    let took = started.elapsed();
    // 67 bytes at 5 a second would take 13 s; the timeout is 1 s.
    assert!(cut || took < Duration::from_secs(13), "{took:?}");
}

/// A body announced at 1000 bytes that arrives a byte every 200 ms: the
/// connection is closed after the body timeout, long before the body ends.
#[tokio::test]
async fn a_body_that_trickles_in_is_cut_at_the_body_timeout() {
    let app = impatient_app().await;
    let mut stream = TcpStream::connect(host(&app)).await.expect("connect");
    stream
        .write_all(
            b"POST /users/login HTTP/1.1\r\nHost: sesame\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{",
        )
        .await
        .expect("head");
    let started = Instant::now();
    let writer = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if stream.write_all(b" ").await.is_err() {
                return;
            }
        }
    };
    // The writer stops at the first write after the close (a reset).
    tokio::time::timeout(WAIT, writer)
        .await
        .expect("the connection was closed while the body trickled");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "{took:?} (the body needs 200 s)"
    );
    assert!(
        took >= Duration::from_millis(900),
        "cut before the timeout: {took:?}"
    );
}

/// A keep-alive connection nobody uses is closed after the idle timeout;
/// one that is used in time stays open.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = impatient_app().await;
    let mut stream = TcpStream::connect(host(&app)).await.expect("connect");
    let request = b"GET /ping HTTP/1.1\r\nHost: sesame\r\n\r\n";
    stream.write_all(request).await.expect("request");
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.expect("response");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    let (received, idle) = read_until_closed(&mut stream).await;
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        idle >= Duration::from_millis(1500),
        "closed after {idle:?}, idle timeout 2 s"
    );
}

/// The default deadlines are those of the contract.
#[test]
fn the_default_connection_deadlines_are_10_s_30_s_and_60_s() {
    let config = sesame::config::Config::defaults();
    assert_eq!(config.header_timeout, Duration::from_secs(10));
    assert_eq!(config.body_timeout, Duration::from_secs(30));
    assert_eq!(config.idle_timeout, Duration::from_secs(60));
    assert_eq!(config.ipv6_prefix_len, 64);
    assert_eq!(config.metrics_bind, None, "metrics are off by default");
}

// ----------------------------------------------- IPv6 grouped by network

/// `PATCH /users/forgot` through a trusted proxy that forwards for `client`.
async fn forgot_from(app: &TestApp, client: &str) -> reqwest::Response {
    app.client
        .patch(format!("{}/users/forgot", app.address))
        .header("x-forwarded-for", client)
        .json(&json!({"email": "nobody@example.com"}))
        .send()
        .await
        .expect("an answer")
}

/// 21 requests from 21 addresses of one /64 share one budget of 20: the
/// 21st is refused. Another /64, and IPv4 addresses, have their own.
#[tokio::test]
async fn ipv6_clients_of_one_64_share_one_rate_limit_budget() {
    let app = spawn_app_with(|config| {
        config.ip_rate_limit = 20;
        config.ip_rate_window = Duration::from_secs(3600);
        config.trusted_proxies = TrustedProxies::parse("127.0.0.1").expect("valid");
    })
    .await;
    for n in 1..=20 {
        let resp = forgot_from(&app, &format!("2001:db8:5:6:{n:x}::{n:x}")).await;
        assert_ne!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "request {n}");
    }
    let resp = forgot_from(&app, "2001:db8:5:6:ffff:ffff:ffff:ffff").await;
    let body = expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    assert!(body["message"].is_string());

    let other_network = forgot_from(&app, "2001:db8:5:7::1").await;
    assert_ne!(other_network.status(), StatusCode::TOO_MANY_REQUESTS);
    for n in 1..=3 {
        let v4 = forgot_from(&app, &format!("203.0.113.{n}")).await;
        assert_ne!(v4.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

/// The prefix is a setting: with /128 every IPv6 address counts alone.
#[tokio::test]
async fn the_ipv6_prefix_length_is_a_setting() {
    let app = spawn_app_with(|config| {
        config.ip_rate_limit = 2;
        config.ip_rate_window = Duration::from_secs(3600);
        config.ipv6_prefix_len = 128;
        config.trusted_proxies = TrustedProxies::parse("127.0.0.1").expect("valid");
    })
    .await;
    for n in 1..=6 {
        let resp = forgot_from(&app, &format!("2001:db8:5:6::{n}")).await;
        assert_ne!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "address {n}");
    }
}

// ------------------------------------------------ metrics not public

/// `/metrics` on the API listener is an unknown route; the metrics
/// listener serves it, and nothing else.
#[tokio::test]
async fn metrics_are_served_on_their_own_listener_and_never_on_the_api() {
    let app = spawn_app().await;
    expect_error(
        app.get("/metrics").await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;

    let resp = app.metrics_page().await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.expect("body");
    assert!(page.contains("sesame_signups_total"), "{page}");

    let metrics = app.metrics_address.clone().expect("a metrics listener");
    for path in ["/ping", "/users/login", "/docs"] {
        let resp = app
            .client
            .get(format!("{metrics}{path}"))
            .send()
            .await
            .expect("an answer");
        expect_error(resp, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    }
}

/// Off by default: no listener, and still `404` on the API.
#[tokio::test]
async fn without_a_metrics_bind_there_are_no_metrics_anywhere() {
    let app = spawn_app_with(|config| config.metrics_bind = None).await;
    assert!(app.metrics_address.is_none());
    expect_error(
        app.get("/metrics").await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
}
