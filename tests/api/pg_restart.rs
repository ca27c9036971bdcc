//! PostgreSQL restarting under a running sesame: every signup answered
//! `201` is in the database afterwards, every other answer meanwhile is
//! `503 STORAGE_UNAVAILABLE` with `Retry-After` (never a `500`), readiness
//! says `503` while the server is down, and sesame recovers by itself.
//!
//! The test runs a cluster of its own (`scripts/postgres` with its own
//! state directory) so that stopping it disturbs no other test. It runs
//! where PostgreSQL tests run (`SESAME_TEST_POSTGRES_URL` set, as
//! `scripts/test` does), once: in the first pass, not again in the pass
//! that runs the whole suite on PostgreSQL.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::Mutex;

use crate::support::*;

/// A private cluster, stopped and deleted when dropped.
struct Cluster {
    state: PathBuf,
}

impl Cluster {
    fn script(&self, command: &str) -> std::process::Output {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new(root.join("scripts/postgres"))
            .arg(command)
            .current_dir(root)
            .env("SESAME_PG_STATE", &self.state)
            .env_remove("SESAME_TEST_POSTGRES_URL")
            .output()
            .expect("run scripts/postgres");
        assert!(
            out.status.success(),
            "scripts/postgres {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn start() -> Cluster {
        let name = format!("postgres-restart-{}", uuid::Uuid::new_v4().simple());
        let state = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(name);
        let cluster = Cluster { state };
        cluster.script("start");
        cluster
    }

    fn url(&self) -> String {
        String::from_utf8(self.script("url").stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres"),
        )
        .arg("stop")
        .env("SESAME_PG_STATE", &self.state)
        .env_remove("SESAME_TEST_POSTGRES_URL")
        .output();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// What the signups got: the addresses answered `201`, and every other answer.
#[derive(Default)]
struct Outcomes {
    created: Vec<String>,
    refused: Vec<(u16, Value)>,
}

#[tokio::test]
async fn signups_answered_201_survive_a_postgresql_restart_and_the_rest_are_503() {
    if std::env::var("SESAME_TEST_POSTGRES_URL").is_err() || on_postgres() {
        println!(
            "skipped: runs once, in the first pass, where SESAME_TEST_POSTGRES_URL says \
             PostgreSQL tests run (scripts/test)"
        );
        return;
    }
    let cluster = Cluster::start();
    let url = cluster.url();
    let app = spawn_app_with(|c| c.database_url = url.clone()).await;

    // Four writers sign up fresh addresses until told to stop.
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (api, outcomes, stop) = (app.api.clone(), outcomes.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let email = format!("w{w}-{n}@example.com");
                let answer = api.signup(&Signup::new(&email)).await;
                let status = answer.status.as_u16();
                let mut o = outcomes.lock().await;
                if status == 201 {
                    o.created.push(email);
                } else {
                    let retry_after = answer.headers.get("retry-after").is_some();
                    o.refused.push((
                        status,
                        json!({"body": answer.body, "retryAfter": retry_after}),
                    ));
                }
            }
        }));
    }
    let created = || async { outcomes.lock().await.created.len() };
    let before = created().await;
    eventually("signups commit before the restart", || async {
        (created().await >= before + 10).then_some(())
    })
    .await;

    cluster.script("halt");
    eventually("a signup is refused while PostgreSQL is down", || async {
        (!outcomes.lock().await.refused.is_empty()).then_some(())
    })
    .await;
    let ready = app.get("/health/ready").await;
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready while down"
    );
    cluster.script("resume");

    let after = created().await;
    eventually("signups commit again after the restart", || async {
        (created().await >= after + 10).then_some(())
    })
    .await;
    eventually("ready again", || async {
        (app.get("/health/ready").await.status() == StatusCode::OK).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }

    let o = outcomes.lock().await;
    for (status, answer) in &o.refused {
        assert_eq!(*status, 503, "only 503 while PostgreSQL restarts: {answer}");
        assert_eq!(answer["body"]["code"], "STORAGE_UNAVAILABLE", "{answer}");
        assert_eq!(answer["retryAfter"], true, "{answer}");
    }
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let stored: Vec<String> = sqlx::query_scalar("SELECT email FROM users")
        .fetch_all(&mut conn)
        .await
        .expect("read users");
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    let lost: Vec<&String> = o.created.iter().filter(|e| !stored.contains(*e)).collect();
    assert!(lost.is_empty(), "answered 201 but not stored: {lost:?}");
    println!(
        "{} signups answered 201 (all stored), {} answered 503 during the restart",
        o.created.len(),
        o.refused.len()
    );
}
