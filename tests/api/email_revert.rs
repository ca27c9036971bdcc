//! Undoing an email change from the old address (issue 13: "a leaked
//! password is a permanent takeover"). The attacker logs in with a leaked
//! password and moves the account to a mailbox of their own; the notice to
//! the old address carries a link that takes the account back. Each test
//! performs the attack against the real server and checks what the owner
//! and the attacker see.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const OWNER: &str = "owner@example.com";
const ATTACKER: &str = "attacker@evil.example";
const NEW_PASSWORD: &str = "a brand new passphrase";

/// Which email to `recipient` (1 for the first) the latest of `kind` is:
/// the outbox delivers in queue order.
async fn nth_of_latest(app: &TestApp, recipient: &str, kind: &str) -> usize {
    let sql = "SELECT COUNT(*) FROM outbox WHERE recipient = ?1 AND id <= \
               (SELECT MAX(id) FROM outbox WHERE recipient = ?1 AND kind = ?2)";
    app.db().count(sql, &[recipient, kind]).await as usize
}

/// The latest email of `kind` to `recipient`, once it arrived.
async fn latest_mail(app: &TestApp, recipient: &str, kind: &str) -> CapturedMail {
    let nth = nth_of_latest(app, recipient, kind).await;
    assert!(nth > 0, "no {kind} email was queued to {recipient}");
    app.mail.wait_for_mail_to(recipient, nth, WAIT).await
}

/// Moves the account behind `access` to `target` the way a user does: the
/// request with the password, then the code that arrived at `target`.
async fn move_account(app: &TestApp, access: &str, target: &str) {
    let answer = app.api.request_email_change(access, target, PASSWORD).await;
    answer.expect(StatusCode::ACCEPTED);
    let code = latest_mail(app, target, "email_change_code").await.code();
    let body = app.api.confirm_email_change(access, &code).await;
    assert_eq!(body.expect(StatusCode::OK)["user"]["email"], json!(target));
}

/// The revert token in the latest "your address was changed" notice to `old`.
async fn revert_token(app: &TestApp, old: &str) -> String {
    let notice = latest_mail(app, old, "email_changed").await;
    notice.link_param("token")
}

/// The reset token in the latest reset email to `email`.
async fn reset_token(app: &TestApp, email: &str) -> String {
    latest_mail(app, email, "password_reset")
        .await
        .link_param("token")
}

/// Reverts with `token`, asserting the `200`.
async fn revert(app: &TestApp, token: &str) -> Value {
    let body = app
        .api
        .revert_email_change(token)
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["success"], json!(true), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    body
}

/// Asserts the `400 INVALID_TOKEN` of a revert token that cannot work.
async fn expect_revert_refused(app: &TestApp, token: &str) {
    let answer = app.api.revert_email_change(token).await;
    answer.expect_error(StatusCode::BAD_REQUEST, "INVALID_TOKEN");
}

/// The takeover of the review: an owner with a session, an attacker who
/// logged in with the leaked password and moved the account to their own
/// mailbox. Returns the attacker's (access, refresh).
async fn taken_over(app: &TestApp) -> (String, String) {
    app.logged_in_user(OWNER).await;
    let (access, refresh) = app.another_session(OWNER).await;
    move_account(app, &access, ATTACKER).await;
    (access, refresh)
}

// ------------------------------------------------- the takeover, undone

/// Before: the notice said "reset it now", but forgot-password on the old
/// address did nothing, the attacker's sessions lived on, and so did the
/// password. Now the owner follows the link in the notice: the address is
/// back, every session of the attacker is dead, the leaked password no
/// longer logs anyone in, and a reset link at the owner's address lets the
/// owner in with a new password.
#[tokio::test]
async fn the_owner_takes_the_account_back_from_the_notice_link() {
    let app = spawn_app().await;
    let (attacker_access, attacker_refresh) = taken_over(&app).await;
    // The attacker's way back in: a reset link to their own mailbox.
    app.api
        .forgot_password(ATTACKER)
        .await
        .expect(StatusCode::OK);
    let attackers_reset = reset_token(&app, ATTACKER).await;

    let notice = latest_mail(&app, OWNER, "email_changed").await;
    assert!(
        notice.text_body().contains(ATTACKER),
        "{}",
        notice.text_body()
    );
    let link_prefix = format!("{}/revert-email?token=", app.config.app_url);
    assert!(
        notice.text_body().contains(&link_prefix),
        "{}",
        notice.text_body()
    );
    let token = notice.link_param("token");
    revert(&app, &token).await;

    // The attacker is out: sessions, password, and the reset link.
    app.expect_token_refused(&attacker_access).await;
    app.expect_refresh_refused(&attacker_refresh).await;
    for email in [ATTACKER, OWNER] {
        let login = app.api.login(email, PASSWORD).await;
        login.expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
    }
    let stale = app.api.reset_password(&attackers_reset, NEW_PASSWORD).await;
    stale.expect_error(StatusCode::BAD_REQUEST, "INVALID_TOKEN");

    // The owner gets in through the reset link sent to the old address.
    let owners_reset = reset_token(&app, OWNER).await;
    let reset = app.api.reset_password(&owners_reset, NEW_PASSWORD).await;
    reset.expect(StatusCode::OK);
    let tokens = app
        .api
        .login(OWNER, NEW_PASSWORD)
        .await
        .expect(StatusCode::OK);
    let me = app.me(&str_field(&tokens, "accessToken")).await;
    assert_eq!(me["email"], json!(OWNER));
}

/// The attacker may have asked for another move before the owner reacts:
/// the pending code dies with the revert.
#[tokio::test]
async fn a_revert_voids_a_pending_email_change_code() {
    let app = spawn_app().await;
    let (attacker_access, _) = taken_over(&app).await;
    let pending = "elsewhere@evil.example";
    let answer = app
        .api
        .request_email_change(&attacker_access, pending, PASSWORD)
        .await;
    answer.expect(StatusCode::ACCEPTED);
    let pending_codes = "SELECT COUNT(*) FROM one_time_codes WHERE purpose = 'email_change'";
    assert_eq!(app.db().count(pending_codes, &[]).await, 1);

    revert(&app, &revert_token(&app, OWNER).await).await;

    assert_eq!(app.db().count(pending_codes, &[]).await, 0);
}

// ------------------------------------------------- the link and its page

/// Mail scanners follow links: opening the page shows a button and spends
/// nothing, however often; the button's post undoes the change.
#[tokio::test]
async fn opening_the_revert_link_shows_a_button_and_spends_nothing() {
    let app = spawn_app().await;
    let (attacker_access, _) = taken_over(&app).await;
    let token = revert_token(&app, OWNER).await;
    let path = format!("/revert-email?token={token}");

    for _ in 0..2 {
        let resp = app.get(&path).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let csp = resp.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        let html = resp.text().await.expect("body");
        assert!(
            html.contains("<form method=\"post\" action=\"revert-email\">"),
            "{html}"
        );
        assert!(
            html.contains(&format!("name=\"token\" value=\"{token}\"")),
            "{html}"
        );
    }
    assert_eq!(app.me(&attacker_access).await["email"], json!(ATTACKER));

    let resp = app
        .client
        .post(format!("{}/revert-email", app.address))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("the page answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("body");
    assert!(html.contains("Email change undone"), "{html}");
    app.expect_token_refused(&attacker_access).await;
    let login = app.api.login(OWNER, PASSWORD).await;
    login.expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
    reset_token(&app, OWNER).await;
}

/// Markup in the link is shown as text in the page, never run.
#[tokio::test]
async fn a_token_from_the_link_is_escaped_in_the_page() {
    let app = spawn_app().await;
    let resp = app
        .get("/revert-email?token=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("body");
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&quot;&gt;&lt;script&gt;"), "{html}");
}

#[tokio::test]
async fn a_revert_token_works_once_and_unknown_ones_not_at_all() {
    let app = spawn_app().await;
    taken_over(&app).await;
    let token = revert_token(&app, OWNER).await;

    expect_revert_refused(&app, &"A".repeat(43)).await;
    revert(&app, &token).await;
    expect_revert_refused(&app, &token).await;

    // The page says so too.
    let resp = app
        .client
        .post(format!("{}/revert-email", app.address))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("the page answers");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let html = resp.text().await.expect("body");
    assert!(
        html.contains("invalid, has expired or was already used"),
        "{html}"
    );
}

/// Guessing revert tokens through the page is limited per client like the
/// API endpoint (`limits::every_anonymous_auth_endpoint_is_limited`);
/// opening the page is not.
#[tokio::test]
async fn the_revert_page_posts_are_rate_limited_per_client() {
    let app = spawn_app_with(|config| {
        config.ip_rate_limit = 2;
        config.ip_rate_window = Duration::from_secs(3600);
    })
    .await;
    let unknown = "A".repeat(43);
    let post = || {
        app.client
            .post(format!("{}/revert-email", app.address))
            .form(&[("token", unknown.as_str())])
            .send()
    };
    for _ in 0..2 {
        let resp = post().await.expect("the page answers");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
    let limited = post().await.expect("the page answers");
    expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    let shown = app.get(&format!("/revert-email?token={unknown}")).await;
    assert_eq!(shown.status(), StatusCode::OK);
}

/// A revert lives `SESAME_EMAIL_REVERT_TTL_SECS`; after that the link is
/// refused and the old address is free again.
#[tokio::test]
async fn an_expired_revert_token_is_refused_and_frees_the_old_address() {
    let app = spawn_app_with(|config| config.email_revert_ttl = Duration::from_secs(1)).await;
    taken_over(&app).await;
    let token = revert_token(&app, OWNER).await;
    let expires_at: String = app
        .db()
        .scalar("SELECT expires_at FROM email_reverts", &[])
        .await;
    let expires_at = chrono::DateTime::parse_from_rfc3339(&expires_at).expect("a timestamp");
    eventually("the revert to expire", move || async move {
        (chrono::Utc::now() > expires_at).then_some(())
    })
    .await;

    expect_revert_refused(&app, &token).await;
    assert_eq!(app.db().count_rows("users", "email", ATTACKER).await, 1);
    app.signup(OWNER).await.expect(StatusCode::CREATED);
}

// ------------------------------------------------- the old address is reserved

/// While the owner can still take the address back, nobody can sign up
/// with it: the answer is the one a taken address gets.
#[tokio::test]
async fn while_a_revert_is_possible_the_old_address_is_taken_for_signups() {
    let app = spawn_app().await;
    taken_over(&app).await;
    app.activated_user("kim@example.com").await;

    let reserved = app.signup(OWNER).await.status_and_text();
    let taken = app.signup("kim@example.com").await.status_and_text();
    assert_eq!(reserved.0, StatusCode::CONFLICT, "{}", reserved.1);
    assert_eq!(reserved, taken);
    assert_eq!(app.db().count_rows("users", "email", OWNER).await, 0);

    // With concealed signups, a reserved, a taken and a free address all
    // get the same answer, and no account or code comes of the reserved one.
    let app = app
        .restart_with(|config| config.signup_conceals_existing = true)
        .await;
    let reserved = app.signup(OWNER).await.status_and_text();
    let taken = app.signup("kim@example.com").await.status_and_text();
    let free = app.signup("new@example.com").await.status_and_text();
    assert_eq!(reserved.0, StatusCode::ACCEPTED, "{}", reserved.1);
    assert_eq!(reserved, taken);
    assert_eq!(reserved, free);
    assert_eq!(app.db().count_rows("users", "email", OWNER).await, 0);
    let codes_to_owner =
        "SELECT COUNT(*) FROM outbox WHERE recipient = ? AND kind = 'verification'";
    assert_eq!(app.db().count(codes_to_owner, &[OWNER]).await, 1);

    // Once the owner took the account back, the address is theirs again.
    revert(&app, &revert_token(&app, OWNER).await).await;
    assert_eq!(app.db().count_rows("users", "email", OWNER).await, 1);
}

/// Another account cannot move to the reserved address: refused when it
/// asks, as for a taken address, and refused at confirmation if it asked
/// while the address was still free (checked in the confirming
/// transaction: the address has no account, so no unique index refuses it).
#[tokio::test]
async fn while_a_revert_is_possible_another_account_cannot_move_to_the_old_address() {
    let app = spawn_app().await;
    let (kim, _) = app.logged_in_user("kim@example.com").await;
    let (mover, _) = app.logged_in_user("mover@example.com").await;
    let contested = "contested@example.com";
    // Kim asks for `contested` while it is free...
    let asked = app
        .api
        .request_email_change(&kim, contested, PASSWORD)
        .await;
    asked.expect(StatusCode::ACCEPTED);
    let kims_code = latest_mail(&app, contested, "email_change_code")
        .await
        .code();
    // ... then another account moves there and away again, which reserves it.
    move_account(&app, &mover, contested).await;
    move_account(&app, &mover, "mover2@example.com").await;
    assert_eq!(app.db().count_rows("users", "email", contested).await, 0);

    let confirmed = app.api.confirm_email_change(&kim, &kims_code).await;
    confirmed.expect_error(StatusCode::CONFLICT, "EMAIL_IN_USE");
    let asked = app
        .api
        .request_email_change(&kim, contested, PASSWORD)
        .await;
    asked.expect_error(StatusCode::CONFLICT, "EMAIL_IN_USE");
    assert_eq!(app.me(&kim).await["email"], json!("kim@example.com"));

    // The account the address was taken from may move back to it.
    move_account(&app, &mover, contested).await;
}

// ------------------------------------------------- moved more than once

/// The attacker moves the address twice (A→B→C): the owner's revert from A
/// still works, and it voids the revert the second move sent to B (the
/// attacker's mailbox), whose address is free again.
#[tokio::test]
async fn after_two_moves_the_first_owners_revert_works_and_voids_the_later_one() {
    let app = spawn_app().await;
    let (attacker_access, _) = taken_over(&app).await;
    let third = "third@evil.example";
    move_account(&app, &attacker_access, third).await;
    let owners = revert_token(&app, OWNER).await;
    let attackers = revert_token(&app, ATTACKER).await;

    revert(&app, &owners).await;

    expect_revert_refused(&app, &attackers).await;
    app.expect_token_refused(&attacker_access).await;
    let owners_reset = reset_token(&app, OWNER).await;
    app.api
        .reset_password(&owners_reset, NEW_PASSWORD)
        .await
        .expect(StatusCode::OK);
    let tokens = app
        .api
        .login(OWNER, NEW_PASSWORD)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        app.me(&str_field(&tokens, "accessToken")).await["email"],
        json!(OWNER)
    );
    // Neither of the attacker's addresses is held or reserved any more.
    app.signup(ATTACKER).await.expect(StatusCode::CREATED);
    app.signup(third).await.expect(StatusCode::CREATED);
}

/// The attacker spends the revert of their own second move first (it puts
/// their address B back and mails them a reset link): the owner's revert
/// from A, issued before it, still works and wins.
#[tokio::test]
async fn after_two_moves_spending_the_later_revert_leaves_the_first_owners_revert_working() {
    let app = spawn_app().await;
    let (attacker_access, _) = taken_over(&app).await;
    move_account(&app, &attacker_access, "third@evil.example").await;
    let owners = revert_token(&app, OWNER).await;
    let attackers = revert_token(&app, ATTACKER).await;

    revert(&app, &attackers).await;
    let attackers_reset = reset_token(&app, ATTACKER).await;
    revert(&app, &owners).await;

    let stale = app.api.reset_password(&attackers_reset, NEW_PASSWORD).await;
    stale.expect_error(StatusCode::BAD_REQUEST, "INVALID_TOKEN");
    let owners_reset = reset_token(&app, OWNER).await;
    app.api
        .reset_password(&owners_reset, NEW_PASSWORD)
        .await
        .expect(StatusCode::OK);
    app.api
        .login(OWNER, NEW_PASSWORD)
        .await
        .expect(StatusCode::OK);
}

// ------------------------------------------------- the outbox forgets

/// Once the notice is delivered, its stored bodies no longer carry the
/// revert token (the link included); what the owner received still works.
#[tokio::test]
async fn a_delivered_revert_notice_keeps_no_token_in_the_outbox() {
    let app = spawn_app().await;
    taken_over(&app).await;
    let token = revert_token(&app, OWNER).await;
    let db = app.db();
    let sent = "SELECT COUNT(*) FROM outbox WHERE kind = 'email_changed' AND sent_at IS NOT NULL";
    db.wait_for_count(sent, &[], 1).await;

    let (text, html, secret): (String, String, Option<String>) = (
        db.scalar(
            "SELECT text_body FROM outbox WHERE kind = 'email_changed'",
            &[],
        )
        .await,
        db.scalar(
            "SELECT html_body FROM outbox WHERE kind = 'email_changed'",
            &[],
        )
        .await,
        db.scalar(
            "SELECT secret FROM outbox WHERE kind = 'email_changed'",
            &[],
        )
        .await,
    );
    assert!(!text.contains(&token), "{text}");
    assert!(!html.contains(&token), "{html}");
    assert!(text.contains("/revert-email?token=[redacted]"), "{text}");
    assert_eq!(secret, None);

    revert(&app, &token).await;
}
