//! Three instances on one PostgreSQL database, requests spread over them
//! as a load balancer would: each test shows one promise of "More than one
//! instance" in the contract, that what one instance does holds on the
//! others. The instances are the real binary, A, B and C, started in that
//! order; the tests run only with `SESAME_TEST_POSTGRES_URL` (see
//! [`crate::support::cluster`]).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::cluster::{Cluster, postgres_or_skip};
use crate::support::*;

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const INSTANCES: usize = 3;

/// A window or lock that does not run out during a test, in seconds.
const LONG_SECS: &str = "3600";

const WRONG: &str = "not the password at all";

/// Three instances sending mail to a fresh capture, with `env` on top of the test defaults.
async fn three_instances(env: &[(&str, &str)]) -> (Cluster, MailServer) {
    let mail = MailServer::start().await;
    let cluster = Cluster::start(INSTANCES, &mail.url(), env).await;
    (cluster, mail)
}

/// Signs up through `api` and activates through it with the emailed code.
async fn activated_user(api: &Api, mail: &MailServer, email: &str) {
    api.signup(&Signup::new(email))
        .await
        .expect(StatusCode::CREATED);
    let code = mail.wait_for_mail_to(email, 1, WAIT).await.code();
    api.activate(email, &code).await.expect(StatusCode::OK);
}

/// Logs in through `api` with the test password: (access, refresh).
async fn login(api: &Api, email: &str) -> (String, String) {
    let body = api.login(email, PASSWORD).await.expect(StatusCode::OK);
    (
        str_field(&body, "accessToken"),
        str_field(&body, "refreshToken"),
    )
}

/// `GET /users/me` answers `200` for the address.
async fn expect_me_ok(api: &Api, access: &str, email: &str) {
    let body = api.me(access).await.expect(StatusCode::OK);
    assert_eq!(str_field(&body["user"], "email"), email, "{body}");
}

/// The `kid` in a JWT's header.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().expect("a JWT");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url header"))
            .expect("a JSON header");
    str_field(&header, "kid")
}

/// The `kid`s an instance publishes in its JWKS.
async fn published_kids(api: &Api) -> Vec<String> {
    let jwks = api.jwks().await.expect(StatusCode::OK);
    let keys = jwks["keys"].as_array().expect("keys is an array");
    keys.iter().map(|key| str_field(key, "kid")).collect()
}

/// A loopback port that refuses connections and that no one else can take
/// while the socket lives: bound without `SO_REUSEADDR` and not listening
/// (a port merely closed could be handed to another test meanwhile).
fn refusing_port() -> tokio::net::TcpSocket {
    // Shareable with the capture that later listens on it (SO_REUSEPORT),
    // so the port is never free in between.
    let socket = reusable_socket().expect("a socket");
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .expect("bind a free loopback port");
    socket
}

// ---------------------------------------------------------------- rate limits

#[tokio::test]
async fn a_rate_limit_of_five_is_five_across_three_instances() {
    if !postgres_or_skip() {
        return;
    }
    let (cluster, _mail) = three_instances(&[
        ("SESAME_IP_RATE_LIMIT", "5"),
        ("SESAME_IP_RATE_WINDOW_SECS", LONG_SECS),
    ])
    .await;

    // Six logins round-robin over A, B, C, each to an address with no
    // account (a new one each time, so no lockout answers in the limit's place).
    let mut answers = Vec::new();
    for n in 0..6 {
        let email = format!("nobody{n}@example.com");
        let answer = cluster.round_robin(n).login(&email, WRONG).await;
        answers.push((answer.status.as_u16(), answer.body["code"].clone()));
    }

    let through = (401, json!("INVALID_CREDENTIALS"));
    let limited = (429, json!("RATE_LIMITED"));
    let mut expected = vec![through; 5];
    expected.push(limited.clone());
    assert_eq!(answers, expected, "A, B, C, A, B, C");
    // The budget is spent on every instance, not only on the one that refused.
    for i in [A, B] {
        let answer = cluster.api(i).login("nobody-more@example.com", WRONG).await;
        assert_eq!(
            (answer.status.as_u16(), answer.body["code"].clone()),
            limited
        );
    }
}

// ---------------------------------------------------------------- lockout

#[tokio::test]
async fn a_lockout_made_through_one_instance_holds_on_the_others() {
    if !postgres_or_skip() {
        return;
    }
    let (cluster, mail) = three_instances(&[
        ("SESAME_LOGIN_MAX_FAILURES", "3"),
        ("SESAME_LOGIN_MAX_FAILURES_ALL", "3"),
        ("SESAME_LOGIN_LOCKOUT_SECS", LONG_SECS),
    ])
    .await;
    let email = "lock@example.com";
    activated_user(cluster.api(A), &mail, email).await;
    // B and C let the right password in before the lock.
    login(cluster.api(B), email).await;
    login(cluster.api(C), email).await;

    for n in 1..=3 {
        let answer = cluster.api(A).login(email, WRONG).await;
        assert_eq!(
            answer.status(),
            StatusCode::UNAUTHORIZED,
            "wrong password #{n}"
        );
        answer.expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
    }

    for i in [B, C] {
        let answer = cluster.api(i).login(email, PASSWORD).await;
        assert!(
            answer.header("retry-after").is_some(),
            "no Retry-After from instance {i}: {:?}",
            answer.headers()
        );
        answer.expect_error(StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED");
    }
}

// ---------------------------------------------------------------- sessions

#[tokio::test]
async fn a_logout_through_one_instance_ends_the_session_on_the_others_at_the_next_request() {
    if !postgres_or_skip() {
        return;
    }
    let (cluster, mail) = three_instances(&[]).await;
    let email = "sam@example.com";
    activated_user(cluster.api(A), &mail, email).await;
    let (access, refresh) = login(cluster.api(A), email).await;
    // C has seen (and verified) the token before the logout.
    expect_me_ok(cluster.api(C), &access, email).await;

    cluster
        .api(B)
        .logout(&access, None)
        .await
        .expect(StatusCode::OK);

    let answer = cluster.api(C).me(&access).await;
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    answer.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let answer = cluster.api(A).refresh(&refresh).await;
    answer.expect_error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
}

#[tokio::test]
async fn a_refresh_token_spent_on_one_instance_and_replayed_on_another_revokes_the_session() {
    if !postgres_or_skip() {
        return;
    }
    // No grace window: any second presentation of a spent token is a replay.
    let (cluster, mail) = three_instances(&[("SESAME_REFRESH_REUSE_GRACE_SECS", "0")]).await;
    let email = "sam@example.com";
    activated_user(cluster.api(C), &mail, email).await;
    let (_, first_refresh) = login(cluster.api(C), email).await;
    let rotated = cluster
        .api(A)
        .refresh(&first_refresh)
        .await
        .expect(StatusCode::OK);
    let (new_access, new_refresh) = (
        str_field(&rotated, "accessToken"),
        str_field(&rotated, "refreshToken"),
    );
    expect_me_ok(cluster.api(A), &new_access, email).await;

    let replay = cluster.api(B).refresh(&first_refresh).await;

    replay.expect_error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    // The whole session is over: the rightful successor dies too.
    let answer = cluster.api(C).refresh(&new_refresh).await;
    answer.expect_error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    let answer = cluster.api(A).me(&new_access).await;
    answer.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

#[tokio::test]
async fn disabling_an_account_through_one_instance_stops_its_tokens_on_the_others() {
    if !postgres_or_skip() {
        return;
    }
    let (cluster, mail) = three_instances(&[]).await;
    cluster.create_admin("boss@example.com").await;
    let (boss, _) = login(cluster.api(A), "boss@example.com").await;
    let email = "sam@example.com";
    activated_user(cluster.api(B), &mail, email).await;
    let (access, refresh) = login(cluster.api(B), email).await;
    let user = cluster.api(C).me(&access).await.expect(StatusCode::OK);
    let user_id = str_field(&user["user"], "userId");

    let change = json!({"disabled": true});
    let answer = cluster
        .api(A)
        .update_account(&boss, &user_id, &change)
        .await;
    answer.expect(StatusCode::OK);

    let answer = cluster.api(C).me(&access).await;
    answer.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let answer = cluster.api(B).refresh(&refresh).await;
    answer.expect_error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
}

#[tokio::test]
async fn an_admin_demoted_through_one_instance_loses_admin_access_on_the_others() {
    if !postgres_or_skip() {
        return;
    }
    let (cluster, _mail) = three_instances(&[]).await;
    cluster.create_admin("boss@example.com").await;
    cluster.create_admin("deputy@example.com").await;
    let (boss, _) = login(cluster.api(A), "boss@example.com").await;
    let (deputy, _) = login(cluster.api(B), "deputy@example.com").await;
    let me = cluster.api(C).me(&deputy).await.expect(StatusCode::OK);
    let deputy_id = str_field(&me["user"], "userId");
    for i in [B, C] {
        cluster
            .api(i)
            .list_accounts(&deputy, "")
            .await
            .expect(StatusCode::OK);
    }

    let change = json!({"role": "user"});
    let answer = cluster
        .api(A)
        .update_account(&boss, &deputy_id, &change)
        .await;
    answer.expect(StatusCode::OK);

    for i in [B, C] {
        let answer = cluster.api(i).list_accounts(&deputy, "").await;
        answer.expect_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    }
}

// ---------------------------------------------------------------- code budgets

#[tokio::test]
async fn a_code_budget_spent_across_three_instances_refuses_the_right_code_on_each() {
    if !postgres_or_skip() {
        return;
    }
    let (cluster, mail) = three_instances(&[("SESAME_CODE_MAX_FAILURES_PER_DAY", "3")]).await;
    let email = "owner@example.com";
    cluster
        .api(A)
        .signup(&Signup::new(email))
        .await
        .expect(StatusCode::CREATED);
    let live = mail.wait_for_mail_to(email, 1, WAIT).await.code();
    let n: u32 = live.parse().expect("a six-digit code");
    let wrong = format!("{:06}", (n + 1) % 1_000_000);

    // One wrong code through each instance: three in all, the budget.
    for i in [A, B, C] {
        let answer = cluster.api(i).activate(email, &wrong).await;
        answer.expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    }

    // No instance counted only its own one failure: each refuses the right code.
    for i in [A, B, C] {
        let answer = cluster.api(i).activate(email, &live).await;
        answer.expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    }
}

// ---------------------------------------------------------------- outbox

#[tokio::test]
async fn thirty_emails_queued_while_smtp_is_down_arrive_exactly_once_when_it_is_back() {
    if !postgres_or_skip() {
        return;
    }
    // A port that refuses connections until the capture comes back on it.
    let reserved = refusing_port();
    let smtp_port = reserved.local_addr().expect("a bound socket").port();
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let cluster = Cluster::start(INSTANCES, &smtp_url, &[]).await;
    let db = cluster.db();

    let recipients: Vec<String> = (0..30).map(|n| format!("queued{n}@example.com")).collect();
    for (n, email) in recipients.iter().enumerate() {
        let answer = cluster.round_robin(n).signup(&Signup::new(email)).await;
        answer.expect(StatusCode::CREATED);
    }
    let unsent = "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL";
    assert_eq!(db.count(unsent, &[]).await, 30);
    // Delivery was tried, and failed, while SMTP was down.
    eventually("a failed delivery attempt", || async {
        let tried = "SELECT COUNT(*) FROM outbox WHERE attempts > 0 AND sent_at IS NULL";
        (db.count(tried, &[]).await > 0).then_some(())
    })
    .await;

    let mail = MailServer::start_on(smtp_port)
        .await
        .expect("the capture comes back on its port");
    drop(reserved);

    mail.wait_for(30, WAIT).await;
    db.wait_for_count(unsent, &[], 0).await;
    // One more email, queued after every one of the 30 was recorded sent:
    // once it is in, a duplicate still on its way would have had its chance.
    let sentinel = "sentinel@example.com";
    cluster
        .api(B)
        .signup(&Signup::new(sentinel))
        .await
        .expect(StatusCode::CREATED);
    mail.wait_for_mail_to(sentinel, 1, WAIT).await;
    let mut received: HashMap<String, usize> = HashMap::new();
    for captured in mail.messages() {
        for to in captured.to {
            *received.entry(to.to_lowercase()).or_default() += 1;
        }
    }
    let mut expected: HashMap<String, usize> = recipients.into_iter().map(|r| (r, 1)).collect();
    expected.insert(sentinel.to_owned(), 1);
    assert_eq!(received, expected, "each email exactly once");
    assert_eq!(mail.messages().len(), 31);
}

// ---------------------------------------------------------------- signing keys

#[tokio::test]
async fn a_key_rotated_while_three_instances_run_is_used_and_accepted_by_all_three() {
    if !postgres_or_skip() {
        return;
    }
    let (cluster, mail) = three_instances(&[]).await;
    let email = "sam@example.com";
    activated_user(cluster.api(A), &mail, email).await;
    let (before, _) = login(cluster.api(A), email).await;
    let old_kid = kid_of(&before);

    let run = cluster.keys_rotate().await;

    assert!(run.status.success(), "keys rotate failed: {}", run.stderr);
    let new_kid = run
        .stdout
        .split("new signing key ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no new kid in: {}", run.stdout))
        .to_owned();
    assert_ne!(new_kid, old_kid);
    // Each instance signs with the new key, and the two others accept what
    // it signed (the first token each meets may name a key it has not loaded).
    for signer in [A, B, C] {
        let (access, _) = login(cluster.api(signer), email).await;
        assert_eq!(kid_of(&access), new_kid, "signed by instance {signer}");
        for verifier in [A, B, C].into_iter().filter(|v| *v != signer) {
            expect_me_ok(cluster.api(verifier), &access, email).await;
        }
    }
    for i in [A, B, C] {
        eventually(&format!("instance {i} to publish {new_kid}"), || async {
            published_kids(cluster.api(i))
                .await
                .contains(&new_kid)
                .then_some(())
        })
        .await;
    }
}
