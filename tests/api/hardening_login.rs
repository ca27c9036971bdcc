//! The attacks on password checks from issue 13, performed against the real
//! server: a flood of wrong passwords that used to queue hashes without
//! bound, a stranger locking the owner out, and a login that undid
//! concealing signups. Also: a right password whose session cannot be
//! opened is not left counted as a failure.

use std::time::{Duration, Instant};

use reqwest::header::RETRY_AFTER;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sesame::config::Config;
use sesame::http::rate_limits::TrustedProxies;

use crate::support::*;

const WRONG: &str = "not the password at all";

/// The argon2 cost a real server runs with (19 MiB, t=2).
fn default_cost(config: &mut Config) {
    config.argon2 = Config::defaults().argon2;
}

/// The default argon2 cost on one hashing thread: a queue that fills.
fn one_hashing_thread(config: &mut Config) {
    default_cost(config);
    config.hash_concurrency = 1;
}

/// Clients are told apart by `X-Forwarded-For` from the (trusted) loopback proxy.
fn behind_proxy(config: &mut Config) {
    config.trusted_proxies = TrustedProxies::parse("127.0.0.1").expect("valid list");
}

/// `POST /users/login` from `client_ip`.
async fn login_from(app: &TestApp, client_ip: &str, email: &str, password: &str) -> Response {
    app.client
        .post(format!("{}/users/login", app.address))
        .header("X-Forwarded-For", client_ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("request reaches the server")
}

/// What a client can tell from an answer: status, code, whether it has `Retry-After`.
async fn answer(resp: Response) -> (StatusCode, Value, bool) {
    let retry = resp.headers().contains_key(RETRY_AFTER);
    let status = resp.status();
    let body: Value = resp.json().await.expect("JSON body");
    (status, body["code"].clone(), retry)
}

/// What became of a wrong password to an address without an account.
enum Check {
    /// Hashed: `401 INVALID_CREDENTIALS`.
    Checked,
    /// `503 BUSY` with `Retry-After`, not hashed.
    Refused,
}
use Check::{Checked, Refused};

/// The [`Check`] an [`answer`] stands for; any other answer fails the test.
fn checked_or_refused(answer: (StatusCode, Value, bool)) -> Check {
    match answer {
        (StatusCode::UNAUTHORIZED, code, _) if code == "INVALID_CREDENTIALS" => Checked,
        (StatusCode::SERVICE_UNAVAILABLE, code, true) if code == "BUSY" => Refused,
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn expect_locked(resp: Response) {
    assert!(
        resp.headers().contains_key(RETRY_AFTER),
        "{:?}",
        resp.headers()
    );
    expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED").await;
}

async fn expect_invalid(resp: Response) {
    expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
}

/// How many emails of `kind` were queued for `email` (sent or not).
async fn queued(app: &TestApp, email: &str, kind: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM outbox WHERE recipient = ? AND kind = '{kind}'");
    app.db().count(&sql, &[email]).await
}

// ---- 1. Password checks cannot be queued without bound ----

#[tokio::test]
async fn a_flood_of_wrong_passwords_on_ones_own_account_hashes_no_more_than_the_lockout_allows() {
    let app = spawn_app_with(default_cost).await;
    let (attacker, _) = app.logged_in_user("attacker@example.com").await;
    app.activated_user("bystander@example.com").await;
    let before = app.hash_stats();

    // 400 wrong passwords from 64 concurrent clients, as in the review.
    let flood_started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/users/me", app.address),
            attacker.clone(),
        );
        clients.spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..400 / 64 + 1 {
                let resp = client
                    .delete(&url)
                    .bearer_auth(&token)
                    .json(&json!({"password": WRONG}))
                    .send()
                    .await;
                let (status, code, _) = answer(resp.expect("request reaches the server")).await;
                answers.push((status, code.as_str().unwrap_or("").to_owned()));
            }
            answers
        });
    }
    let flood = tokio::spawn(async move {
        let mut answers = Vec::new();
        while let Some(some) = clients.join_next().await {
            answers.extend(some.expect("flood client"));
        }
        (answers, flood_started.elapsed())
    });
    // Meanwhile a stranger logs in, again and again, until the flood is
    // over (a `503 BUSY` is retried after its `Retry-After`, as clients do;
    // it happens only if this machine is so loaded that the queue, sized at
    // start-up, holds fewer than the flood's few checks).
    let (mut login_times, mut busy) = (Vec::new(), 0);
    while login_times.is_empty() || (!flood.is_finished() && login_times.len() < 20) {
        let started = Instant::now();
        let resp = app
            .post(
                "/users/login",
                json!({"email": "bystander@example.com", "password": PASSWORD}),
            )
            .await;
        if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
            busy += 1;
            assert!(busy <= 10, "the bystander kept getting 503");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        expect_json(resp, StatusCode::OK).await;
        login_times.push(started.elapsed());
    }
    let (answers, flood_time) = flood.await.expect("flood");

    let wrong = answers
        .iter()
        .filter(|(status, code)| {
            *status == StatusCode::UNAUTHORIZED && code == "INVALID_CREDENTIALS"
        })
        .count();
    let locked = answers
        .iter()
        .filter(|(status, code)| {
            *status == StatusCode::TOO_MANY_REQUESTS && code == "ACCOUNT_LOCKED"
        })
        .count();
    assert_eq!(wrong + locked, answers.len(), "{answers:?}");
    let limit = app.config.login_max_failures as usize;
    assert_eq!(wrong, limit, "only the counted attempts were checked");
    let hashed = (app.hash_stats().ran - before.ran) as usize;
    assert!(
        hashed <= limit + login_times.len() + busy,
        "{hashed} hashes ran for {} flood requests and {} logins",
        answers.len(),
        login_times.len()
    );
    eprintln!(
        "flood: {} requests in {flood_time:?}, {hashed} hashes; bystander logins: \
         {login_times:?} ({busy} answered 503 first); capacity {}",
        answers.len(),
        app.hash_stats().capacity
    );
}

#[tokio::test]
async fn more_hashes_than_a_second_of_work_are_refused_with_503_busy_and_retry_after() {
    let app = spawn_app_with(one_hashing_thread).await;
    // Logins to distinct unknown addresses: no lock stops them, each needs a hash.
    let mut rounds = 0;
    let (mut refused, mut checked) = (0, 0);
    while refused == 0 {
        rounds += 1;
        assert!(rounds <= 5, "no request was refused in 5 rounds");
        let mut logins = tokio::task::JoinSet::new();
        for i in 0..(app.hash_stats().capacity * 3).max(60) {
            let (client, url) = (app.client.clone(), format!("{}/users/login", app.address));
            let body =
                json!({"email": format!("nobody{rounds}-{i}@example.com"), "password": WRONG});
            logins.spawn(async move {
                let resp = client.post(url).json(&body).send().await;
                answer(resp.expect("request reaches the server")).await
            });
        }
        while let Some(result) = logins.join_next().await {
            match checked_or_refused(result.expect("login task")) {
                Checked => checked += 1,
                Refused => refused += 1,
            }
        }
    }

    let stats = app.hash_stats();
    // The queue's size follows the hashes' running average; no more ever
    // held a place than the largest size it had.
    assert!(stats.high_water <= stats.peak_capacity, "{stats:?}");
    assert_eq!(
        stats.ran, checked,
        "every 401 was one hash, every 503 none: {stats:?}"
    );
    assert_eq!(stats.refused, refused, "{stats:?}");
    // A refused check leaves no failure counted: refused before counting
    // (the queue was full already) or counted and taken back (it filled
    // meanwhile). Each checked address counts one failure on its network.
    let counted: i64 = app
        .db()
        .scalar(
            "SELECT COALESCE(SUM(failures), 0) FROM login_failures WHERE network <> '*'",
            &[],
        )
        .await;
    assert_eq!(
        counted, checked as i64,
        "{refused} refused, {checked} checked"
    );
    eprintln!(
        "busy: capacity {} (peak {}), {checked} checked, {refused} refused in {rounds} round(s)",
        stats.capacity, stats.peak_capacity
    );
}

/// Clients that retry a `503 BUSY` at once, whatever its `Retry-After`
/// says (load generators, naive scripts), retry at the pace the queue frees
/// places: each refusal is held until a place is given back or its second
/// passes. Answered at once, a few such clients sent thousands of refusals a
/// second and took the core from the hashing thread.
#[tokio::test]
async fn a_busy_refusal_is_held_until_a_place_frees_so_instant_retries_do_not_spin() {
    let app = spawn_app_with(one_hashing_thread).await;
    let before = app.hash_stats();
    // More clients than places, each sending its next login the moment it
    // has an answer, for a few seconds.
    let extra = 4;
    let clients = 2 * before.capacity + extra;
    let window = Duration::from_secs(3);
    let started = Instant::now();
    let mut load = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (client, url) = (app.client.clone(), format!("{}/users/login", app.address));
        load.spawn(async move {
            let (mut checked, mut refused, mut i) = (0u64, 0u64, 0);
            while started.elapsed() < window {
                i += 1;
                let body =
                    json!({"email": format!("nobody{c}-{i}@example.com"), "password": WRONG});
                let resp = client.post(&url).json(&body).send().await;
                match checked_or_refused(answer(resp.expect("request reaches the server")).await) {
                    Checked => checked += 1,
                    Refused => refused += 1,
                }
            }
            (checked, refused)
        });
    }
    let (mut checked, mut refused) = (0, 0);
    while let Some(done) = load.join_next().await {
        let (c, r) = done.expect("load client");
        checked += c;
        refused += r;
    }
    let elapsed = started.elapsed();
    let stats = app.hash_stats();
    let freed = (stats.ran - before.ran) + (stats.skipped - before.skipped);
    // A held refusal ends when a place is given back (every hash run or
    // skipped gives one back; a place taken and then not used gives one
    // back too, at most one per refusal) or after its second: per client,
    // at most one a second plus the one in progress.
    let seconds = elapsed.as_secs() + 2;
    let bound = 2 * freed + clients as u64 * seconds;
    assert!(
        refused <= bound,
        "{refused} refusals in {elapsed:?} for {freed} places freed (bound {bound})"
    );
    assert!(refused > 0, "the queue was never full: {stats:?}");
    assert_eq!(stats.ran - before.ran, checked, "{stats:?}");
    eprintln!(
        "held refusals: {clients} clients, {checked} checked, {refused} refused in {elapsed:?} \
         (capacity {})",
        stats.capacity
    );
}

#[tokio::test]
async fn a_password_check_whose_client_left_is_not_hashed() {
    let app = spawn_app_with(one_hashing_thread).await;
    let capacity = app.hash_stats().capacity;
    // Over HTTP/2 a client that gives up resets its stream, and the server
    // drops the request. (Over HTTP/1.1 the server does not notice a client
    // that left until it writes the answer: the job then runs; the queue's
    // bound of about a second of work is what limits that waste.)
    let impatient = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_millis(100))
        .build()
        .expect("client");

    // Each round fills the queue with checks whose clients give up after
    // 100 ms; the queue holds about a second of work, so some are still
    // waiting then (a round is repeated if the hashes ran faster than the
    // cost measured at start-up on a loaded machine).
    let (mut sent, mut gave_up, mut rounds) = (0, 0, 0);
    let stats = loop {
        rounds += 1;
        assert!(rounds <= 5, "no abandoned check was skipped in 5 rounds");
        let mut logins = tokio::task::JoinSet::new();
        for i in 0..capacity.min(20) {
            let (client, url) = (impatient.clone(), format!("{}/users/login", app.address));
            let body = json!({"email": format!("gone{rounds}-{i}@example.com"), "password": WRONG});
            logins.spawn(async move { client.post(url).json(&body).send().await.is_err() });
            sent += 1;
        }
        while let Some(timed_out) = logins.join_next().await {
            gave_up += usize::from(timed_out.expect("login task"));
        }
        let stats = eventually("the hashing queue to drain", || {
            let stats = app.hash_stats();
            async move { (stats.queued == 0).then_some(stats) }
        })
        .await;
        if stats.skipped > 0 {
            break stats;
        }
    };
    assert!(
        stats.ran + stats.skipped + stats.refused <= sent as u64,
        "{stats:?}"
    );
    eprintln!("left: {gave_up} of {sent} clients gave up; {stats:?}");
}

// ---- 2. A stranger cannot lock the owner out ----

/// Behind a proxy, locking after 3 failures per network and 100 in all.
async fn network_lockout_app() -> TestApp {
    spawn_app_with(|config| {
        behind_proxy(config);
        config.login_max_failures = 3;
        config.login_max_failures_all = 100;
    })
    .await
}

#[tokio::test]
async fn a_strangers_failures_lock_the_account_for_the_strangers_network_only() {
    let app = network_lockout_app().await;
    app.activated_user("owner@example.com").await;
    let stranger = "203.0.113.7";
    for _ in 0..3 {
        expect_invalid(login_from(&app, stranger, "owner@example.com", WRONG).await).await;
    }

    expect_locked(login_from(&app, stranger, "owner@example.com", PASSWORD).await).await;
    let owner = login_from(&app, "198.51.100.2", "owner@example.com", PASSWORD).await;
    expect_json(owner, StatusCode::OK).await;
    // The owner's success does not lift the stranger's lock.
    expect_locked(login_from(&app, stranger, "owner@example.com", PASSWORD).await).await;
    assert_eq!(queued(&app, "owner@example.com", "account_locked").await, 0);
}

#[tokio::test]
async fn ipv6_clients_of_one_64_share_a_lock_and_other_networks_do_not() {
    let app = network_lockout_app().await;
    app.activated_user("owner6@example.com").await;
    for i in 1..=3 {
        let ip = format!("2001:db8:1:2::{i}");
        expect_invalid(login_from(&app, &ip, "owner6@example.com", WRONG).await).await;
    }

    let same_64 = "2001:db8:1:2:ffff:ffff:ffff:ffff";
    expect_locked(login_from(&app, same_64, "owner6@example.com", PASSWORD).await).await;
    let next_64 = login_from(&app, "2001:db8:1:3::1", "owner6@example.com", PASSWORD).await;
    expect_json(next_64, StatusCode::OK).await;
}

#[tokio::test]
async fn failures_from_many_networks_lock_everywhere_email_the_owner_and_a_reset_unlocks() {
    let app = spawn_app_with(|config| {
        behind_proxy(config);
        config.login_max_failures = 3;
        config.login_max_failures_all = 6;
    })
    .await;
    app.activated_user("wide@example.com").await;
    // Two failures from each of three networks: none is locked on its own.
    for net in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        for _ in 0..2 {
            expect_invalid(login_from(&app, net, "wide@example.com", WRONG).await).await;
        }
    }

    expect_locked(login_from(&app, "198.51.100.9", "wide@example.com", PASSWORD).await).await;
    let notice = app.mail.wait_for_mail_to("wide@example.com", 2, WAIT).await;
    assert!(
        notice.subject().to_lowercase().contains("locked"),
        "{}",
        notice.subject()
    );

    expect_json(
        app.patch("/users/forgot", json!({"email": "wide@example.com"}))
            .await,
        StatusCode::OK,
    )
    .await;
    let token = app.reset_token_from_mail("wide@example.com", 3).await;
    let new_password = "a brand new passphrase";
    let reset = app
        .patch(
            "/users/reset",
            json!({"token": token, "newPassword": new_password, "confirmPassword": new_password}),
        )
        .await;
    expect_json(reset, StatusCode::OK).await;
    for net in ["198.51.100.9", "192.0.2.1"] {
        let resp = login_from(&app, net, "wide@example.com", new_password).await;
        expect_json(resp, StatusCode::OK).await;
    }
}

#[tokio::test]
async fn an_administrators_unlock_clears_the_network_and_the_everywhere_locks() {
    let app = spawn_app_with(|config| {
        behind_proxy(config);
        config.login_max_failures = 2;
        config.login_max_failures_all = 4;
    })
    .await;
    let admin = app.admin_token("boss@example.com").await;
    let user_id = str_field(&app.activated_user("locked@example.com").await, "userId");
    for net in ["192.0.2.1", "192.0.2.2"] {
        for _ in 0..2 {
            expect_invalid(login_from(&app, net, "locked@example.com", WRONG).await).await;
        }
    }
    expect_locked(login_from(&app, "198.51.100.9", "locked@example.com", PASSWORD).await).await;

    let resp = app
        .patch_auth(
            &format!("/admin/users/{user_id}"),
            json!({"locked": false}),
            &admin,
        )
        .await;
    let body = expect_json(resp, StatusCode::OK).await;
    assert_eq!(body["user"]["lockedUntil"], Value::Null, "{body}");

    for net in ["192.0.2.1", "198.51.100.9"] {
        let resp = login_from(&app, net, "locked@example.com", PASSWORD).await;
        expect_json(resp, StatusCode::OK).await;
    }
}

#[tokio::test]
async fn unknown_addresses_lock_per_network_and_everywhere_exactly_like_accounts() {
    let app = spawn_app_with(|config| {
        behind_proxy(config);
        config.login_max_failures = 2;
        config.login_max_failures_all = 5;
    })
    .await;
    app.activated_user("known@example.com").await;

    // The same script for both: the attacker never knows the password, so
    // "known" is tried with a wrong one like "unknown".
    let script = [
        "192.0.2.1",
        "192.0.2.1",
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.2",
        "192.0.2.3",
        "192.0.2.4",
        "192.0.2.5",
    ];
    let mut seen = Vec::new();
    for email in ["known@example.com", "unknown@example.com"] {
        let mut answers = Vec::new();
        for net in script {
            answers.push(answer(login_from(&app, net, email, WRONG).await).await);
        }
        seen.push(answers);
    }
    assert_eq!(seen[0], seen[1], "known vs unknown address");
    let locked = seen[0]
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.count(), 3, "{:?}", seen[0]);
}

// ---- 3. Concealing signup stays concealed at login ----

#[tokio::test]
async fn with_concealment_the_right_password_of_an_unverified_account_answers_like_a_wrong_one() {
    let app = spawn_app_with(|config| config.signup_conceals_existing = true).await;
    // A verified account someone else owns, and a fresh signup.
    expect_json(app.signup("taken@example.com").await, StatusCode::ACCEPTED).await;
    let code = app.code_from_mail("taken@example.com", 1).await;
    let resp = app
        .patch(
            "/users/activate",
            json!({"email": "taken@example.com", "code": code}),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    let resp = app.signup("fresh@example.com").await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    app.mail
        .wait_for_mail_to("fresh@example.com", 1, WAIT)
        .await;

    // The attacker's oracle: sign up X with P, then log in as X with P.
    let fresh = app
        .post(
            "/users/login",
            json!({"email": "fresh@example.com", "password": PASSWORD}),
        )
        .await;
    let taken = app
        .post(
            "/users/login",
            json!({"email": "taken@example.com", "password": WRONG}),
        )
        .await;
    let (fresh_status, fresh_text) = (fresh.status(), fresh.text().await.expect("body"));
    let (taken_status, taken_text) = (taken.status(), taken.text().await.expect("body"));
    assert_eq!((fresh_status, &fresh_text), (taken_status, &taken_text));
    assert_eq!(fresh_status, StatusCode::UNAUTHORIZED, "{fresh_text}");

    // The owner of the address gets the code again, and it works.
    let code = app.code_from_mail("fresh@example.com", 2).await;
    let resp = app
        .patch(
            "/users/activate",
            json!({"email": "fresh@example.com", "code": code}),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    app.login("fresh@example.com").await;
}

#[tokio::test]
async fn with_concealment_right_passwords_of_an_unverified_account_count_like_wrong_ones() {
    let app = spawn_app_with(|config| {
        config.signup_conceals_existing = true;
        config.login_max_failures = 3;
        config.email_min_interval = Duration::from_secs(3600);
    })
    .await;
    expect_json(
        app.signup("unverified@example.com").await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.mail
        .wait_for_mail_to("unverified@example.com", 1, WAIT)
        .await;
    let body = json!({"email": "unverified@example.com", "password": PASSWORD});
    for _ in 0..3 {
        expect_invalid(app.post("/users/login", body.clone()).await).await;
    }

    // Locked like a guessed-at address; and the throttle held the resends back.
    expect_locked(app.post("/users/login", body).await).await;
    assert_eq!(
        queued(&app, "unverified@example.com", "verification").await,
        1
    );
}

// ---- 4. A right password whose session cannot be opened ----

/// Makes every insert into `sessions` fail, with an error that is not a
/// fault of the storage (a trigger that raises), while every other
/// statement keeps working.
async fn refuse_sessions(db: &TestDb) {
    let sql = if on_postgres() {
        "CREATE FUNCTION test_no_sessions() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'test: no sessions'; END $$; \
         CREATE TRIGGER test_no_sessions BEFORE INSERT ON sessions \
         FOR EACH ROW EXECUTE FUNCTION test_no_sessions()"
    } else {
        "CREATE TRIGGER test_no_sessions BEFORE INSERT ON sessions \
         BEGIN SELECT RAISE(ABORT, 'test: no sessions'); END"
    };
    db.execute(sql, &[]).await;
}

/// Undoes [`refuse_sessions`].
async fn allow_sessions(db: &TestDb) {
    let sql = if on_postgres() {
        "DROP TRIGGER test_no_sessions ON sessions; DROP FUNCTION test_no_sessions()"
    } else {
        "DROP TRIGGER test_no_sessions"
    };
    db.execute(sql, &[]).await;
}

/// An account's failed logins as counted: (on the client's network, everywhere).
async fn failures_of(db: &TestDb, user_id: &str) -> (i64, i64) {
    let sum = |network| {
        format!(
            "SELECT COALESCE(SUM(failures), 0) FROM login_failures \
             WHERE subject = ? AND network {network}"
        )
    };
    let here = db.scalar(&sum("<> '*'"), &[user_id]).await;
    let everywhere = db.scalar(&sum("= '*'"), &[user_id]).await;
    (here, everywhere)
}

#[tokio::test]
async fn a_right_password_whose_session_cannot_be_opened_is_not_counted_as_a_failure() {
    let app = spawn_app_with(|config| {
        config.login_max_failures = 2;
        config.login_max_failures_all = 3;
    })
    .await;
    let email = "nosession@example.com";
    app.activated_user(email).await;
    let db = app.db();
    let user_id: String = db
        .scalar("SELECT id FROM users WHERE email = ?", &[email])
        .await;
    let sessions = "SELECT COUNT(*) FROM sessions WHERE user_id = ?";
    refuse_sessions(&db).await;

    // More tries than either limit allows failures: a right password left
    // counted would lock the account by the third.
    for attempt in 1..=4 {
        let answer = app.api.login(email, PASSWORD).await;
        let text = answer.text.clone();
        let body = answer.expect_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR");
        assert_eq!(body["message"], "Internal server error", "{text}");
        for internal in ["sessions", "trigger", "INSERT", "sqlx", "SQLITE", "P0001"] {
            assert!(!text.contains(internal), "leaks {internal:?}: {text}");
        }
        assert_eq!(
            failures_of(&db, &user_id).await,
            (0, 0),
            "try {attempt}: the right password's attempt was taken back"
        );
    }
    assert_eq!(db.count(sessions, &[&user_id]).await, 0);
    // Not a fault of the storage: the server stays ready.
    assert_eq!(app.api.health_ready().await.status, StatusCode::OK);

    allow_sessions(&db).await;
    app.login(email).await;
    assert_eq!(db.count(sessions, &[&user_id]).await, 1);
    assert_eq!(failures_of(&db, &user_id).await, (0, 0));
}
