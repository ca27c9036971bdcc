//! Forgotten passwords: the reset email, spending its token, and what a
//! reset does to the account's password and sessions.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const NEW_PASSWORD: &str = "a brand new passphrase";

/// Asks for a reset and returns the token from the `nth` email to `email`.
async fn requested_reset_token(app: &TestApp, email: &str, nth: usize) -> String {
    expect_json(app.api.forgot_password(email).await, StatusCode::OK).await;
    app.reset_token_from_mail(email, nth).await
}

async fn expect_invalid_token(resp: Answer) -> Value {
    expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_TOKEN").await
}

async fn expect_password_unchanged(app: &TestApp, email: &str) {
    expect_json(app.api.login(email, PASSWORD).await, StatusCode::OK).await;
    expect_error(
        app.api.login(email, NEW_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
    )
    .await;
}

#[tokio::test]
async fn forgot_emails_a_reset_link_carrying_the_token() {
    let app = spawn_app().await;
    app.activated_user("sam@example.com").await;

    let body = expect_json(
        app.api.forgot_password("Sam@Example.com").await,
        StatusCode::OK,
    )
    .await;

    assert_eq!(body["success"], json!(true), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let mail = app.mail.wait_for_mail_to("sam@example.com", 2, WAIT).await;
    let text = mail.text_body();
    let link_prefix = format!("{}/reset-password?token=", app.config.app_url);
    assert!(
        text.contains(&link_prefix),
        "no `{link_prefix}…` link in:\n{text}"
    );
    let token = app.reset_token_from_mail("sam@example.com", 2).await;
    let raw = URL_SAFE_NO_PAD
        .decode(&token)
        .unwrap_or_else(|e| panic!("token is not base64url ({e}): {token}"));
    assert_eq!(raw.len(), 32, "a reset token carries 256 bits: {token}");
    // The token is also there on its own, for pasting.
    let standalone = text
        .replace(&format!("{link_prefix}{token}"), "")
        .contains(&token);
    assert!(standalone, "the token is only inside the link:\n{text}");
    let html = mail.html_body().expect("an HTML part");
    assert!(html.contains(&token), "no token in the HTML part:\n{html}");
}

#[tokio::test]
async fn forgot_for_an_unknown_email_answers_the_same_and_sends_nothing() {
    let app = spawn_app().await;
    app.activated_user("sam@example.com").await;

    let unknown = expect_json(
        app.api.forgot_password("nobody@example.com").await,
        StatusCode::OK,
    )
    .await;
    let known = expect_json(
        app.api.forgot_password("sam@example.com").await,
        StatusCode::OK,
    )
    .await;

    assert_eq!(unknown, known);
    // Emails go out in order: once the second request's email is here, the
    // first one's would be too.
    app.mail.wait_for_mail_to("sam@example.com", 2, WAIT).await;
    let recipients: Vec<Vec<String>> = app.mail.messages().into_iter().map(|m| m.to).collect();
    assert_eq!(
        recipients,
        vec![vec!["sam@example.com".to_owned()]; 2],
        "only the activation and the reset email to sam"
    );
}

#[tokio::test]
async fn forgot_with_a_malformed_email_is_a_validation_error() {
    let app = spawn_app().await;

    let body = expect_error(
        app.api.forgot_password("not an email").await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
    )
    .await;

    assert!(body["fields"]["email"].is_string(), "{body}");
}

#[tokio::test]
async fn reset_changes_the_password() {
    let app = spawn_app().await;
    app.activated_user("sam@example.com").await;
    let token = requested_reset_token(&app, "sam@example.com", 2).await;

    let body = expect_json(
        app.api.reset_password(&token, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;

    assert_eq!(
        body,
        json!({"success": true, "message": "Password has been changed"})
    );
    expect_error(
        app.api.login("sam@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
    )
    .await;
    let tokens = expect_json(
        app.api.login("sam@example.com", NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    let me = app
        .get_auth("/users/me", &str_field(&tokens, "accessToken"))
        .await;
    expect_json(me, StatusCode::OK).await;
}

#[tokio::test]
async fn a_completed_reset_tells_the_owner_their_password_changed() {
    let app = spawn_app().await;
    app.activated_user("sam@example.com").await;
    let token = requested_reset_token(&app, "sam@example.com", 2).await;
    expect_json(
        app.api.reset_password(&token, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    // Mails so far: verification, reset link, and now the notice.
    let notice = app.mail.wait_for_mail_to("sam@example.com", 3, WAIT).await;
    assert_eq!(notice.subject(), "Your password was changed");
    assert!(
        !notice.text_body().contains(NEW_PASSWORD),
        "the notice never carries the password"
    );
}

#[tokio::test]
async fn reset_ends_every_session_from_before() {
    let app = spawn_app().await;
    let (first, first_refresh) = app.logged_in_user("sam@example.com").await;
    let second = app.login("sam@example.com").await;
    let (second, second_refresh) = (
        str_field(&second, "accessToken"),
        str_field(&second, "refreshToken"),
    );
    let token = requested_reset_token(&app, "sam@example.com", 2).await;

    expect_json(
        app.api.reset_password(&token, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;

    for access in [&first, &second] {
        let resp = app.api.me(access).await;
        expect_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    }
    for refresh_token in [&first_refresh, &second_refresh] {
        let resp = app.api.refresh(refresh_token).await;
        expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
    }
}

#[tokio::test]
async fn a_reset_token_works_only_once() {
    let app = spawn_app().await;
    app.activated_user("sam@example.com").await;
    let token = requested_reset_token(&app, "sam@example.com", 2).await;
    expect_json(
        app.api.reset_password(&token, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;

    let again = "yet another passphrase";
    expect_invalid_token(app.api.reset_password(&token, again).await).await;

    expect_json(
        app.api.login("sam@example.com", NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    expect_error(
        app.api.login("sam@example.com", again).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
    )
    .await;
}

/// The token a refused reset presents.
enum Presented {
    /// The one the reset email carried (a refusal must not spend it).
    Emailed,
    /// One the server never issued.
    Forged(String),
}

/// A reset the server refuses: what is sent, and the code and field blamed.
struct RefusedReset {
    case: &'static str,
    token: Presented,
    new_password: &'static str,
    confirm: &'static str,
    code: &'static str,
    field: Option<&'static str>,
}

/// In a new password: stands for the account's own address.
const OWN_ADDRESS: &str = "{own address}";

#[tokio::test]
async fn refused_resets_change_no_password_and_spend_no_token() {
    let app = spawn_app().await;
    let refused = |case, token, new_password, confirm, code, field| RefusedReset {
        case,
        token,
        new_password,
        confirm,
        code,
        field,
    };
    let (invalid, weak) = ("INVALID_TOKEN", "VALIDATION_FAILED");
    let never_issued = URL_SAFE_NO_PAD.encode([42u8; 32]);
    let cases = [
        refused(
            "a garbage token",
            Presented::Forged("garbage".into()),
            NEW_PASSWORD,
            NEW_PASSWORD,
            invalid,
            None,
        ),
        refused(
            "a well-formed token never issued",
            Presented::Forged(never_issued),
            NEW_PASSWORD,
            NEW_PASSWORD,
            invalid,
            None,
        ),
        refused(
            "a mismatched confirmation",
            Presented::Emailed,
            NEW_PASSWORD,
            "a different passphrase",
            weak,
            Some("confirmPassword"),
        ),
        refused(
            "a short new password",
            Presented::Emailed,
            "short",
            "short",
            weak,
            Some("newPassword"),
        ),
        refused(
            "a common new password",
            Presented::Emailed,
            "password123",
            "password123",
            weak,
            Some("newPassword"),
        ),
        refused(
            "the address as new password",
            Presented::Emailed,
            OWN_ADDRESS,
            OWN_ADDRESS,
            weak,
            Some("newPassword"),
        ),
    ];

    for (i, reset) in cases.into_iter().enumerate() {
        let case = reset.case;
        let email = format!("case{i}@example.com");
        app.activated_user(&email).await;
        let emailed = matches!(reset.token, Presented::Emailed);
        let token = match reset.token {
            Presented::Emailed => requested_reset_token(&app, &email, 2).await,
            Presented::Forged(token) => token,
        };
        let own = |password: &str| password.replace(OWN_ADDRESS, &email);
        let (new_password, confirm) = (own(reset.new_password), own(reset.confirm));

        let answer = app
            .api
            .reset_password_confirmed(&token, &new_password, &confirm)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            answer.text
        );
        let body = answer.expect_error(StatusCode::BAD_REQUEST, reset.code);
        if let Some(field) = reset.field {
            assert!(
                body["fields"][field]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{case}: expected a `fields.{field}` message in {body}"
            );
        }

        expect_password_unchanged(&app, &email).await;
        if emailed {
            // The user fixes the mistake and tries again with the same email.
            let answer = app.api.reset_password(&token, NEW_PASSWORD).await;
            assert_eq!(answer.status, StatusCode::OK, "{case}: {}", answer.text);
        }
    }
}

#[tokio::test]
async fn an_expired_reset_token_is_invalid() {
    let app = spawn_app().await;
    app.activated_user("sam@example.com").await;
    // Short-lived codes only from now on, so activation above had time.
    let app = app
        .restart_with(|config| config.code_ttl = Duration::from_secs(1))
        .await;
    let token = requested_reset_token(&app, "sam@example.com", 2).await;

    // Probing with the address as password: refused as weak while the token
    // lives (that rule needs the token's owner), refused as invalid once it
    // has expired. Neither spends the token.
    let deadline = tokio::time::Instant::now() + WAIT;
    let probe = "sam@example.com";
    loop {
        let body = expect_json(
            app.api.reset_password(&token, probe).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        if body["code"] == json!("INVALID_TOKEN") {
            break;
        }
        assert_eq!(body["code"], json!("VALIDATION_FAILED"), "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "a reset token with a 1-second lifetime still lives after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    expect_invalid_token(app.api.reset_password(&token, NEW_PASSWORD).await).await;
    expect_password_unchanged(&app, "sam@example.com").await;
}

#[tokio::test]
async fn a_second_forgot_request_voids_the_first_token() {
    let app = spawn_app().await;
    app.activated_user("sam@example.com").await;
    let first = requested_reset_token(&app, "sam@example.com", 2).await;
    let second = requested_reset_token(&app, "sam@example.com", 3).await;
    assert_ne!(first, second);

    expect_invalid_token(app.api.reset_password(&first, NEW_PASSWORD).await).await;
    expect_password_unchanged(&app, "sam@example.com").await;

    expect_json(
        app.api.reset_password(&second, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        app.api.login("sam@example.com", NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}
