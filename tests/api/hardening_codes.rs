//! The second hardening round (issue 13) for emailed codes and the secrets
//! around credentials. Each test performs the attack against the real
//! server and checks what the owner and the attacker see.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::authed::*;
use crate::helpers::*;
use crate::smtp::find_six_digit_code;

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
    app.count(
        "SELECT COUNT(*) FROM outbox WHERE recipient = ? AND kind = ?",
        &[recipient, kind],
    )
    .await
}

/// Which email to `recipient` (1 for the first) the latest of `kind` is:
/// the outbox delivers in queue order.
async fn nth_of_latest(app: &TestApp, recipient: &str, kind: &str) -> usize {
    let n = app
        .count(
            "SELECT COUNT(*) FROM outbox WHERE recipient = ?1 AND id <= \
             (SELECT MAX(id) FROM outbox WHERE recipient = ?1 AND kind = ?2)",
            &[recipient, kind],
        )
        .await;
    n as usize
}

/// The code of the latest email of `kind` to `recipient`, once it arrived.
async fn latest_code(app: &TestApp, recipient: &str, kind: &str) -> String {
    let nth = nth_of_latest(app, recipient, kind).await;
    let mail = app.mail.wait_for_mail_to(recipient, nth, WAIT).await;
    find_six_digit_code(&mail.text_body()).expect("the email carries a code")
}

async fn activate(app: &TestApp, email: &str, code: &str) -> reqwest::Response {
    app.patch("/users/activate", json!({"email": email, "code": code}))
        .await
}

async fn resend(app: &TestApp, email: &str) {
    let resp = app
        .post("/users/activate/resend", json!({"email": email}))
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
}

/// Asks for a reset link and returns its token.
async fn reset_token(app: &TestApp, email: &str) -> String {
    let resp = app.patch("/users/forgot", json!({"email": email})).await;
    expect_json(resp, StatusCode::OK).await;
    let nth = nth_of_latest(app, email, "password_reset").await;
    app.reset_token_from_mail(email, nth).await
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.patch(
        "/users/reset",
        json!({"token": token, "newPassword": password, "confirmPassword": password}),
    )
    .await
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
    let db = app.db().await;
    sqlx::query("UPDATE code_failures SET window_start = ?")
        .bind(sesame::store::ts(
            chrono::Utc::now() - chrono::Duration::hours(25),
        ))
        .execute(&db)
        .await
        .expect("age the budget");
    db.close().await;

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
        let known = (known.status(), known.text().await.expect("body"));
        let unknown = (unknown.status(), unknown.text().await.expect("body"));
        assert_eq!(known, unknown);
        assert_eq!(known.0, StatusCode::BAD_REQUEST);
    }
    // Both budgets are counted (and spent) in the same table.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM code_failures WHERE failures = 4", &[])
            .await,
        2
    );
}

/// Email change codes have their own budget per account: a session that
/// guesses them loses the right code and gets no new one.
#[tokio::test]
async fn wrong_email_change_codes_spend_the_accounts_budget() {
    let app = spawn_app_with(|c| c.code_max_failures_per_day = 7).await;
    let (access, _) = app.logged_in_user(OWNER).await;
    let target = "new@example.com";
    let ask = || {
        app.post_auth(
            "/users/me/email",
            json!({"password": PASSWORD, "newEmail": target}),
            &access,
        )
    };
    let confirm =
        |code: String| app.patch_auth("/users/me/email", json!({ "code": code }), &access);
    for _ in 0..2 {
        expect_json(ask().await, StatusCode::ACCEPTED).await;
        let live = latest_code(&app, target, "email_change_code").await;
        for _ in 0..5 {
            let resp = confirm(wrong(&live)).await;
            expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
        }
    }
    // 10 wrong codes, 7 allowed: a new request answers as ever, sends nothing.
    expect_json(ask().await, StatusCode::ACCEPTED).await;
    assert_eq!(queued(&app, target, "email_change_code").await, 2);
    let latest = latest_code(&app, target, "email_change_code").await;
    expect_error(
        confirm(latest).await,
        StatusCode::BAD_REQUEST,
        "INVALID_CODE",
    )
    .await;
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
    let resp = app
        .patch_auth(
            "/users/me/password",
            json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD,
                   "confirmPassword": NEW_PASSWORD}),
            &access,
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
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
    let target = "new@example.com";
    let resp = app
        .post_auth(
            "/users/me/email",
            json!({"password": PASSWORD, "newEmail": target}),
            &access,
        )
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    let code = latest_code(&app, target, "email_change_code").await;
    let resp = app
        .patch_auth(
            "/users/me/password",
            json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD,
                   "confirmPassword": NEW_PASSWORD}),
            &access,
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    let resp = app
        .patch_auth("/users/me/email", json!({ "code": code }), &access)
        .await;
    expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    assert_eq!(app.me(&access).await["email"], json!(OWNER));
}

/// A password reset voids an email change code someone asked for with the
/// old password.
#[tokio::test]
async fn an_email_change_code_sent_before_a_password_reset_no_longer_works_after_it() {
    let app = spawn_app().await;
    let (attacker, _) = app.logged_in_user(OWNER).await;
    let target = "attacker@example.net";
    let resp = app
        .post_auth(
            "/users/me/email",
            json!({"password": PASSWORD, "newEmail": target}),
            &attacker,
        )
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    let code = latest_code(&app, target, "email_change_code").await;

    let token = reset_token(&app, OWNER).await;
    expect_json(reset(&app, &token, NEW_PASSWORD).await, StatusCode::OK).await;

    // The attacker logs in again somehow (say, the new password leaked
    // too): the code asked for before the reset still does nothing.
    let tokens = expect_json(login_with(&app, OWNER, NEW_PASSWORD).await, StatusCode::OK).await;
    let access = str_field(&tokens, "accessToken");
    let resp = app
        .patch_auth("/users/me/email", json!({ "code": code }), &access)
        .await;
    expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    assert_eq!(app.me(&access).await["email"], json!(OWNER));
}

/// A confirmed email change ends every other session (the owner's, or the
/// attacker's when the owner moves away) and voids reset links that went to
/// the old address.
#[tokio::test]
async fn a_confirmed_email_change_ends_other_sessions_and_voids_reset_links() {
    let app = spawn_app().await;
    let (mover, _) = app.logged_in_user(OWNER).await;
    let (other_access, other_refresh) = another_session(&app, OWNER).await;
    let token = reset_token(&app, OWNER).await;

    let target = "new@example.com";
    let resp = app
        .post_auth(
            "/users/me/email",
            json!({"password": PASSWORD, "newEmail": target}),
            &mover,
        )
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    let code = latest_code(&app, target, "email_change_code").await;
    let resp = app
        .patch_auth("/users/me/email", json!({ "code": code }), &mover)
        .await;
    let body: Value = expect_json(resp, StatusCode::OK).await;
    assert_eq!(body["user"]["email"], json!(target));

    expect_token_refused(&app, &other_access).await;
    expect_refresh_refused(&app, &other_refresh).await;
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
        let sql = "SELECT COUNT(*) FROM outbox WHERE kind = ? AND sent_at IS NOT NULL";
        let deadline = tokio::time::Instant::now() + WAIT;
        while app.count(sql, &[kind]).await == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{kind} not marked sent"
            );
            tokio::time::sleep(POLL).await;
        }
        let db = app.db().await;
        let (text, html, stored): (String, String, Option<String>) =
            sqlx::query_as("SELECT text_body, html_body, secret FROM outbox WHERE kind = ?")
                .bind(kind)
                .fetch_one(&db)
                .await
                .expect("the outbox row");
        db.close().await;
        assert!(!text.contains(secret.as_str()), "{kind}: {text}");
        assert!(!html.contains(secret.as_str()), "{kind}: {html}");
        assert!(text.contains("[redacted]"), "{kind}: {text}");
        assert_eq!(stored, None, "{kind}: the secret column is cleared");
    }
    // What the user received was whole: the code still activates.
    expect_json(activate(&app, OWNER, &code).await, StatusCode::OK).await;
}
