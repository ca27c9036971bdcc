//! A short chaos run: several clients sign up, log in, refresh, log out and
//! change passwords while the disk fills up and frees twice. Afterwards,
//! and again after a restart, every acknowledged write is there: each
//! signup answered `201` exists, each password change answered `200`
//! holds, each refresh token answered works, each logout answered `200`
//! ended its session, and `PRAGMA integrity_check` says `ok`.
//!
//! Bounded: four clients, a fault that comes and goes twice in about ten
//! seconds, then the checks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::faults::{
    FAULT_LOG, RECOVERED_LOG, Tmpfs, active_user_session, assert_all_known, count_log, integrity,
    ready, serve, stop,
};
use crate::support::{Answer, Api, MailServer, PASSWORD, Signup, eventually, sqlite_only};

/// Clients sending at once.
const CLIENTS: usize = 4;
/// Most operations one client sends (the run stops earlier by itself).
const MAX_OPS: usize = 2_000;

/// A session a client holds: its tokens as last answered.
#[derive(Clone)]
struct Session {
    access: String,
    refresh: String,
}

/// What one client was told, i.e. what must hold afterwards.
#[derive(Default)]
struct Acknowledged {
    email: String,
    password: String,
    /// Sessions answered and not ended: their latest refresh token works.
    live: Vec<Session>,
    /// Refresh tokens of sessions that were answered as ended.
    ended: Vec<String>,
    /// Addresses whose signup was answered `201`.
    signups: Vec<String>,
    /// Answers per operation: (done, refused with 503).
    counts: BTreeMap<&'static str, (u32, u32)>,
}

impl Acknowledged {
    /// Tallies an answer: `true` if the operation was done (2xx); a refusal
    /// must be `503` (storage, or the password-hash queue) or `429`; any
    /// other answer fails the run.
    fn done(&mut self, op: &'static str, answer: &Answer) -> bool {
        let entry = self.counts.entry(op).or_default();
        if answer.status.is_success() {
            entry.0 += 1;
            return true;
        }
        assert!(
            matches!(
                answer.status,
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
            ),
            "{op} answered {}: {}",
            answer.status,
            answer.body
        );
        entry.1 += 1;
        false
    }
}

fn tokens(answer: &Answer) -> Session {
    Session {
        access: answer.body["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_owned(),
        refresh: answer.body["refreshToken"]
            .as_str()
            .expect("refreshToken")
            .to_owned(),
    }
}

/// One client's loop: a fixed mix of operations until `stop`.
async fn run_client(
    client: Api,
    n: usize,
    mut me: Acknowledged,
    stop: Arc<AtomicBool>,
) -> Acknowledged {
    for i in 0..MAX_OPS {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let op = i % 6;
        if me.live.is_empty() || op == 0 {
            let answer = client.login(&me.email, &me.password).await;
            if me.done("login", &answer) {
                me.live.push(tokens(&answer));
            }
            continue;
        }
        match op {
            1 | 4 => {
                let email = format!("chaos-{n}-{i}@example.com");
                let answer = client.signup(&Signup::new(&email)).await;
                if me.done("signup", &answer) {
                    me.signups.push(email);
                }
            }
            2 => {
                let session = me.live.last().expect("a session").clone();
                let answer = client.refresh(&session.refresh).await;
                if me.done("refresh", &answer) {
                    *me.live.last_mut().expect("a session") = tokens(&answer);
                }
            }
            3 => {
                let session = me.live.last().expect("a session").clone();
                let answer = client
                    .send(
                        Method::POST,
                        "/users/logout",
                        Some(&json!({})),
                        Some(&session.access),
                    )
                    .await;
                if me.done("logout", &answer) {
                    me.live.pop();
                    me.ended.push(session.refresh);
                }
            }
            _ => {
                let session = me.live.last().expect("a session").clone();
                let new = format!("{PASSWORD} {n} {i}");
                let answer = client
                    .change_password(&session.access, &me.password, &new)
                    .await;
                if me.done("password", &answer) {
                    me.password = new;
                    // Every other session of the user ended.
                    let others = me.live.len() - 1;
                    me.ended.extend(me.live.drain(..others).map(|s| s.refresh));
                }
            }
        }
    }
    me
}

#[tokio::test]
async fn under_mixed_load_a_disk_that_fills_twice_loses_no_acknowledged_write() {
    if sqlite_only(
        "the disk that fills is a tmpfs under the SQLite file (and the check is SQLite's PRAGMA integrity_check)",
    ) {
        return;
    }
    let disk = Tmpfs::mount("16m");
    let mail = MailServer::start().await;
    let mut server = serve(disk.path(), &mail, &[]).await;
    let http = Api::new(&server.address);

    let stop_load = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let email = format!("client-{n}@example.com");
        let session = active_user_session(&http, &mail, &email).await;
        let me = Acknowledged {
            email,
            password: PASSWORD.to_owned(),
            live: vec![Session {
                access: session.0,
                refresh: session.1,
            }],
            ..Acknowledged::default()
        };
        clients.push(tokio::spawn(run_client(
            http.clone(),
            n,
            me,
            stop_load.clone(),
        )));
    }

    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let filler = disk.fill();
        tokio::time::sleep(Duration::from_millis(2000)).await;
        std::fs::remove_file(filler).expect("free the space");
        eventually("readiness once space is free", || async {
            (ready(&http).await == StatusCode::OK).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_load.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for c in clients {
        acknowledged.push(c.await.expect("a client ran to the end"));
    }
    let mut totals: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for me in &acknowledged {
        for (op, (done, refused)) in &me.counts {
            let t = totals.entry(op).or_default();
            t.0 += done;
            t.1 += refused;
        }
    }
    println!("chaos run, operation: (done, refused): {totals:?}");
    let refused: u32 = totals.values().map(|t| t.1).sum();
    assert!(refused > 0, "the fault was felt: {totals:?}");
    assert!(
        totals.values().all(|t| t.0 > 0),
        "every kind of operation got through at some point: {totals:?}"
    );
    assert_eq!(
        count_log(&server, FAULT_LOG),
        count_log(&server, RECOVERED_LOG)
    );
    assert!(count_log(&server, FAULT_LOG) <= 2, "{}", server.output());

    // On the running server, then after a restart.
    let signups: Vec<String> = acknowledged
        .iter()
        .flat_map(|a| a.signups.clone())
        .collect();
    assert_all_known(&http, &signups, "after the chaos run").await;
    stop(&mut server).await;
    assert_eq!(integrity(disk.path()).await, "ok");
    let mut server = serve(disk.path(), &mail, &[]).await;
    let http = Api::new(&server.address);
    assert_all_known(&http, &signups, "after a restart").await;
    for me in &acknowledged {
        let login = http.login(&me.email, &me.password).await;
        assert_eq!(
            login.status,
            StatusCode::OK,
            "the last password change answered 200 holds for {}: {}",
            me.email,
            login.body
        );
        for session in &me.live {
            let answer = http.refresh(&session.refresh).await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "an answered refresh token works: {}",
                answer.body
            );
        }
        for refresh in &me.ended {
            let answer = http.refresh(refresh).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "a session answered as ended stays ended: {}",
                answer.body
            );
        }
    }
    stop(&mut server).await;
}
