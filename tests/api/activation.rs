//! `PATCH /users/activate`, `POST /users/activate/resend`, and login before
//! activation.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::find_six_digit_code;
use crate::support::*;

/// A 6-digit code that differs from `code` (`n` = 1, 2, … give different ones).
fn wrong_code(code: &str, n: u32) -> String {
    let real: u32 = code.parse().expect("a 6-digit code");
    format!("{:06}", (real + n) % 1_000_000)
}

/// Signs up and returns the code from the verification email.
async fn signed_up(app: &TestApp, email: &str) -> String {
    expect_json(app.signup(email).await, StatusCode::CREATED).await;
    app.code_from_mail(email, 1).await
}

/// The body every refused code gets, taken from an address that does not exist.
async fn invalid_code_body(app: &TestApp) -> Value {
    let resp = app.api.activate("nobody-here@example.com", "123456").await;
    expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await
}

#[tokio::test]
async fn the_emailed_code_activates_the_account_and_then_login_works() {
    let app = spawn_app().await;
    let code = signed_up(&app, "sam@example.com").await;

    // The address is matched in any case, as the user may type it.
    let resp = app.api.activate(" Sam@Example.COM ", &code).await;
    let body = expect_json(resp, StatusCode::OK).await;
    assert_eq!(
        body,
        json!({"success": true, "message": "Account activated."})
    );

    let tokens = app.login("sam@example.com").await;
    assert_eq!(tokens["tokenType"], json!("Bearer"), "{tokens}");
    let me = expect_json(
        app.api.me(&str_field(&tokens, "accessToken")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["user"]["active"], json!(true), "{me}");
}

#[tokio::test]
async fn the_right_code_works_after_up_to_four_wrong_tries_and_never_after_five() {
    let app = spawn_app().await;
    // (wrong tries, whether the right code still activates)
    let cases = [(1, true), (4, true), (5, false)];
    for (tries, still_works) in cases {
        let case = format!("after {tries} wrong tries");
        let email = format!("tries{tries}@example.com");
        let code = signed_up(&app, &email).await;
        for n in 1..=tries {
            let answer = app.api.activate(&email, &wrong_code(&code, n)).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{case}: {}",
                answer.text
            );
            answer.expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
        }
        let answer = app.api.login(&email, PASSWORD).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{case}: {}",
            answer.text
        );
        answer.expect_error(StatusCode::FORBIDDEN, "EMAIL_NOT_VERIFIED");

        let answer = app.api.activate(&email, &code).await;
        if still_works {
            assert_eq!(answer.status, StatusCode::OK, "{case}: {}", answer.text);
            app.api.login(&email, PASSWORD).await.expect(StatusCode::OK);
        } else {
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{case}: {}",
                answer.text
            );
            let refused = answer.expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
            assert_eq!(refused, invalid_code_body(&app).await, "{case}");
            let answer = app.api.login(&email, PASSWORD).await;
            answer.expect_error(StatusCode::FORBIDDEN, "EMAIL_NOT_VERIFIED");
        }
    }
}

#[tokio::test]
async fn an_unknown_email_gets_the_same_answer_as_a_wrong_code() {
    let app = spawn_app().await;
    let code = signed_up(&app, "sam@example.com").await;

    let resp = app
        .api
        .activate("sam@example.com", &wrong_code(&code, 1))
        .await;
    let wrong = expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    let resp = app.api.activate("nobody@example.com", &code).await;
    let unknown = expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    assert_eq!(unknown, wrong);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_concurrent_wrong_tries_void_the_code_as_surely_as_sequential_ones() {
    let app = spawn_app().await;
    let code = signed_up(&app, "sam@example.com").await;
    let url = format!("{}/users/activate", app.address);
    let tries: Vec<_> = (1..=5)
        .map(|n| {
            let client = app.client.clone();
            let url = url.clone();
            let body = json!({"email": "sam@example.com", "code": wrong_code(&code, n)});
            tokio::spawn(async move {
                client
                    .patch(url)
                    .json(&body)
                    .send()
                    .await
                    .expect("request reaches the server")
                    .status()
            })
        })
        .collect();
    for task in tries {
        assert_eq!(task.await.expect("task"), StatusCode::BAD_REQUEST);
    }

    let resp = app.api.activate("sam@example.com", &code).await;
    expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
}

#[tokio::test]
async fn a_code_used_up_by_wrong_tries_is_replaced_by_a_resent_one() {
    let app = spawn_app().await;
    let code = signed_up(&app, "sam@example.com").await;
    for n in 1..=5 {
        let resp = app
            .api
            .activate("sam@example.com", &wrong_code(&code, n))
            .await;
        expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    }

    expect_json(
        app.api.resend_activation("sam@example.com").await,
        StatusCode::ACCEPTED,
    )
    .await;
    let fresh = app.code_from_mail("sam@example.com", 2).await;
    expect_json(
        app.api.activate("sam@example.com", &fresh).await,
        StatusCode::OK,
    )
    .await;
    app.login("sam@example.com").await;
}

#[tokio::test]
async fn an_expired_code_is_refused_like_a_wrong_one() {
    let ttl = Duration::from_secs(1);
    let poll = Duration::from_millis(100);
    let app = spawn_app_with(|config| config.code_ttl = ttl).await;

    // A code can only be presented once to learn whether it has expired: a
    // live one activates its account. So sign up several accounts, then
    // present their codes in sign-up order, one per poll, until one is
    // refused. Every code was issued before polling began, so each expires
    // less than `ttl` after the first poll, while poll `i` comes at least
    // `i * poll` after it: by poll `ttl / poll` the code has surely expired.
    let probes = (ttl.as_millis() / poll.as_millis()) as usize + 5;
    let mut accounts = Vec::new();
    for i in 0..probes {
        let email = format!("probe{i}@example.com");
        expect_json(app.signup(&email).await, StatusCode::CREATED).await;
        accounts.push(email);
    }
    let mut codes = Vec::new();
    for email in &accounts {
        codes.push(app.code_from_mail(email, 1).await);
    }

    let mut expired = None;
    for (email, code) in accounts.iter().zip(&codes) {
        let resp = app.api.activate(email, code).await;
        match resp.status() {
            StatusCode::OK => tokio::time::sleep(poll).await,
            _ => {
                expired = Some((email, code, resp));
                break;
            }
        }
    }
    let (email, code, resp) =
        expired.unwrap_or_else(|| panic!("every code still worked after {probes} polls"));

    let refused = expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    assert_eq!(refused, invalid_code_body(&app).await);
    let resp = app.api.activate(email, code).await;
    expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    let resp = app.api.login(email, PASSWORD).await;
    expect_error(resp, StatusCode::FORBIDDEN, "EMAIL_NOT_VERIFIED").await;
}

#[tokio::test]
async fn resending_replaces_the_code_so_only_the_new_one_works() {
    let app = spawn_app().await;
    let old = signed_up(&app, "sam@example.com").await;

    // One in a million, a new code equals the old one; ask again then.
    let mut nth = 1;
    let new = loop {
        let resp = app.api.resend_activation("Sam@Example.com").await;
        let body = expect_json(resp, StatusCode::ACCEPTED).await;
        assert_eq!(body["success"], json!(true), "{body}");
        nth += 1;
        let mail = app
            .mail
            .wait_for_mail_to("sam@example.com", nth, WAIT)
            .await;
        assert_eq!(mail.to, vec!["sam@example.com".to_owned()]);
        let code = find_six_digit_code(&mail.text_body()).expect("the new email carries a code");
        if code != old || nth > 3 {
            break code;
        }
    };
    assert_ne!(new, old);

    let resp = app.api.activate("sam@example.com", &old).await;
    expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    expect_json(
        app.api.activate("sam@example.com", &new).await,
        StatusCode::OK,
    )
    .await;
    app.login("sam@example.com").await;
}

#[tokio::test]
async fn resend_answers_alike_for_unknown_active_and_pending_addresses_and_mails_only_pending() {
    let app = spawn_app().await;
    app.activated_user("active@example.com").await;
    signed_up(&app, "pending@example.com").await;

    let resp = app.api.resend_activation("unknown@example.com").await;
    let unknown = expect_json(resp, StatusCode::ACCEPTED).await;
    let resp = app.api.resend_activation("active@example.com").await;
    let active = expect_json(resp, StatusCode::ACCEPTED).await;
    let resp = app.api.resend_activation("pending@example.com").await;
    let pending = expect_json(resp, StatusCode::ACCEPTED).await;
    assert_eq!(unknown["success"], json!(true), "{unknown}");
    assert_eq!(active, unknown);
    assert_eq!(pending, unknown);

    // The pending account's new code was queued last; once it is here,
    // anything the other two requests queued would be here too.
    app.mail
        .wait_for_mail_to("pending@example.com", 2, WAIT)
        .await;
    app.drain_outbox("sentinel@example.com").await;
    assert_eq!(app.mail.mails_to("unknown@example.com").len(), 0);
    assert_eq!(
        app.mail.mails_to("active@example.com").len(),
        1,
        "only its first code"
    );
    assert_eq!(app.mail.mails_to("pending@example.com").len(), 2);
}

#[tokio::test]
async fn presenting_the_used_code_again_answers_409_already_active() {
    let app = spawn_app().await;
    let code = signed_up(&app, "sam@example.com").await;
    expect_json(
        app.api.activate("sam@example.com", &code).await,
        StatusCode::OK,
    )
    .await;

    let resp = app.api.activate("SAM@example.com", &code).await;
    expect_error(resp, StatusCode::CONFLICT, "ALREADY_ACTIVE").await;
}

#[tokio::test]
async fn a_different_code_for_an_active_account_is_refused_like_any_wrong_code() {
    let app = spawn_app().await;
    let code = signed_up(&app, "sam@example.com").await;
    expect_json(
        app.api.activate("sam@example.com", &code).await,
        StatusCode::OK,
    )
    .await;

    let resp = app
        .api
        .activate("sam@example.com", &wrong_code(&code, 1))
        .await;
    let refused = expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    assert_eq!(refused, invalid_code_body(&app).await);
}

#[tokio::test]
async fn login_before_activation_with_the_right_password_is_refused_with_403_email_not_verified() {
    let app = spawn_app().await;
    signed_up(&app, "sam@example.com").await;

    let resp = app.api.login("sam@example.com", PASSWORD).await;
    expect_error(resp, StatusCode::FORBIDDEN, "EMAIL_NOT_VERIFIED").await;
}

#[tokio::test]
async fn login_before_activation_with_a_wrong_password_is_refused_like_an_unknown_account() {
    let app = spawn_app().await;
    signed_up(&app, "sam@example.com").await;

    let resp = app
        .api
        .login("sam@example.com", "not the right passphrase")
        .await;
    let wrong = expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    let resp = app.api.login("nobody@example.com", PASSWORD).await;
    let unknown = expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    assert_eq!(wrong, unknown);
}
