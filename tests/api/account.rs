//! What signed-in users change about their own account: the profile, the
//! password, the email address, and deleting it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const NEW_PASSWORD: &str = "a brand new passphrase";

/// Asks to move the account to `new_email`; returns the code from the
/// `nth` email to that address.
async fn email_change_code(app: &TestApp, token: &str, new_email: &str, nth: usize) -> String {
    let resp = app
        .api
        .request_email_change(token, new_email, PASSWORD)
        .await;
    let body = expect_json(resp, StatusCode::ACCEPTED).await;
    assert_eq!(body["success"], json!(true), "{body}");
    app.code_from_mail(new_email, nth).await
}

/// A 6-digit code that is surely not `code`.
fn other_code(code: &str) -> String {
    if code == "000000" { "000001" } else { "000000" }.to_owned()
}

// ---------------------------------------------------------------- profile

#[tokio::test]
async fn updating_the_name_strips_html_and_shows_in_the_profile() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    let before = app.me(&access).await;

    let resp = app
        .api
        .update_me(
            &access,
            &json!({"name": "  <b>Sam</b> <script>x()</script>Doe "}),
        )
        .await;

    let body = expect_json(resp, StatusCode::OK).await;
    assert_eq!(body["success"], json!(true), "{body}");
    assert_eq!(body["user"]["name"], json!("Sam Doe"), "{body}");
    let after = app.me(&access).await;
    assert_eq!(after["name"], json!("Sam Doe"), "{after}");
    assert!(str_field(&after, "updatedAt") >= str_field(&before, "updatedAt"));
}

#[tokio::test]
async fn a_field_left_out_stays_and_null_removes_the_name() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    expect_json(
        app.api.update_me(&access, &json!({"name": "Sam"})).await,
        StatusCode::OK,
    )
    .await;

    let kept = expect_json(app.api.update_me(&access, &json!({})).await, StatusCode::OK).await;
    assert_eq!(kept["user"]["name"], json!("Sam"), "{kept}");

    let cleared = expect_json(
        app.api.update_me(&access, &json!({"name": null})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cleared["user"]["name"], Value::Null, "{cleared}");
    assert_eq!(app.me(&access).await["name"], Value::Null);
}

#[tokio::test]
async fn a_name_over_100_characters_or_not_a_string_is_refused() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;

    let long = app
        .api
        .update_me(&access, &json!({"name": "x".repeat(101)}))
        .await;
    let body = expect_error(long, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    assert!(body["fields"]["name"].is_string(), "{body}");
    let number = app.api.update_me(&access, &json!({"name": 42})).await;
    expect_error(number, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;

    // Markup does not count towards the limit: 100 characters once stripped is fine.
    let exact = format!("<i>{}</i>", "y".repeat(100));
    let ok = expect_json(
        app.api.update_me(&access, &json!({"name": exact})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ok["user"]["name"], json!("y".repeat(100)), "{ok}");
}

#[tokio::test]
async fn updating_the_profile_needs_a_live_session() {
    let app = spawn_app().await;

    let resp = app.patch("/users/me", json!({"name": "Sam"})).await;

    expect_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
}

// ---------------------------------------------------------------- password

#[tokio::test]
async fn a_password_change_keeps_this_session_ends_the_others_and_tells_the_account() {
    let app = spawn_app().await;
    let (current, current_refresh) = app.logged_in_user("sam@example.com").await;
    let (other, other_refresh) = app.another_session("sam@example.com").await;

    let resp = app
        .api
        .change_password(&current, PASSWORD, NEW_PASSWORD)
        .await;

    let body = expect_json(resp, StatusCode::OK).await;
    assert_eq!(body["success"], json!(true), "{body}");
    app.expect_token_refused(&other).await;
    app.expect_refresh_refused(&other_refresh).await;
    app.me(&current).await;
    expect_json(app.api.refresh(&current_refresh).await, StatusCode::OK).await;
    let old = app.api.login("sam@example.com", PASSWORD).await;
    expect_error(old, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    expect_json(
        app.api.login("sam@example.com", NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    let notice = app.mail.wait_for_mail_to("sam@example.com", 2, WAIT).await;
    assert_eq!(notice.subject(), "Your password was changed");
    assert!(
        !notice.text_body().contains(NEW_PASSWORD),
        "the email must not carry the password"
    );
}

#[tokio::test]
async fn a_wrong_current_password_changes_nothing() {
    let app = spawn_app().await;
    let (current, _) = app.logged_in_user("sam@example.com").await;
    let (other, _) = app.another_session("sam@example.com").await;

    let resp = app
        .api
        .change_password(&current, "not my password", NEW_PASSWORD)
        .await;

    expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    app.me(&other).await;
    expect_json(
        app.api.login("sam@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    // Emails are queued in the request's transaction: only the verification email exists.
    assert_eq!(
        app.db()
            .count_rows("outbox", "recipient", "sam@example.com")
            .await,
        1
    );
}

#[tokio::test]
async fn a_new_password_breaking_the_policy_or_its_confirmation_is_refused() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;

    let weak = app.api.change_password(&access, PASSWORD, "password").await;
    let body = expect_error(weak, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    assert!(body["fields"]["newPassword"].is_string(), "{body}");
    let differ = app
        .patch_auth(
            "/users/me/password",
            json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD, "confirmPassword": "something else"}),
            &access,
        )
        .await;
    let body = expect_error(differ, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    assert!(body["fields"]["confirmPassword"].is_string(), "{body}");
    let missing = app
        .patch_auth(
            "/users/me/password",
            json!({"newPassword": NEW_PASSWORD}),
            &access,
        )
        .await;
    expect_error(missing, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;

    expect_json(
        app.api.login("sam@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

// ---------------------------------------------------------------- email

#[tokio::test]
async fn an_email_change_sends_a_code_to_the_new_address_and_moves_the_account_with_it() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;

    let code = email_change_code(&app, &access, "New@Example.com", 1).await;

    let notice = app.mail.wait_for_mail_to("sam@example.com", 2, WAIT).await;
    assert!(
        notice.text_body().contains("new@example.com"),
        "{}",
        notice.text_body()
    );
    assert!(
        !notice.text_body().contains(&code),
        "the old address must not get the code"
    );
    assert_eq!(
        app.me(&access).await["email"],
        json!("sam@example.com"),
        "nothing moves before the code"
    );
    let body = expect_json(
        app.api.confirm_email_change(&access, &code).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["user"]["email"], json!("new@example.com"), "{body}");
    assert_eq!(app.me(&access).await["email"], json!("new@example.com"));
    expect_json(
        app.api.login("new@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    let old = app.api.login("sam@example.com", PASSWORD).await;
    expect_error(old, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    // The code is spent.
    let again = app.api.confirm_email_change(&access, &code).await;
    expect_error(again, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
}

#[tokio::test]
async fn an_email_change_needs_the_password() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;

    let resp = app
        .api
        .request_email_change(&access, "new@example.com", "not my password")
        .await;

    expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    let none = app.api.confirm_email_change(&access, "123456").await;
    expect_error(none, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
}

#[tokio::test]
async fn an_email_change_to_a_taken_own_or_malformed_address_is_refused() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    app.activated_user("kim@example.com").await;

    let taken = app
        .api
        .request_email_change(&access, "KIM@example.com", PASSWORD)
        .await;
    expect_error(taken, StatusCode::CONFLICT, "EMAIL_IN_USE").await;
    let own = app
        .api
        .request_email_change(&access, "Sam@Example.com", PASSWORD)
        .await;
    let body = expect_error(own, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    assert!(body["fields"]["newEmail"].is_string(), "{body}");
    let malformed = app
        .api
        .request_email_change(&access, "not an address", PASSWORD)
        .await;
    let body = expect_error(malformed, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    assert!(body["fields"]["newEmail"].is_string(), "{body}");
}

#[tokio::test]
async fn when_existing_accounts_are_concealed_a_taken_address_gets_the_usual_answer_and_no_email() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    app.activated_user("kim@example.com").await;
    let app = app
        .restart_with(|config| config.signup_conceals_existing = true)
        .await;

    let taken = app
        .api
        .request_email_change(&access, "kim@example.com", PASSWORD)
        .await;
    let free = app
        .api
        .request_email_change(&access, "new@example.com", PASSWORD)
        .await;

    let taken = expect_json(taken, StatusCode::ACCEPTED).await;
    assert_eq!(taken, expect_json(free, StatusCode::ACCEPTED).await);
    // Emails are queued in the request's transaction: none went out for the taken address.
    assert_eq!(
        app.db()
            .count_rows("outbox", "recipient", "kim@example.com")
            .await,
        1
    );
    assert_eq!(
        app.db()
            .count_rows("outbox", "recipient", "new@example.com")
            .await,
        1
    );
    assert_eq!(
        app.db()
            .count_rows("outbox", "recipient", "sam@example.com")
            .await,
        2
    );
}

#[tokio::test]
async fn a_second_code_to_the_same_address_within_the_email_interval_is_not_sent() {
    let app = spawn_app_with(|config| config.email_min_interval = Duration::from_secs(60)).await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    let code = email_change_code(&app, &access, "new@example.com", 1).await;

    let again = app
        .api
        .request_email_change(&access, "new@example.com", PASSWORD)
        .await;

    let again = expect_json(again, StatusCode::ACCEPTED).await;
    assert_eq!(again["success"], json!(true), "{again}");
    // Emails are queued in the request's transaction: the second queued none.
    assert_eq!(
        app.db()
            .count_rows("outbox", "recipient", "new@example.com")
            .await,
        1
    );
    // The code already sent stays valid.
    let body = expect_json(
        app.api.confirm_email_change(&access, &code).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["user"]["email"], json!("new@example.com"), "{body}");
}

#[tokio::test]
async fn five_wrong_codes_void_the_email_change_code() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    let code = email_change_code(&app, &access, "new@example.com", 1).await;

    for _ in 0..5 {
        let wrong = app
            .api
            .confirm_email_change(&access, &other_code(&code))
            .await;
        expect_error(wrong, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    }

    let right = app.api.confirm_email_change(&access, &code).await;
    expect_error(right, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    assert_eq!(app.me(&access).await["email"], json!("sam@example.com"));
}

#[tokio::test]
async fn a_newer_email_change_request_voids_the_older_code() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    let first = email_change_code(&app, &access, "first@example.com", 1).await;
    let second = email_change_code(&app, &access, "second@example.com", 1).await;

    let old = app.api.confirm_email_change(&access, &first).await;
    expect_error(old, StatusCode::BAD_REQUEST, "INVALID_CODE").await;

    let body = expect_json(
        app.api.confirm_email_change(&access, &second).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["user"]["email"], json!("second@example.com"), "{body}");
}

#[tokio::test]
async fn an_expired_email_change_code_is_refused() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    // Codes die the moment they are made from now on (the session survives the restart).
    let app = app
        .restart_with(|config| config.code_ttl = Duration::ZERO)
        .await;
    let code = email_change_code(&app, &access, "new@example.com", 1).await;

    let resp = app.api.confirm_email_change(&access, &code).await;

    expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    assert_eq!(app.me(&access).await["email"], json!("sam@example.com"));
}

#[tokio::test]
async fn an_address_taken_after_the_request_is_refused_at_confirmation() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    let code = email_change_code(&app, &access, "new@example.com", 1).await;
    expect_json(app.signup("new@example.com").await, StatusCode::CREATED).await;

    let resp = app.api.confirm_email_change(&access, &code).await;

    expect_error(resp, StatusCode::CONFLICT, "EMAIL_IN_USE").await;
    assert_eq!(app.me(&access).await["email"], json!("sam@example.com"));
}

#[tokio::test]
async fn two_accounts_confirming_the_same_new_address_at_once_exactly_one_wins() {
    // Both codes go to one address: the test configuration does not throttle that.
    let app = spawn_app().await;
    assert!(app.config.email_min_interval.is_zero());
    let (sam, _) = app.logged_in_user("sam@example.com").await;
    let (kim, _) = app.logged_in_user("kim@example.com").await;
    let sam_code = email_change_code(&app, &sam, "shared@example.com", 1).await;
    let kim_code = email_change_code(&app, &kim, "shared@example.com", 2).await;

    let (sam_resp, kim_resp) = tokio::join!(
        app.api.confirm_email_change(&sam, &sam_code),
        app.api.confirm_email_change(&kim, &kim_code),
    );

    let mut statuses = [sam_resp.status(), kim_resp.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let (winner, loser, loser_email, loser_resp) = if sam_resp.status() == StatusCode::OK {
        (&sam, &kim, "kim@example.com", kim_resp)
    } else {
        (&kim, &sam, "sam@example.com", sam_resp)
    };
    expect_error(loser_resp, StatusCode::CONFLICT, "EMAIL_IN_USE").await;
    assert_eq!(app.me(winner).await["email"], json!("shared@example.com"));
    assert_eq!(app.me(loser).await["email"], json!(loser_email));
}

// ---------------------------------------------------------------- deletion

#[tokio::test]
async fn deleting_the_account_removes_it_with_its_sessions_and_frees_the_address() {
    let app = spawn_app().await;
    let sam = app.activated_user("sam@example.com").await;
    let (access, _) = app.another_session("sam@example.com").await;
    let (other, other_refresh) = app.another_session("sam@example.com").await;
    app.signup_referred("kim@example.com", &str_field(&sam, "referralCode"))
        .await;
    let kim_code = app.code_from_mail("kim@example.com", 1).await;
    let activated = app
        .patch(
            "/users/activate",
            json!({"email": "kim@example.com", "code": kim_code}),
        )
        .await;
    expect_json(activated, StatusCode::OK).await;
    let user_id = str_field(&sam, "userId");

    let body = expect_json(app.api.delete_me(&access, PASSWORD).await, StatusCode::OK).await;

    assert_eq!(body["success"], json!(true), "{body}");
    app.expect_token_refused(&access).await;
    app.expect_token_refused(&other).await;
    app.expect_refresh_refused(&other_refresh).await;
    let login = app.api.login("sam@example.com", PASSWORD).await;
    expect_error(login, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    for (table, column, value) in [
        ("users", "id", user_id.as_str()),
        ("sessions", "user_id", user_id.as_str()),
        ("one_time_codes", "user_id", user_id.as_str()),
        ("outbox", "recipient", "sam@example.com"),
    ] {
        assert_eq!(
            app.db().count_rows(table, column, value).await,
            0,
            "{table} keeps rows of the deleted user"
        );
    }
    // The referred account stays, without its referrer.
    let (kim, _) = app.another_session("kim@example.com").await;
    assert_eq!(app.me(&kim).await["referredBy"], Value::Null);
    // The address can sign up again.
    expect_json(app.signup("sam@example.com").await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn deleting_the_account_needs_the_right_password() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;

    let wrong = app.api.delete_me(&access, "not my password").await;
    expect_error(wrong, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    let missing = app.delete_auth("/users/me", None, &access).await;
    expect_error(missing, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;

    app.me(&access).await;
    expect_json(
        app.api.login("sam@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn wrong_passwords_here_count_towards_the_login_lockout() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;

    for _ in 0..app.config.login_max_failures {
        let wrong = app.api.delete_me(&access, "not my password").await;
        expect_error(wrong, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    }

    let right = app.api.delete_me(&access, PASSWORD).await;
    assert!(right.headers().contains_key("retry-after"), "{right:?}");
    expect_error(right, StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED").await;
    let change = app
        .api
        .change_password(&access, PASSWORD, NEW_PASSWORD)
        .await;
    expect_error(change, StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED").await;
    let login = app.api.login("sam@example.com", PASSWORD).await;
    expect_error(login, StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED").await;
    // Locked, not deleted: the session still works.
    app.me(&access).await;
}
