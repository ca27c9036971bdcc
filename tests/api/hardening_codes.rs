//! The second hardening round (issue 13) for emailed codes and the secrets
//! around credentials. Each test performs the attack against the real
//! server and checks what the owner and the attacker see.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const OWNER: &str = "owner@example.com";
const NEW_PASSWORD: &str = "a brand new passphrase";

/// A six-digit code that is not `code`.
fn wrong(code: &str) -> String {
    let n: u32 = code.parse().expect("a six-digit code");
    format!("{:06}", (n + 1) % 1_000_000)
}

/// How many emails of `kind` were queued to `recipient` (the outbox row is
/// written by the request that sends it, so this is exact at once).
async fn queued(app: &TestApp, recipient: &str, kind: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM outbox WHERE recipient = ? AND kind = ?";
    app.db().count(sql, &[recipient, kind]).await
}

/// Which email to `recipient` (1 for the first) the latest of `kind` is:
/// the outbox delivers in queue order.
async fn nth_of_latest(app: &TestApp, recipient: &str, kind: &str) -> usize {
    let sql = "SELECT COUNT(*) FROM outbox WHERE recipient = ?1 AND id <= \
               (SELECT MAX(id) FROM outbox WHERE recipient = ?1 AND kind = ?2)";
    app.db().count(sql, &[recipient, kind]).await as usize
}

/// The code of the latest email of `kind` to `recipient`, once it arrived.
async fn latest_code(app: &TestApp, recipient: &str, kind: &str) -> String {
    let nth = nth_of_latest(app, recipient, kind).await;
    app.mail.wait_for_mail_to(recipient, nth, WAIT).await.code()
}

async fn activate(app: &TestApp, email: &str, code: &str) -> Answer {
    app.api.activate(email, code).await
}

async fn resend(app: &TestApp, email: &str) {
    app.api
        .resend_activation(email)
        .await
        .expect(StatusCode::ACCEPTED);
}

/// Asks for a reset link and returns its token.
async fn reset_token(app: &TestApp, email: &str) -> String {
    app.api.forgot_password(email).await.expect(StatusCode::OK);
    let nth = nth_of_latest(app, email, "password_reset").await;
    app.reset_token_from_mail(email, nth).await
}

async fn reset(app: &TestApp, token: &str, password: &str) -> Answer {
    app.api.reset_password(token, password).await
}

async fn login_with(app: &TestApp, email: &str, password: &str) -> Answer {
    app.api.login(email, password).await
}

async fn change_password(app: &TestApp, access: &str) {
    let answer = app
        .api
        .change_password(access, PASSWORD, NEW_PASSWORD)
        .await;
    answer.expect(StatusCode::OK);
}

/// Asks to move the account to `target`; the code sent there.
async fn email_change_code(app: &TestApp, access: &str, target: &str) -> String {
    let answer = app.api.request_email_change(access, target, PASSWORD).await;
    answer.expect(StatusCode::ACCEPTED);
    latest_code(app, target, "email_change_code").await
}

// ------------------------------------------------- guesses per address

/// The attack of the review: five wrong tries void a code, but each resend
/// brought a fresh one with a fresh count: after 60 wrong guesses across 12
/// resends, the code of the next resend still activated the account. Now
/// the address has one budget (20 a day): once it is spent, resends send
/// nothing and every code is refused; the owner gets in through a reset link.
#[tokio::test]
async fn sixty_wrong_guesses_across_twelve_resends_do_not_leave_the_next_code_working() {
    let app = spawn_app().await;
    expect_json(app.signup(OWNER).await, StatusCode::CREATED).await;
    let mut wrong_guesses = 0;
    for resends in 0..=12 {
        if resends > 0 {
            resend(&app, OWNER).await;
        }
        let live = latest_code(&app, OWNER, "verification").await;
        if resends == 12 {
            // The next code, right as it is.
            expect_error(
                activate(&app, OWNER, &live).await,
                StatusCode::BAD_REQUEST,
                "INVALID_CODE",
            )
            .await;
            break;
        }
        for _ in 0..5 {
            expect_error(
                activate(&app, OWNER, &wrong(&live)).await,
                StatusCode::BAD_REQUEST,
                "INVALID_CODE",
            )
            .await;
            wrong_guesses += 1;
        }
    }
    assert_eq!(wrong_guesses, 60);
    // The signup's code and the first three resends' (20 wrong codes spend
    // the budget); the nine resends after that sent nothing.
    assert_eq!(queued(&app, OWNER, "verification").await, 4);
    expect_error(
        login_with(&app, OWNER, PASSWORD).await,
        StatusCode::FORBIDDEN,
        "EMAIL_NOT_VERIFIED",
    )
    .await;

    // The owner's way in: a reset link proves the address and activates.
    let token = reset_token(&app, OWNER).await;
    expect_json(reset(&app, &token, NEW_PASSWORD).await, StatusCode::OK).await;
    let tokens = expect_json(login_with(&app, OWNER, NEW_PASSWORD).await, StatusCode::OK).await;
    let me = app.me(&str_field(&tokens, "accessToken")).await;
    assert_eq!(me["active"], json!(true));
}

/// A spent budget refills when its day is over: resend sends a code again
/// and the right code activates.
#[tokio::test]
async fn a_spent_code_budget_refills_after_a_day() {
    let app = spawn_app_with(|c| c.code_max_failures_per_day = 3).await;
    expect_json(app.signup(OWNER).await, StatusCode::CREATED).await;
    let live = latest_code(&app, OWNER, "verification").await;
    for _ in 0..3 {
        let resp = activate(&app, OWNER, &wrong(&live)).await;
        expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    }
    // Three wrong tries do not void a code; the spent budget refuses it.
    expect_error(
        activate(&app, OWNER, &live).await,
        StatusCode::BAD_REQUEST,
        "INVALID_CODE",
    )
    .await;
    resend(&app, OWNER).await;
    assert_eq!(queued(&app, OWNER, "verification").await, 1, "spent");

    // A day later (the window moved back rather than the clock forward).
    let a_day_ago = sesame::store::stored_text(chrono::Utc::now() - chrono::Duration::hours(25));
    let sql = "UPDATE code_failures SET window_start = ?";
    assert_eq!(app.db().execute(sql, &[&a_day_ago]).await, 1);

    resend(&app, OWNER).await;
    assert_eq!(queued(&app, OWNER, "verification").await, 2);
    let code = latest_code(&app, OWNER, "verification").await;
    expect_json(activate(&app, OWNER, &code).await, StatusCode::OK).await;
}

/// Addresses without an account have a budget too, and every answer on the
/// way is the same as for an account's address: guessing cannot tell them
/// apart, before or after the budget is spent.
#[tokio::test]
async fn the_budget_answers_alike_for_addresses_with_and_without_an_account() {
    let app = spawn_app_with(|c| c.code_max_failures_per_day = 4).await;
    expect_json(app.signup(OWNER).await, StatusCode::CREATED).await;
    let live = latest_code(&app, OWNER, "verification").await;
    let stranger = "nobody@example.com";
    for _ in 0..6 {
        let known = activate(&app, OWNER, &wrong(&live)).await;
        let unknown = activate(&app, stranger, &wrong(&live)).await;
        let known = known.status_and_text();
        let unknown = unknown.status_and_text();
        assert_eq!(known, unknown);
        assert_eq!(known.0, StatusCode::BAD_REQUEST);
    }
    // Both budgets are counted (and spent) in the same table.
    let spent = "SELECT COUNT(*) FROM code_failures WHERE failures = 4";
    assert_eq!(app.db().count(spent, &[]).await, 2);
}

/// Forgot and resend commit one write whatever the address: a code and its
/// email for a real account, the request's count alone for an unknown,
/// active or throttled one. (Before, only real accounts wrote, and the
/// fsync made their answers measurably slower: `bench/enumeration.py`.)
#[tokio::test]
async fn forgot_and_resend_commit_one_write_for_known_and_unknown_addresses_alike() {
    let app = spawn_app_with(|c| c.email_min_interval = std::time::Duration::from_secs(60)).await;
    let active = "active@example.com";
    app.logged_in_user(active).await;
    expect_json(app.signup(OWNER).await, StatusCode::CREATED).await;
    let requests = "SELECT COALESCE(SUM(requests), 0) FROM address_requests";
    let mut expected = app.db().count(requests, &[]).await;
    let mut answers = Vec::new();
    // Twice each: the second request for an account is held back by the
    // email throttle, and must still write.
    for email in [active, OWNER, "nobody@example.com", active, OWNER] {
        answers.push(app.api.forgot_password(email).await.status_and_text());
        expected += 1;
        assert_eq!(
            app.db().count(requests, &[]).await,
            expected,
            "forgot {email}"
        );
        answers.push(app.api.resend_activation(email).await.status_and_text());
        expected += 1;
        assert_eq!(
            app.db().count(requests, &[]).await,
            expected,
            "resend {email}"
        );
    }
    let forgot: Vec<_> = answers.iter().step_by(2).collect();
    let resend: Vec<_> = answers.iter().skip(1).step_by(2).collect();
    assert!(forgot.iter().all(|a| *a == forgot[0]), "{forgot:?}");
    assert!(resend.iter().all(|a| *a == resend[0]), "{resend:?}");
    // What was asked is counted by a hash of the address: the table does
    // not list the addresses strangers tried.
    let listed = "SELECT COUNT(*) FROM address_requests WHERE address_key LIKE '%@%'";
    assert_eq!(app.db().count(listed, &[]).await, 0);
    assert_eq!(queued(&app, OWNER, "verification").await, 1);
}

/// Email change codes have their own budget per account: a session that
/// guesses them loses the right code and gets no new one.
#[tokio::test]
async fn wrong_email_change_codes_spend_the_accounts_budget() {
    let app = spawn_app_with(|c| c.code_max_failures_per_day = 7).await;
    let (access, _) = app.logged_in_user(OWNER).await;
    let target = "new@example.com";
    for _ in 0..2 {
        let live = email_change_code(&app, &access, target).await;
        for _ in 0..5 {
            let answer = app.api.confirm_email_change(&access, &wrong(&live)).await;
            answer.expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
        }
    }
    // 10 wrong codes, 7 allowed: a new request answers as ever, sends nothing.
    let latest = email_change_code(&app, &access, target).await;
    assert_eq!(queued(&app, target, "email_change_code").await, 2);
    let answer = app.api.confirm_email_change(&access, &latest).await;
    answer.expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    assert_eq!(app.me(&access).await["email"], json!(OWNER));
}

// ------------------------------------- credential changes void secrets

/// The review's takeover: a reset link sent before a password change still
/// worked after it. Now the change voids it.
#[tokio::test]
async fn a_reset_link_sent_before_a_password_change_no_longer_works_after_it() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user(OWNER).await;
    let token = reset_token(&app, OWNER).await;
    change_password(&app, &access).await;
    expect_error(
        reset(&app, &token, "yet another passphrase").await,
        StatusCode::BAD_REQUEST,
        "INVALID_TOKEN",
    )
    .await;
    expect_json(login_with(&app, OWNER, NEW_PASSWORD).await, StatusCode::OK).await;
}

/// An email change code pending at a password change is void after it.
#[tokio::test]
async fn an_email_change_code_sent_before_a_password_change_no_longer_works_after_it() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user(OWNER).await;
    let code = email_change_code(&app, &access, "new@example.com").await;
    change_password(&app, &access).await;
    let answer = app.api.confirm_email_change(&access, &code).await;
    answer.expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    assert_eq!(app.me(&access).await["email"], json!(OWNER));
}

/// A password reset voids an email change code someone asked for with the
/// old password.
#[tokio::test]
async fn an_email_change_code_sent_before_a_password_reset_no_longer_works_after_it() {
    let app = spawn_app().await;
    let (attacker, _) = app.logged_in_user(OWNER).await;
    let code = email_change_code(&app, &attacker, "attacker@example.net").await;

    let token = reset_token(&app, OWNER).await;
    expect_json(reset(&app, &token, NEW_PASSWORD).await, StatusCode::OK).await;

    // The attacker logs in again somehow (say, the new password leaked
    // too): the code asked for before the reset still does nothing.
    let tokens = expect_json(login_with(&app, OWNER, NEW_PASSWORD).await, StatusCode::OK).await;
    let access = str_field(&tokens, "accessToken");
    let answer = app.api.confirm_email_change(&access, &code).await;
    answer.expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    assert_eq!(app.me(&access).await["email"], json!(OWNER));
}

/// A confirmed email change ends every other session (the owner's, or the
/// attacker's when the owner moves away) and voids reset links that went to
/// the old address.
#[tokio::test]
async fn a_confirmed_email_change_ends_other_sessions_and_voids_reset_links() {
    let app = spawn_app().await;
    let (mover, _) = app.logged_in_user(OWNER).await;
    let (other_access, other_refresh) = app.another_session(OWNER).await;
    let token = reset_token(&app, OWNER).await;

    let target = "new@example.com";
    let code = email_change_code(&app, &mover, target).await;
    let body: Value = app
        .api
        .confirm_email_change(&mover, &code)
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["user"]["email"], json!(target));

    app.expect_token_refused(&other_access).await;
    app.expect_refresh_refused(&other_refresh).await;
    assert_eq!(app.me(&mover).await["email"], json!(target));
    expect_error(
        reset(&app, &token, NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "INVALID_TOKEN",
    )
    .await;
}

// ------------------------------------------------- the outbox forgets

/// The review found reset tokens in plain text in the outbox for 30 days
/// after delivery. Once delivered, an email's stored bodies no longer
/// carry its code or token.
#[tokio::test]
async fn delivered_emails_keep_no_code_or_token_in_the_outbox() {
    let app = spawn_app().await;
    expect_json(app.signup(OWNER).await, StatusCode::CREATED).await;
    let code = latest_code(&app, OWNER, "verification").await;
    let token = reset_token(&app, OWNER).await;

    for (kind, secret) in [("verification", &code), ("password_reset", &token)] {
        let db = app.db();
        let sent = "SELECT COUNT(*) FROM outbox WHERE kind = ? AND sent_at IS NOT NULL";
        db.wait_for_count(sent, &[kind], 1).await;
        let field = |column: &str| {
            let sql = format!("SELECT {column} FROM outbox WHERE kind = ?");
            let db = db.clone();
            async move { db.scalar::<Option<String>>(&sql, &[kind]).await }
        };
        let text = field("text_body").await.expect("a text body");
        let html = field("html_body").await.expect("an HTML body");
        let stored = field("secret").await;
        assert!(!text.contains(secret.as_str()), "{kind}: {text}");
        assert!(!html.contains(secret.as_str()), "{kind}: {html}");
        assert!(text.contains("[redacted]"), "{kind}: {text}");
        assert_eq!(stored, None, "{kind}: the secret column is cleared");
    }
    // What the user received was whole: the code still activates.
    expect_json(activate(&app, OWNER, &code).await, StatusCode::OK).await;
}
