//! Crash safety: SIGKILL the server in the middle of a signup load, restart
//! it on the same database, and every signup that was answered `201` is
//! there, can be activated, and gets its verification email.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tempfile::TempDir;
use tokio::task::JoinSet;

use crate::support::process::{Server, sesame};
use crate::support::*;
use crate::support::{MailServer, find_six_digit_code};

/// Concurrent signup loops.
const WORKERS: usize = 6;
/// Most signups one loop sends (the load stops by itself).
const MAX_PER_WORKER: usize = 200;
/// Answered signups to wait for before the kill.
const KILL_AFTER: usize = 30;

fn serve(dir: &TempDir, mail: &MailServer) -> tokio::process::Command {
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_SMTP_URL", mail.url()).arg("serve");
    cmd
}

#[tokio::test]
async fn every_signup_answered_201_survives_a_sigkill_and_can_be_activated() {
    let dir = TempDir::new().expect("temp dir");
    let mail = MailServer::start().await;
    let mut server = Server::start(serve(&dir, &mail)).await;

    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let client = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client");
    let mut load = JoinSet::new();
    for worker in 0..WORKERS {
        let (client, answered) = (client.clone(), answered.clone());
        let url = format!("{}/users/signup", server.address);
        load.spawn(async move {
            for i in 0..MAX_PER_WORKER {
                let email = format!("load-{worker}-{i}@example.com");
                let sent = client
                    .post(&url)
                    .json(
                        &json!({"email": email, "password": PASSWORD, "confirmPassword": PASSWORD}),
                    )
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status() == StatusCode::CREATED => {
                        // Counted only once the whole answer is in.
                        if resp.bytes().await.is_ok() {
                            answered.lock().expect("lock").push(email);
                        }
                    }
                    Ok(resp) => panic!("signup of {email} answered {}", resp.status()),
                    // The server is gone: this loop is done.
                    Err(_) => return,
                }
            }
        });
    }

    let deadline = Instant::now() + WAIT;
    while answered.lock().expect("lock").len() < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "the load did not get going:\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().await;
    while let Some(joined) = load.join_next().await {
        joined.expect("a signup loop panicked");
    }
    let answered = answered.lock().expect("lock").clone();
    assert!(
        answered.len() < WORKERS * MAX_PER_WORKER,
        "the kill came while the load was still running"
    );

    let mut restarted = Server::start(serve(&dir, &mail)).await;
    for email in &answered {
        // The verification email arrives (perhaps twice: delivery is
        // at-least-once across a crash; both copies carry the same code).
        let code = find_six_digit_code(&mail.wait_for_mail_to(email, 1, WAIT).await.text_body())
            .expect("a code");
        let resp = client
            .patch(format!("{}/users/activate", restarted.address))
            .json(&json!({"email": email, "code": code}))
            .send()
            .await
            .expect("activate");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "activating {email}: {body}");
    }
    restarted.terminate().await;
    let status = restarted.wait().await;
    let output = restarted.output();
    assert!(status.success(), "exit {status}:\n{output}");
    assert!(!output.contains("panicked"), "{output}");
}
