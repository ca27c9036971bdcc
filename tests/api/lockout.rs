//! Limits on guessing that live with the account: the lock after repeated
//! failed logins, the throttle on emails to one address, and the password
//! policy with its argon2 parameters.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};
use sesame::config::Argon2Params;
use tokio::time::Instant;

use crate::support::CapturedMail;
use crate::support::*;

/// A lock or interval that does not run out during a test.
const LONG: Duration = Duration::from_secs(3600);

const WRONG: &str = "not the password at all";
const NEW_PASSWORD: &str = "a brand new passphrase";

/// An app that locks an account for `lockout` after 3 failed logins: from
/// the tests' one network, and everywhere (the lock that emails the owner;
/// the two thresholds apart are tested in `hardening_login`).
async fn lockout_app(lockout: Duration) -> TestApp {
    spawn_app_with(|config| {
        config.login_max_failures = 3;
        config.login_max_failures_all = 3;
        config.login_lockout = lockout;
    })
    .await
}

/// An app that sends at most one email of a kind per address per `interval`.
async fn throttled_app(interval: Duration) -> TestApp {
    spawn_app_with(|config| config.email_min_interval = interval).await
}

async fn expect_invalid_credentials(resp: Answer) {
    expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
}

/// Asserts `429 ACCOUNT_LOCKED` with a `Retry-After` of at most `lockout`; returns it.
async fn expect_locked(resp: Answer, lockout: Duration) -> u64 {
    let secs: u64 = resp
        .headers()
        .get(RETRY_AFTER)
        .unwrap_or_else(|| panic!("no Retry-After on {}: {:?}", resp.status(), resp.headers()))
        .to_str()
        .expect("ASCII Retry-After")
        .parse()
        .expect("Retry-After in whole seconds");
    expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED").await;
    assert!(
        (1..=lockout.as_secs()).contains(&secs),
        "Retry-After {secs} for a lock of {lockout:?}"
    );
    secs
}

/// Three wrong passwords: the answers stay `401`, the third locks.
async fn lock(app: &TestApp, email: &str) {
    fail_logins(app, email, WRONG, 3).await;
}

/// `times` logins with a password that is not the account's, each refused.
async fn fail_logins(app: &TestApp, email: &str, password: &str, times: usize) {
    for _ in 0..times {
        expect_invalid_credentials(app.api.login(email, password).await).await;
    }
}

/// A login that succeeds.
async fn expect_login_ok(app: &TestApp, email: &str, password: &str) {
    expect_json(app.api.login(email, password).await, StatusCode::OK).await;
}

/// How many emails of `kind` were queued for `email` (sent or not).
async fn queued(app: &TestApp, email: &str, kind: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM outbox WHERE recipient = ? AND kind = '{kind}'");
    app.db().count(&sql, &[email]).await
}

/// The stored password hash of a user.
async fn password_hash(app: &TestApp, email: &str) -> String {
    let sql = "SELECT password_hash FROM users WHERE email = ?";
    app.db().scalar(sql, &[email]).await
}

/// Emails to `email` whose subject contains `subject`, as received so far.
fn mails_about(app: &TestApp, email: &str, subject: &str) -> Vec<CapturedMail> {
    app.mail
        .messages()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(email)))
        .filter(|m| m.subject().to_lowercase().contains(subject))
        .collect()
}

/// Waits for the `nth` email to `email` whose subject contains `subject`.
async fn wait_for_mail_about(
    app: &TestApp,
    email: &str,
    subject: &str,
    nth: usize,
) -> CapturedMail {
    eventually(&format!("mail #{nth} about {subject:?} to {email}"), || {
        let found = mails_about(app, email, subject).into_iter().nth(nth - 1);
        async move { found }
    })
    .await
}

// ---------------------------------------------------------------- lockout

#[tokio::test]
async fn the_failure_that_reaches_the_limit_still_answers_invalid_credentials() {
    let app = lockout_app(LONG).await;
    app.activated_user("lock@example.com").await;

    for n in 1..=3 {
        let resp = app.api.login("lock@example.com", WRONG).await;
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "wrong password #{n}"
        );
        expect_invalid_credentials(resp).await;
    }
}

#[tokio::test]
async fn a_locked_account_refuses_even_the_right_password_with_retry_after() {
    let app = lockout_app(LONG).await;
    app.activated_user("lock@example.com").await;
    lock(&app, "lock@example.com").await;

    let secs = expect_locked(app.api.login("lock@example.com", PASSWORD).await, LONG).await;
    assert!(
        secs > LONG.as_secs() - 60,
        "Retry-After {secs} right after a lock of {LONG:?}"
    );
    // A wrong password gets the very same answer: the lock is no oracle.
    expect_locked(app.api.login("lock@example.com", WRONG).await, LONG).await;
}

#[tokio::test]
async fn the_owner_is_emailed_once_per_lock() {
    let app = lockout_app(LONG).await;
    app.activated_user("notice@example.com").await;
    lock(&app, "notice@example.com").await;
    for password in [WRONG, PASSWORD, WRONG, WRONG, PASSWORD] {
        expect_locked(app.api.login("notice@example.com", password).await, LONG).await;
    }

    let notice = wait_for_mail_about(&app, "notice@example.com", "locked", 1).await;
    assert!(
        notice.text_body().contains("/reset-password"),
        "the notice says how to unlock:\n{}",
        notice.text_body()
    );
    // The outbox delivers in queue order: once a later email arrived, any
    // second notice queued before it would have arrived too.
    expect_json(
        app.api.forgot_password("notice@example.com").await,
        StatusCode::OK,
    )
    .await;
    wait_for_mail_about(&app, "notice@example.com", "reset", 1).await;
    assert_eq!(mails_about(&app, "notice@example.com", "locked").len(), 1);
    assert_eq!(
        queued(&app, "notice@example.com", "account_locked").await,
        1
    );
}

#[tokio::test]
async fn parallel_guesses_lock_the_account_once() {
    let app = lockout_app(LONG).await;
    app.activated_user("race@example.com").await;

    let mut guesses = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let client = app.client.clone();
        let url = format!("{}/users/login", app.address);
        guesses.spawn(async move {
            let body = json!({"email": "race@example.com", "password": WRONG});
            let resp = client.post(url).json(&body).send().await;
            resp.expect("request reaches the server").status()
        });
    }
    while let Some(status) = guesses.join_next().await {
        let status = status.expect("guess task");
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
            "a parallel wrong guess answered {status}"
        );
    }

    expect_locked(app.api.login("race@example.com", PASSWORD).await, LONG).await;
    assert_eq!(queued(&app, "race@example.com", "account_locked").await, 1);
}

#[tokio::test]
async fn once_the_lock_lapses_the_right_password_logs_in() {
    let lockout = Duration::from_secs(2);
    let app = lockout_app(lockout).await;
    app.activated_user("lapse@example.com").await;
    fail_logins(&app, "lapse@example.com", WRONG, 2).await;
    let locked_at = Instant::now();
    expect_invalid_credentials(app.api.login("lapse@example.com", WRONG).await).await;
    expect_locked(app.api.login("lapse@example.com", PASSWORD).await, lockout).await;

    let waited = eventually("the lock to lapse", || async {
        let resp = app.api.login("lapse@example.com", PASSWORD).await;
        match resp.status() {
            StatusCode::TOO_MANY_REQUESTS => None,
            _ => Some((locked_at.elapsed(), expect_json(resp, StatusCode::OK).await)),
        }
    })
    .await;

    assert!(
        waited.0 >= lockout,
        "the lock of {lockout:?} lapsed after {:?}",
        waited.0
    );
    assert!(waited.1["accessToken"].is_string(), "{}", waited.1);
}

#[tokio::test]
async fn waiting_as_long_as_the_lock_retry_after_says_is_enough() {
    let lockout = Duration::from_secs(2);
    let app = lockout_app(lockout).await;
    app.activated_user("honest@example.com").await;
    lock(&app, "honest@example.com").await;
    let secs = expect_locked(app.api.login("honest@example.com", PASSWORD).await, lockout).await;

    // The server's own promise: this sleep is the header under test.
    tokio::time::sleep(Duration::from_secs(secs)).await;

    expect_login_ok(&app, "honest@example.com", PASSWORD).await;
}

#[tokio::test]
async fn after_a_lapsed_lock_the_failures_are_counted_from_zero() {
    let lockout = Duration::from_secs(2);
    let app = lockout_app(lockout).await;
    app.activated_user("again@example.com").await;
    lock(&app, "again@example.com").await;
    eventually("the lock to lapse", || async {
        let resp = app.api.login("again@example.com", WRONG).await;
        (resp.status() == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;

    // That wrong password was the first of a new count: one more is allowed.
    expect_invalid_credentials(app.api.login("again@example.com", WRONG).await).await;
    expect_login_ok(&app, "again@example.com", PASSWORD).await;
}

#[tokio::test]
async fn a_successful_login_resets_the_failure_count() {
    // The count of the client's network; the count across all networks
    // keeps its failures for the lockout window (see `hardening_login`).
    let app = spawn_app_with(|config| {
        config.login_max_failures = 3;
        config.login_lockout = LONG;
    })
    .await;
    app.activated_user("reset-count@example.com").await;

    fail_logins(&app, "reset-count@example.com", WRONG, 2).await;
    expect_login_ok(&app, "reset-count@example.com", PASSWORD).await;
    fail_logins(&app, "reset-count@example.com", WRONG, 2).await;

    expect_login_ok(&app, "reset-count@example.com", PASSWORD).await;
    // And the count still works: three in a row lock.
    lock(&app, "reset-count@example.com").await;
    expect_locked(
        app.api.login("reset-count@example.com", PASSWORD).await,
        LONG,
    )
    .await;
}

/// A right password resets the network's count even where it opens no
/// session: an account not verified yet, or disabled, answers `403`, and
/// the failures before it no longer count towards the lock.
#[tokio::test]
async fn a_right_password_that_opens_no_session_still_resets_the_failure_count() {
    let app = spawn_app_with(|config| {
        config.login_max_failures = 3;
        config.login_lockout = LONG;
    })
    .await;
    let admin = app.admin_token("boss@example.com").await;
    app.signup("unverified@example.com")
        .await
        .expect(StatusCode::CREATED);
    let disabled = app.activated_user("disabled@example.com").await;
    let resp = app
        .api
        .update_account(
            &admin,
            &str_field(&disabled, "userId"),
            &json!({"disabled": true}),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;

    for (email, code) in [
        ("unverified@example.com", "EMAIL_NOT_VERIFIED"),
        ("disabled@example.com", "ACCOUNT_DISABLED"),
    ] {
        for _ in 0..2 {
            fail_logins(&app, email, WRONG, 2).await;
            let resp = app.api.login(email, PASSWORD).await;
            expect_error(resp, StatusCode::FORBIDDEN, code).await;
        }
        // Without the resets these would be failures 5 and 6: locked.
        fail_logins(&app, email, WRONG, 2).await;
    }
}

#[tokio::test]
async fn a_lock_survives_a_restart() {
    let app = lockout_app(LONG).await;
    app.activated_user("persist@example.com").await;
    lock(&app, "persist@example.com").await;

    let app = app.restart_with(|_| {}).await;

    expect_locked(app.api.login("persist@example.com", PASSWORD).await, LONG).await;
}

#[tokio::test]
async fn failures_short_of_the_limit_survive_a_restart() {
    let app = lockout_app(LONG).await;
    app.activated_user("count@example.com").await;
    fail_logins(&app, "count@example.com", WRONG, 2).await;

    let app = app.restart_with(|_| {}).await;

    expect_invalid_credentials(app.api.login("count@example.com", WRONG).await).await;
    expect_locked(app.api.login("count@example.com", PASSWORD).await, LONG).await;
}

#[tokio::test]
async fn a_password_reset_unlocks_the_account_at_once() {
    let app = lockout_app(LONG).await;
    app.activated_user("unlock@example.com").await;
    lock(&app, "unlock@example.com").await;
    expect_locked(app.api.login("unlock@example.com", PASSWORD).await, LONG).await;

    expect_json(
        app.api.forgot_password("unlock@example.com").await,
        StatusCode::OK,
    )
    .await;
    let mail = wait_for_mail_about(&app, "unlock@example.com", "reset", 1).await;
    let token = crate::support::find_query_param(&mail.text_body(), "token")
        .expect("reset email carries a link with a token");
    expect_json(
        app.api.reset_password(&token, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;

    expect_login_ok(&app, "unlock@example.com", NEW_PASSWORD).await;
    // The count starts over too: the old password is just wrong now.
    fail_logins(&app, "unlock@example.com", PASSWORD, 2).await;
    expect_login_ok(&app, "unlock@example.com", NEW_PASSWORD).await;
}

/// What a client can tell from a login answer: status, code, whether it says when to retry.
async fn login_answer(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value, bool) {
    let resp = app.api.login(email, password).await;
    let status = resp.status();
    let retry = resp.headers().contains_key(RETRY_AFTER);
    (status, resp.body["code"].clone(), retry)
}

#[tokio::test]
async fn lockout_does_not_reveal_whether_an_address_has_an_account() {
    let app = lockout_app(LONG).await;
    app.activated_user("known@example.com").await;

    let mut answers = Vec::new();
    for email in ["known@example.com", "unknown@example.com"] {
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(login_answer(&app, email, WRONG).await);
        }
        seen.push(login_answer(&app, email, PASSWORD).await);
        answers.push(seen);
    }

    assert_eq!(
        answers[0], answers[1],
        "an account answers {:?}, an address without one {:?}",
        answers[0], answers[1]
    );
}

#[tokio::test]
async fn failed_logins_to_an_unknown_address_email_nobody() {
    let app = lockout_app(LONG).await;
    app.activated_user("bystander@example.com").await;

    for _ in 0..10 {
        let resp = app.api.login("ghost@example.com", WRONG).await;
        assert!(
            matches!(
                resp.status(),
                StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
            ),
            "{}",
            resp.status()
        );
    }

    // Queue order: once the bystander's reset mail arrived, a notice queued
    // before it would have been delivered too.
    expect_json(
        app.api.forgot_password("bystander@example.com").await,
        StatusCode::OK,
    )
    .await;
    wait_for_mail_about(&app, "bystander@example.com", "reset", 1).await;
    assert!(mails_about(&app, "ghost@example.com", "").is_empty());
    assert_eq!(
        mails_about(&app, "bystander@example.com", "locked").len(),
        0
    );
    assert_eq!(
        app.db()
            .count_rows("users", "email", "ghost@example.com")
            .await,
        0
    );
}

#[tokio::test]
async fn a_lock_on_one_address_leaves_other_accounts_alone() {
    let app = lockout_app(LONG).await;
    app.activated_user("victim@example.com").await;
    app.activated_user("neighbour@example.com").await;
    lock(&app, "victim@example.com").await;

    expect_login_ok(&app, "neighbour@example.com", PASSWORD).await;
    // Addresses are compared normalized: the lock cannot be dodged by case or spaces.
    expect_locked(app.api.login("  VICTIM@Example.com ", PASSWORD).await, LONG).await;
}

// ---------------------------------------------------------------- email throttle

#[tokio::test]
async fn a_throttled_resend_answers_the_same_and_sends_nothing() {
    let app = throttled_app(LONG).await;
    expect_json(app.signup("resend@example.com").await, StatusCode::CREATED).await;
    let code = app.code_from_mail("resend@example.com", 1).await;

    let first = app
        .api
        .resend_activation("resend@example.com")
        .await
        .status_and_text();
    let second = app
        .api
        .resend_activation("resend@example.com")
        .await
        .status_and_text();
    let unknown = app
        .api
        .resend_activation("nobody-here@example.com")
        .await
        .status_and_text();

    assert_eq!(first.0, StatusCode::ACCEPTED, "{}", first.1);
    assert_eq!(first, second);
    assert_eq!(first, unknown, "throttling must not reveal the account");
    assert_eq!(
        queued(&app, "resend@example.com", "verification").await,
        1,
        "a resend within the interval queued an email"
    );
    // The throttled resends did not void the code that was sent.
    expect_json(
        app.api.activate("resend@example.com", &code).await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn a_second_forgot_within_the_interval_sends_no_second_email() {
    let app = throttled_app(LONG).await;
    app.activated_user("forgot@example.com").await;

    let first = app
        .api
        .forgot_password("forgot@example.com")
        .await
        .status_and_text();
    let second = app
        .api
        .forgot_password("forgot@example.com")
        .await
        .status_and_text();
    let unknown = app
        .api
        .forgot_password("nobody-here@example.com")
        .await
        .status_and_text();

    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!(first, second);
    assert_eq!(first, unknown, "throttling must not reveal the account");
    assert_eq!(
        queued(&app, "forgot@example.com", "password_reset").await,
        1
    );
    // The one token that was sent still works.
    let mail = wait_for_mail_about(&app, "forgot@example.com", "reset", 1).await;
    let token = crate::support::find_query_param(&mail.text_body(), "token").expect("token");
    expect_json(
        app.api.reset_password(&token, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn the_throttle_is_per_address_and_per_kind() {
    let app = throttled_app(LONG).await;
    app.activated_user("one@example.com").await;
    app.activated_user("two@example.com").await;

    // A verification email went to each a moment ago; a reset is another kind.
    expect_json(
        app.api.forgot_password("one@example.com").await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        app.api.forgot_password("two@example.com").await,
        StatusCode::OK,
    )
    .await;

    wait_for_mail_about(&app, "one@example.com", "reset", 1).await;
    wait_for_mail_about(&app, "two@example.com", "reset", 1).await;
}

#[tokio::test]
async fn after_the_interval_a_resend_sends_a_new_code() {
    let interval = Duration::from_secs(2);
    let app = throttled_app(interval).await;
    let started = Instant::now();
    expect_json(app.signup("later@example.com").await, StatusCode::CREATED).await;
    let old_code = app.code_from_mail("later@example.com", 1).await;

    expect_json(
        app.api.resend_activation("later@example.com").await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(queued(&app, "later@example.com", "verification").await, 1);

    let waited = eventually("a resend to be let through", || async {
        expect_json(
            app.api.resend_activation("later@example.com").await,
            StatusCode::ACCEPTED,
        )
        .await;
        (queued(&app, "later@example.com", "verification").await == 2).then(|| started.elapsed())
    })
    .await;
    assert!(
        waited >= interval,
        "a second email went out {waited:?} after the first (interval {interval:?})"
    );
    // Right away again: throttled once more.
    expect_json(
        app.api.resend_activation("later@example.com").await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(queued(&app, "later@example.com", "verification").await, 2);

    let new_code = app.code_from_mail("later@example.com", 2).await;
    if new_code != old_code {
        expect_error(
            app.api.activate("later@example.com", &old_code).await,
            StatusCode::BAD_REQUEST,
            "INVALID_CODE",
        )
        .await;
    }
    expect_json(
        app.api.activate("later@example.com", &new_code).await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn after_the_interval_a_forgot_sends_a_new_token() {
    let interval = Duration::from_secs(2);
    let app = throttled_app(interval).await;
    app.activated_user("later-reset@example.com").await;

    let started = Instant::now();
    expect_json(
        app.api.forgot_password("later-reset@example.com").await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        app.api.forgot_password("later-reset@example.com").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        queued(&app, "later-reset@example.com", "password_reset").await,
        1
    );

    let waited = eventually("a forgot to be let through", || async {
        expect_json(
            app.api.forgot_password("later-reset@example.com").await,
            StatusCode::OK,
        )
        .await;
        let n = queued(&app, "later-reset@example.com", "password_reset").await;
        (n == 2).then(|| started.elapsed())
    })
    .await;
    assert!(waited >= interval, "second reset email after {waited:?}");

    let mail = wait_for_mail_about(&app, "later-reset@example.com", "reset", 2).await;
    let token = crate::support::find_query_param(&mail.text_body(), "token").expect("token");
    expect_json(
        app.api.reset_password(&token, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

// ---------------------------------------------------------------- password policy

/// Signs up with `password` and returns the refusal's `fields.password`.
async fn refused_password(app: &TestApp, email: &str, password: &str) -> String {
    let resp = app
        .post(
            "/users/signup",
            json!({"email": email, "password": password, "confirmPassword": password}),
        )
        .await;
    let body = expect_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    body["fields"]["password"]
        .as_str()
        .unwrap_or_else(|| panic!("{password:?}: no fields.password in {body}"))
        .to_owned()
}

#[tokio::test]
async fn easily_guessed_passwords_are_refused_with_a_reason() {
    let app = spawn_app().await;

    for weak in [
        "password1",
        "qwertyuiop",
        "aaaaaaaaaa",
        "Password123",
        "12345678",
        "iloveyou2",
        "abcdefgh",
    ] {
        let why = refused_password(&app, "weak@example.com", weak).await;
        assert!(
            why.starts_with("is too easy to guess"),
            "{weak:?} refused with {why:?}"
        );
    }
    let why = refused_password(&app, "weak@example.com", "password1").await;
    assert!(why.contains("common"), "{why}");
    // Nothing was created along the way.
    expect_json(app.signup("weak@example.com").await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn a_password_made_of_the_email_address_is_refused() {
    let app = spawn_app().await;

    let why = refused_password(&app, "samuel.jones@example.com", "Samuel.Jones@Example.com").await;
    assert!(why.contains("email"), "{why}");
    let why = refused_password(&app, "samuel.jones@example.com", "samuel.jones1").await;
    assert!(why.starts_with("is too easy to guess"), "{why}");
}

#[tokio::test]
async fn unguessable_passwords_of_eight_characters_are_accepted() {
    let app = spawn_app().await;

    for (n, strong) in ["vG7#kq2!", "correct horse battery", "Tr0ub4dor&3x"]
        .into_iter()
        .enumerate()
    {
        let email = format!("strong{n}@example.com");
        let resp = app
            .post(
                "/users/signup",
                json!({"email": email, "password": strong, "confirmPassword": strong}),
            )
            .await;
        expect_json(resp, StatusCode::CREATED).await;
    }
}

#[tokio::test]
async fn a_weak_new_password_on_reset_is_refused_and_leaves_the_token_usable() {
    let app = spawn_app().await;
    app.activated_user("weak-reset@example.com").await;
    expect_json(
        app.api.forgot_password("weak-reset@example.com").await,
        StatusCode::OK,
    )
    .await;
    let token = app.reset_token_from_mail("weak-reset@example.com", 2).await;

    let body = expect_error(
        app.api.reset_password(&token, "password1").await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
    )
    .await;
    let why = body["fields"]["newPassword"].as_str().unwrap_or_default();
    assert!(why.starts_with("is too easy to guess"), "{body}");

    expect_json(
        app.api.reset_password(&token, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn a_password_hash_is_upgraded_on_login_when_the_argon2_parameters_change() {
    let old = Argon2Params {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    let new = Argon2Params {
        memory_kib: 2048,
        iterations: 2,
        parallelism: 1,
    };
    let app = spawn_app_with(|config| config.argon2 = old).await;
    app.activated_user("upgrade@example.com").await;
    let before = password_hash(&app, "upgrade@example.com").await;
    assert!(before.contains("m=1024,t=1,p=1"), "{before}");

    let app = app.restart_with(|config| config.argon2 = new).await;
    // Still the old hash until the user logs in.
    assert_eq!(password_hash(&app, "upgrade@example.com").await, before);
    app.login("upgrade@example.com").await;

    let after = password_hash(&app, "upgrade@example.com").await;
    assert!(after.starts_with("$argon2id$"), "{after}");
    assert!(after.contains("m=2048,t=2,p=1"), "{after}");
    // The same password still logs in, with the new hash and without another rehash.
    app.login("upgrade@example.com").await;
    assert_eq!(password_hash(&app, "upgrade@example.com").await, after);
    expect_invalid_credentials(app.api.login("upgrade@example.com", WRONG).await).await;
}

#[tokio::test]
async fn a_wrong_password_does_not_rehash() {
    let app = spawn_app().await;
    app.activated_user("norehash@example.com").await;
    let before = password_hash(&app, "norehash@example.com").await;

    let app = app
        .restart_with(|config| config.argon2.memory_kib = 2048)
        .await;
    expect_invalid_credentials(app.api.login("norehash@example.com", WRONG).await).await;

    assert_eq!(password_hash(&app, "norehash@example.com").await, before);
}

#[tokio::test]
async fn the_lock_answer_names_no_account_and_has_no_fields() {
    let app = lockout_app(LONG).await;
    app.activated_user("shape@example.com").await;
    lock(&app, "shape@example.com").await;

    let resp = app.api.login("shape@example.com", PASSWORD).await;
    let body: Value = expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED").await;

    assert_eq!(body.get("fields"), None, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        !message.contains("shape@example.com"),
        "the message names the account: {message}"
    );
}
