//! The transport and operations half of the second hardening round: each
//! test performs the attack against the real server and checks the answer
//! the contract gives instead.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, WAIT, expect_json, spawn_app};

/// A stranger can type anyone's address and any words as a name; the email
/// that then lands in the owner's mailbox must not carry those words.
#[tokio::test]
async fn the_verification_email_does_not_carry_the_name_typed_at_signup() {
    let app = spawn_app().await;
    let words = "Call +1 555 0100 to claim your prize";
    let resp = app
        .post(
            "/users/signup",
            json!({"email": "owner@example.com", "password": PASSWORD,
                   "confirmPassword": PASSWORD, "name": words}),
        )
        .await;
    expect_json(resp, StatusCode::CREATED).await;
    let resent = app
        .post(
            "/users/activate/resend",
            json!({"email": "owner@example.com"}),
        )
        .await;
    assert!(resent.status().is_success(), "{}", resent.status());

    for nth in [1, 2] {
        let mail = app
            .mail
            .wait_for_mail_to("owner@example.com", nth, WAIT)
            .await;
        let text = mail.text_body();
        let html = mail.html_body().unwrap_or_default();
        assert!(text.contains("Welcome to sesame!"), "{text}");
        for body in [&text, &html, &mail.data] {
            assert!(
                !body.contains("prize"),
                "the typed name reached the email: {body}"
            );
            assert!(
                !body.contains("555"),
                "the typed name reached the email: {body}"
            );
        }
    }
}
