//! The transport and operations half of the second hardening round: each
//! test performs the attack against the real server and checks the answer
//! the contract gives instead.

use reqwest::StatusCode;
use serde_json::json;
use tempfile::TempDir;

use crate::helpers::{PASSWORD, WAIT, expect_json, spawn_app};
use crate::process::{Finished, Server, run, sesame};

/// A stranger can type anyone's address and any words as a name; the email
/// that then lands in the owner's mailbox must not carry those words.
#[tokio::test]
async fn the_verification_email_does_not_carry_the_name_typed_at_signup() {
    let app = spawn_app().await;
    let words = "Call +1 555 0100 to claim your prize";
    let resp = app
        .post(
            "/users/signup",
            json!({"email": "owner@example.com", "password": PASSWORD,
                   "confirmPassword": PASSWORD, "name": words}),
        )
        .await;
    expect_json(resp, StatusCode::CREATED).await;
    let resent = app
        .post(
            "/users/activate/resend",
            json!({"email": "owner@example.com"}),
        )
        .await;
    assert!(resent.status().is_success(), "{}", resent.status());

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
                !body.contains("555"),
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
