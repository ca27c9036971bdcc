//! The second factor, end to end over HTTP: enrolling an authenticator,
//! logging in in two steps, recovery codes, step-up codes, turning it off
//! (owner, administrator, operator), and how replay and guessing are
//! stopped. Codes are computed here from the `otpauthUri` the server
//! returned, with `totp-rs`'s own URI parser, not with sesame's code.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame::config::Config;
use totp_rs::TOTP;

use crate::support::*;

/// An authenticator app: the secret from the enrolment, and the last time
/// step it gave a code for (sesame accepts each step once, in order).
struct Authenticator {
    totp: TOTP,
    last_step: i64,
}

/// Waits, if the current 30 s step ends within 8 s, until the next one
/// starts: a code computed now then reaches the server in the same step,
/// even on a loaded machine.
async fn steady_clock() -> u64 {
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970");
        let into_step = now.as_millis() % 30_000;
        if into_step <= 22_000 {
            return now.as_secs();
        }
        tokio::time::sleep(Duration::from_millis(30_050 - into_step as u64)).await;
    }
}

impl Authenticator {
    fn from_uri(uri: &str) -> Authenticator {
        Authenticator {
            totp: TOTP::from_url(uri).expect("an otpauth URI totp-rs reads"),
            last_step: 0,
        }
    }

    /// The code of the step `offset` steps from now (not recorded as used).
    async fn code_at(&self, offset: i64) -> String {
        let now = steady_clock().await as i64;
        self.totp.generate((now + offset * 30) as u64)
    }

    /// The code of the earliest step within one step of now that is later
    /// than every step used so far; waits for the clock if there is none.
    async fn next_code(&mut self) -> String {
        loop {
            let now = steady_clock().await as i64;
            let current = now / 30;
            if let Some(step) = (current - 1..=current + 1).find(|s| *s > self.last_step) {
                self.last_step = step;
                return self.totp.generate((step * 30) as u64);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// A user with TOTP on.
struct Enrolled {
    email: String,
    access: String,
    app: Authenticator,
    recovery_codes: Vec<String>,
    uri: String,
}

/// Signs up, logs in, enrols an authenticator and confirms it.
async fn enrolled_user(app: &TestApp, email: &str) -> Enrolled {
    let (access, _) = app.logged_in_user(email).await;
    let started = app
        .post_auth("/users/me/mfa/totp", json!({"password": PASSWORD}), &access)
        .await;
    let body = expect_json(started, StatusCode::CREATED).await;
    let uri = str_field(&body, "otpauthUri");
    let mut authenticator = Authenticator::from_uri(&uri);
    let code = authenticator.next_code().await;
    let confirmed = app
        .patch_auth("/users/me/mfa/totp", json!({"code": code}), &access)
        .await;
    let body = expect_json(confirmed, StatusCode::OK).await;
    let recovery_codes = body["recoveryCodes"]
        .as_array()
        .expect("recoveryCodes")
        .iter()
        .map(|c| c.as_str().expect("a string").to_owned())
        .collect();
    Enrolled {
        email: email.to_owned(),
        access,
        app: authenticator,
        recovery_codes,
        uri,
    }
}

/// The password step of a login with TOTP on: asserts `403 MFA_REQUIRED`
/// and returns the body (with `mfaToken`).
async fn password_step(app: &TestApp, email: &str) -> Value {
    let answer = app.api.login(email, PASSWORD).await;
    let body = answer.expect_error(StatusCode::FORBIDDEN, "MFA_REQUIRED");
    assert!(body.get("accessToken").is_none(), "{body}");
    body
}

async fn second_step(app: &TestApp, mfa_token: &str, code: &str) -> Answer {
    app.post(
        "/users/login/mfa",
        json!({"mfaToken": mfa_token, "code": code}),
    )
    .await
    .into_answer()
    .await
}

/// Both steps of a login; the token body.
async fn login_with(app: &TestApp, email: &str, code: &str) -> Value {
    let first = password_step(app, email).await;
    second_step(app, &str_field(&first, "mfaToken"), code)
        .await
        .expect(StatusCode::OK)
}

/// The claims of an access token.
fn claims(access: &str) -> Value {
    use base64::Engine;
    let payload = access.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn amr(access: &str) -> Value {
    claims(access)["amr"].clone()
}

/// Waits for a mail to `email` whose subject contains `subject`.
async fn wait_for_notice(app: &TestApp, email: &str, subject: &str) -> CapturedMail {
    eventually(&format!("a mail to {email} about {subject:?}"), || async {
        app.mail
            .mails_to(email)
            .into_iter()
            .find(|m| m.subject().contains(subject))
    })
    .await
}

fn notices_about(app: &TestApp, email: &str, subject: &str) -> usize {
    app.mail
        .mails_to(email)
        .iter()
        .filter(|m| m.subject().contains(subject))
        .count()
}

#[tokio::test]
async fn enrolling_then_logging_in_takes_the_password_and_then_a_code() {
    let app = spawn_app().await;
    let email = "two@example.com";
    let (access, _) = app.logged_in_user(email).await;
    let (other_session, _) = app.another_session(email).await;
    assert_eq!(amr(&access), json!(["pwd"]));
    assert_eq!(
        app.me(&access).await["mfa"],
        json!({"totp": false, "recoveryCodesLeft": 0, "passkeys": 0})
    );

    let started = app
        .post_auth("/users/me/mfa/totp", json!({"password": PASSWORD}), &access)
        .await;
    let body = expect_json(started, StatusCode::CREATED).await;
    let secret = str_field(&body, "secret");
    let uri = str_field(&body, "otpauthUri");
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    assert_eq!(
        uri,
        format!("otpauth://totp/sesame:two%40example.com?secret={secret}&issuer=sesame")
    );
    // Pending: logins still take the password alone.
    app.login(email).await;

    let mut authenticator = Authenticator::from_uri(&uri);
    let confirmed = app
        .patch_auth(
            "/users/me/mfa/totp",
            json!({"code": authenticator.next_code().await}),
            &access,
        )
        .await;
    let body = expect_json(confirmed, StatusCode::OK).await;
    let codes = body["recoveryCodes"].as_array().expect("recoveryCodes");
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    assert!(!body.to_string().contains(&secret));
    // This session stays, every other one ends; the owner is told.
    app.expect_token_refused(&other_session).await;
    let notice = wait_for_notice(&app, email, "Two-factor authentication is on").await;
    assert!(!notice.text_body().contains(&secret));
    let me = app.me(&access).await;
    assert_eq!(
        me["mfa"],
        json!({"totp": true, "recoveryCodesLeft": 10, "passkeys": 0})
    );
    assert!(!me.to_string().contains(&secret));

    let first = password_step(&app, email).await;
    assert_eq!(first["methods"], json!(["totp", "recovery"]));
    assert_eq!(first["error"], json!(true));
    let token = str_field(&first, "mfaToken");
    assert_eq!(token.len(), 43, "256 bits in base64url: {token}");
    let tokens = second_step(&app, &token, &authenticator.next_code().await)
        .await
        .expect(StatusCode::OK);
    let access = str_field(&tokens, "accessToken");
    assert_eq!(amr(&access), json!(["pwd", "otp", "mfa"]));
    assert_eq!(app.me(&access).await["email"], json!(email));
    // A refresh keeps how the session signed in.
    let refreshed = app
        .api
        .refresh(&str_field(&tokens, "refreshToken"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        amr(&str_field(&refreshed, "accessToken")),
        json!(["pwd", "otp", "mfa"])
    );
    // The token was spent.
    second_step(&app, &token, &authenticator.next_code().await)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
}

#[tokio::test]
async fn the_secret_is_never_shown_again_nor_stored_in_the_clear() {
    let app = spawn_app().await;
    let user = enrolled_user(&app, "secret@example.com").await;
    let secret = user
        .uri
        .split("secret=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .expect("a secret in the URI")
        .to_owned();
    // Asking again is refused, without a new secret.
    let again = app
        .post_auth(
            "/users/me/mfa/totp",
            json!({"password": PASSWORD}),
            &user.access,
        )
        .await;
    let body = expect_error(again, StatusCode::CONFLICT, "MFA_ALREADY_ENABLED").await;
    assert!(body.get("secret").is_none(), "{body}");
    let confirm_again = app
        .patch_auth(
            "/users/me/mfa/totp",
            json!({"code": "123456"}),
            &user.access,
        )
        .await;
    expect_error(confirm_again, StatusCode::CONFLICT, "MFA_ALREADY_ENABLED").await;
    // The stored secret is ciphertext: neither the raw bytes nor the base32 text.
    let raw = totp_rs::Secret::Encoded(secret.clone())
        .to_bytes()
        .expect("base32");
    let stored: Vec<u8> = app
        .db()
        .scalar("SELECT secret FROM totp_credentials", &[])
        .await;
    assert!(!stored.windows(raw.len()).any(|w| w == raw.as_slice()));
    assert!(!String::from_utf8_lossy(&stored).contains(&secret));
    // Recovery codes are stored hashed.
    let hashes: Vec<Vec<u8>> = app
        .db()
        .column("SELECT code_hash FROM recovery_codes", &[])
        .await;
    assert_eq!(hashes.len(), 10);
    for code in &user.recovery_codes {
        let plain = code.replace('-', "");
        assert!(
            hashes
                .iter()
                .all(|h| !String::from_utf8_lossy(h).contains(&plain))
        );
    }
}

#[tokio::test]
async fn enrolment_needs_the_password_and_a_code_of_the_pending_secret() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("enrol@example.com").await;
    let nothing_pending = app
        .patch_auth("/users/me/mfa/totp", json!({"code": "123456"}), &access)
        .await;
    expect_error(nothing_pending, StatusCode::CONFLICT, "MFA_NOT_PENDING").await;
    let wrong_password = app
        .post_auth(
            "/users/me/mfa/totp",
            json!({"password": "not the password"}),
            &access,
        )
        .await;
    expect_error(
        wrong_password,
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
    )
    .await;

    let first = app
        .post_auth("/users/me/mfa/totp", json!({"password": PASSWORD}), &access)
        .await;
    let first = Authenticator::from_uri(&str_field(
        &expect_json(first, StatusCode::CREATED).await,
        "otpauthUri",
    ));
    let second = app
        .post_auth("/users/me/mfa/totp", json!({"password": PASSWORD}), &access)
        .await;
    let mut second = Authenticator::from_uri(&str_field(
        &expect_json(second, StatusCode::CREATED).await,
        "otpauthUri",
    ));
    // Asking again replaced the pending secret: the first one's code is refused.
    let stale = app
        .patch_auth(
            "/users/me/mfa/totp",
            json!({"code": first.code_at(0).await}),
            &access,
        )
        .await;
    expect_error(stale, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    let malformed = app
        .patch_auth("/users/me/mfa/totp", json!({"code": "12345"}), &access)
        .await;
    expect_error(malformed, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    let confirmed = app
        .patch_auth(
            "/users/me/mfa/totp",
            json!({"code": second.next_code().await}),
            &access,
        )
        .await;
    expect_json(confirmed, StatusCode::OK).await;
}

#[tokio::test]
async fn codes_one_step_off_are_accepted_and_two_steps_off_refused() {
    let app = spawn_app_with(|c| c.login_max_failures = 50).await;
    let email = "skew@example.com";
    let (access, _) = app.logged_in_user(email).await;
    let started = app
        .post_auth("/users/me/mfa/totp", json!({"password": PASSWORD}), &access)
        .await;
    let uri = str_field(
        &expect_json(started, StatusCode::CREATED).await,
        "otpauthUri",
    );
    let authenticator = Authenticator::from_uri(&uri);
    // Two steps off either way: refused, at enrolment as at login.
    for offset in [-2, 2] {
        let far = app
            .patch_auth(
                "/users/me/mfa/totp",
                json!({"code": authenticator.code_at(offset).await}),
                &access,
            )
            .await;
        expect_error(far, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    }
    // One step behind (a slow clock on the phone): accepted.
    let confirmed = app
        .patch_auth(
            "/users/me/mfa/totp",
            json!({"code": authenticator.code_at(-1).await}),
            &access,
        )
        .await;
    expect_json(confirmed, StatusCode::OK).await;

    let first = password_step(&app, email).await;
    let token = str_field(&first, "mfaToken");
    for offset in [-2, 2, -3, 3] {
        second_step(&app, &token, &authenticator.code_at(offset).await)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    }
    // One step ahead (a fast clock): accepted.
    let tokens = second_step(&app, &token, &authenticator.code_at(1).await)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        amr(&str_field(&tokens, "accessToken")),
        json!(["pwd", "otp", "mfa"])
    );
}

#[tokio::test]
async fn a_code_is_accepted_once_and_an_older_one_after_it_not_at_all() {
    let app = spawn_app_with(|c| c.login_max_failures = 50).await;
    let mut user = enrolled_user(&app, "replay@example.com").await;
    let code = user.app.next_code().await;
    login_with(&app, &user.email, &code).await;
    // The same code again, within its window: a replay.
    let first = password_step(&app, &user.email).await;
    let token = str_field(&first, "mfaToken");
    second_step(&app, &token, &code)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    // The owner is told (ASVS 2.8.5).
    let notice = wait_for_notice(&app, &user.email, "A used code").await;
    assert!(notice.text_body().contains("refused"));
    // The code of the step before it (still within the skew) is refused too.
    let older = user.app.totp.generate((user.app.last_step as u64 - 1) * 30);
    second_step(&app, &token, &older)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    // A step-up cannot reuse it either.
    app.api
        .delete_me_with_code(&user.access, PASSWORD, &code)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    // The token is still good for a fresh code.
    second_step(&app, &token, &user.app.next_code().await)
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn five_wrong_codes_void_the_mfa_token() {
    let app = spawn_app_with(|c| c.login_max_failures = 50).await;
    let mut user = enrolled_user(&app, "five@example.com").await;
    let first = password_step(&app, &user.email).await;
    let token = str_field(&first, "mfaToken");
    let right = user.app.next_code().await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        second_step(&app, &token, wrong)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    }
    second_step(&app, &token, &right)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    // A new login gets a new token, and the unspent code still works.
    login_with(&app, &user.email, &right).await;
    // Wrong codes are not replays: no notice of one.
    app.drain_outbox("sentinel@example.com").await;
    assert_eq!(notices_about(&app, &user.email, "A used code"), 0);
}

#[tokio::test]
async fn wrong_codes_lock_the_account_for_the_network_like_wrong_passwords() {
    let app = spawn_app().await; // SESAME_LOGIN_MAX_FAILURES = 5
    let mut user = enrolled_user(&app, "locked@example.com").await;
    let right = user.app.next_code().await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    // Three wrong codes, then a new login: the right password does not
    // wipe their count (it is only half the proof).
    let first = password_step(&app, &user.email).await;
    let token = str_field(&first, "mfaToken");
    for _ in 0..3 {
        second_step(&app, &token, wrong)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    }
    let again = password_step(&app, &user.email).await;
    let token = str_field(&again, "mfaToken");
    second_step(&app, &token, wrong)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    // A wrong password: the fifth failure in a row from this network locks it.
    app.api
        .login(&user.email, "not the password")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
    let answer = second_step(&app, &token, &right).await;
    assert!(answer.header("retry-after").is_some());
    answer.expect_error(StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED");
    app.api
        .login(&user.email, PASSWORD)
        .await
        .expect_error(StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED");
    // The same with a step-up code, on a session from elsewhere: locked too.
    app.api
        .delete_me_with_code(&user.access, PASSWORD, &right)
        .await
        .expect_error(StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED");
    // An administrator's `locked: false` ends it; the unspent code works.
    let admin = app.admin_token("boss@example.com").await;
    let user_id = str_field(&app.me(&user.access).await, "userId");
    app.api
        .update_account(&admin, &user_id, &json!({"locked": false}))
        .await
        .expect(StatusCode::OK);
    login_with(&app, &user.email, &right).await;
}

#[tokio::test]
async fn wrong_codes_spend_the_daily_budget_of_the_address() {
    let app = spawn_app_with(|c| {
        c.login_max_failures = 50;
        c.login_max_failures_all = 100;
        c.code_max_failures_per_day = 3;
    })
    .await;
    let mut user = enrolled_user(&app, "budget@example.com").await;
    let right = user.app.next_code().await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    // Three wrong codes over two login attempts: the budget is per address.
    for attempts in [2, 1] {
        let first = password_step(&app, &user.email).await;
        let token = str_field(&first, "mfaToken");
        for _ in 0..attempts {
            second_step(&app, &token, wrong)
                .await
                .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
        }
    }
    let stored: i64 = app
        .db()
        .scalar(
            "SELECT failures FROM code_failures WHERE kind = 'second_factor'",
            &[],
        )
        .await;
    assert_eq!(stored, 3);
    // Spent: the right code and a recovery code are refused too.
    let first = password_step(&app, &user.email).await;
    let token = str_field(&first, "mfaToken");
    second_step(&app, &token, &right)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    second_step(&app, &token, &user.recovery_codes[0])
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    // Once the window is over, the same codes work.
    app.db()
        .execute(
            "UPDATE code_failures SET window_start = '2000-01-01T00:00:00.000000Z'",
            &[],
        )
        .await;
    second_step(&app, &token, &right)
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn a_recovery_code_logs_in_once_and_the_owner_is_told() {
    let app = spawn_app().await;
    let user = enrolled_user(&app, "recovery@example.com").await;
    let code = user.recovery_codes[3].clone();
    // Typed any which way: upper case, spaces for dashes.
    let typed = code.to_uppercase().replace('-', " ");
    let tokens = login_with(&app, &user.email, &typed).await;
    let access = str_field(&tokens, "accessToken");
    assert_eq!(amr(&access), json!(["pwd", "mfa"]));
    assert_eq!(app.me(&access).await["mfa"]["recoveryCodesLeft"], json!(9));
    wait_for_notice(&app, &user.email, "A recovery code was used").await;

    let first = password_step(&app, &user.email).await;
    second_step(&app, &str_field(&first, "mfaToken"), &code)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    // Another one still works.
    login_with(&app, &user.email, &user.recovery_codes[4]).await;
}

#[tokio::test]
async fn credential_changes_need_a_code_while_totp_is_on() {
    let app = spawn_app().await;
    let mut user = enrolled_user(&app, "stepup@example.com").await;
    let user_id = str_field(&app.me(&user.access).await, "userId");
    // A login's second step waiting, so there is a row to go with the account.
    password_step(&app, &user.email).await;
    let wrong = "000000";

    let no_code = app
        .delete_auth(
            "/users/me",
            Some(json!({"password": PASSWORD})),
            &user.access,
        )
        .await;
    expect_error(no_code, StatusCode::BAD_REQUEST, "MFA_CODE_REQUIRED").await;
    let no_code = app
        .api
        .change_password(&user.access, PASSWORD, "another good passphrase")
        .await;
    no_code.expect_error(StatusCode::BAD_REQUEST, "MFA_CODE_REQUIRED");
    let no_code = app
        .post_auth(
            "/users/me/email",
            json!({"password": PASSWORD, "newEmail": "moved@example.com"}),
            &user.access,
        )
        .await;
    expect_error(no_code, StatusCode::BAD_REQUEST, "MFA_CODE_REQUIRED").await;
    app.api
        .delete_me_with_code(&user.access, PASSWORD, wrong)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    // A right code and a wrong password: the password is refused.
    app.api
        .delete_me_with_code(&user.access, "not the password", &user.recovery_codes[0])
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");

    let changed = app
        .patch_auth(
            "/users/me/password",
            json!({
                "currentPassword": PASSWORD,
                "newPassword": "another good passphrase",
                "confirmPassword": "another good passphrase",
                "code": user.app.next_code().await,
            }),
            &user.access,
        )
        .await;
    expect_json(changed, StatusCode::OK).await;
    let moved = app
        .post_auth(
            "/users/me/email",
            json!({
                "password": "another good passphrase",
                "newEmail": "moved@example.com",
                "code": user.recovery_codes[1],
            }),
            &user.access,
        )
        .await;
    expect_json(moved, StatusCode::ACCEPTED).await;
    let deleted = app
        .delete_auth(
            "/users/me",
            Some(
                json!({"password": "another good passphrase", "code": user.app.next_code().await}),
            ),
            &user.access,
        )
        .await;
    expect_json(deleted, StatusCode::OK).await;
    app.expect_token_refused(&user.access).await;
    // The second factor goes with the account.
    for table in ["totp_credentials", "recovery_codes", "mfa_challenges"] {
        assert_eq!(
            app.db().count_rows(table, "user_id", &user_id).await,
            0,
            "{table} keeps rows of the deleted user"
        );
    }
}

#[tokio::test]
async fn new_recovery_codes_void_the_old_ones() {
    let app = spawn_app().await;
    let mut user = enrolled_user(&app, "regen@example.com").await;
    let wrong_password = app
        .post_auth(
            "/users/me/mfa/recovery-codes",
            json!({"password": "not the password", "code": user.app.code_at(0).await}),
            &user.access,
        )
        .await;
    expect_error(
        wrong_password,
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
    )
    .await;
    let made = app
        .post_auth(
            "/users/me/mfa/recovery-codes",
            json!({"password": PASSWORD, "code": user.app.next_code().await}),
            &user.access,
        )
        .await;
    let body = expect_json(made, StatusCode::OK).await;
    let fresh: Vec<String> = body["recoveryCodes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("a string").to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !user.recovery_codes.contains(c)));
    wait_for_notice(&app, &user.email, "New recovery codes").await;

    let first = password_step(&app, &user.email).await;
    let token = str_field(&first, "mfaToken");
    second_step(&app, &token, &user.recovery_codes[0])
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CODE");
    second_step(&app, &token, &fresh[0])
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn turning_totp_off_needs_the_password_and_a_code() {
    let app = spawn_app().await;
    let mut user = enrolled_user(&app, "off@example.com").await;
    let wrong_code = app
        .delete_auth(
            "/users/me/mfa/totp",
            Some(json!({"password": PASSWORD, "code": "000000"})),
            &user.access,
        )
        .await;
    expect_error(wrong_code, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    let off = app
        .delete_auth(
            "/users/me/mfa/totp",
            Some(json!({"password": PASSWORD, "code": user.app.next_code().await})),
            &user.access,
        )
        .await;
    expect_json(off, StatusCode::OK).await;
    wait_for_notice(&app, &user.email, "turned off").await;
    assert_eq!(
        app.me(&user.access).await["mfa"],
        json!({"totp": false, "recoveryCodesLeft": 0, "passkeys": 0})
    );
    let tokens = app.login(&user.email).await;
    assert_eq!(amr(&str_field(&tokens, "accessToken")), json!(["pwd"]));
    let again = app
        .delete_auth(
            "/users/me/mfa/totp",
            Some(json!({"password": PASSWORD, "code": user.recovery_codes[0]})),
            &user.access,
        )
        .await;
    expect_error(again, StatusCode::CONFLICT, "MFA_NOT_ENABLED").await;
    // It can be turned on again, with a new secret.
    enrol_again(&app, &user).await;
}

/// Enrols the signed-in user of `user` once more; the new URI differs.
async fn enrol_again(app: &TestApp, user: &Enrolled) {
    let started = app
        .post_auth(
            "/users/me/mfa/totp",
            json!({"password": PASSWORD}),
            &user.access,
        )
        .await;
    let body = expect_json(started, StatusCode::CREATED).await;
    assert_ne!(str_field(&body, "otpauthUri"), user.uri);
}

#[tokio::test]
async fn an_administrator_turns_a_lost_second_factor_off() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    let user = enrolled_user(&app, "lost@example.com").await;
    let user_id = str_field(&app.me(&user.access).await, "userId");

    let refused = app
        .api
        .update_account(&admin, &user_id, &json!({"mfa": true}))
        .await;
    refused.expect_error(StatusCode::BAD_REQUEST, "VALIDATION_FAILED");
    let changed = app
        .api
        .update_account(&admin, &user_id, &json!({"mfa": false}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(changed["user"]["mfa"]["totp"], json!(false));
    wait_for_notice(&app, &user.email, "An administrator turned off").await;
    app.login(&user.email).await;
    // Nothing left to turn off: the same answer, no second notice.
    app.api
        .update_account(&admin, &user_id, &json!({"mfa": false}))
        .await
        .expect(StatusCode::OK);
    app.drain_outbox("sentinel@example.com").await;
    assert_eq!(
        notices_about(&app, &user.email, "An administrator turned off"),
        1
    );
}

#[tokio::test]
async fn the_operator_turns_a_lost_second_factor_off_from_the_command_line() {
    let app = spawn_app().await;
    let user = enrolled_user(&app, "cli@example.com").await;
    let mut cmd = process::sesame(app.dir.path());
    cmd.args(["admin", "reset-mfa", "--email", "CLI@example.com"]);
    let run = process::run(cmd).await;
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stdout.contains("turned off"), "{}", run.stdout);
    // The command queued its notice in the database; the server's mailer
    // finds mail queued by another process at its next idle poll (30 s, as
    // long as the test's patience). A forgot-password email wakes it now,
    // and it delivers everything pending.
    app.api
        .forgot_password(&user.email)
        .await
        .expect(StatusCode::OK);
    wait_for_notice(&app, &user.email, "An administrator turned off").await;
    app.login(&user.email).await;

    let mut cmd = process::sesame(app.dir.path());
    cmd.args(["admin", "reset-mfa", "--email", "cli@example.com"]);
    let run = process::run(cmd).await;
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stdout.contains("nothing changed"), "{}", run.stdout);
    let mut cmd = process::sesame(app.dir.path());
    cmd.args(["admin", "reset-mfa", "--email", "nobody@example.com"]);
    let run = process::run(cmd).await;
    assert!(!run.status.success());
    assert!(run.stderr.contains("no account"), "{}", run.stderr);
}

#[tokio::test]
async fn a_password_reset_leaves_the_second_factor_on() {
    let app = spawn_app().await;
    let user = enrolled_user(&app, "reset@example.com").await;
    app.api
        .forgot_password(&user.email)
        .await
        .expect(StatusCode::OK);
    let token = eventually("the reset email", || async {
        app.mail
            .mails_to(&user.email)
            .into_iter()
            .find(|m| find_query_param(&m.text_body(), "token").is_some())
            .map(|m| m.link_param("token"))
    })
    .await;
    app.api
        .reset_password(&token, "a brand new passphrase")
        .await
        .expect(StatusCode::OK);
    let answer = app.api.login(&user.email, "a brand new passphrase").await;
    answer.expect_error(StatusCode::FORBIDDEN, "MFA_REQUIRED");
}

#[tokio::test]
async fn an_mfa_token_expires_and_a_made_up_one_is_refused() {
    let app = spawn_app_with(|c| c.housekeeping_interval = Duration::from_millis(100)).await;
    let mut user = enrolled_user(&app, "expiry@example.com").await;
    let first = password_step(&app, &user.email).await;
    let token = str_field(&first, "mfaToken");
    // The token's five minutes are over (its row is aged; the server reads the clock).
    app.db()
        .execute(
            "UPDATE mfa_challenges SET expires_at = '2000-01-01T00:00:00.000000Z'",
            &[],
        )
        .await;
    let code = user.app.next_code().await;
    second_step(&app, &token, &code)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    // Housekeeping forgets it.
    app.db()
        .wait_for_count("SELECT COUNT(*) FROM mfa_challenges", &[], 0)
        .await;
    second_step(&app, &"A".repeat(43), &code)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    second_step(&app, "short", &code)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    // The unspent code still opens a fresh login.
    login_with(&app, &user.email, &code).await;
    // A fresh token is valid about five minutes.
    password_step(&app, &user.email).await;
    let expires: String = app
        .db()
        .scalar(
            "SELECT expires_at FROM mfa_challenges ORDER BY created_at DESC LIMIT 1",
            &[],
        )
        .await;
    let expires = chrono::DateTime::parse_from_rfc3339(&expires).expect("a timestamp");
    let left = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        left > chrono::Duration::seconds(240) && left <= chrono::Duration::seconds(300),
        "{left}"
    );
}

#[tokio::test]
async fn the_issuer_is_the_configured_name() {
    let app = spawn_app_with(|c: &mut Config| c.totp_issuer = "Acme Login".into()).await;
    let (access, _) = app.logged_in_user("issuer@example.com").await;
    let started = app
        .post_auth("/users/me/mfa/totp", json!({"password": PASSWORD}), &access)
        .await;
    let uri = str_field(
        &expect_json(started, StatusCode::CREATED).await,
        "otpauthUri",
    );
    assert!(
        uri.starts_with("otpauth://totp/Acme%20Login:issuer%40example.com?"),
        "{uri}"
    );
    assert!(uri.ends_with("&issuer=Acme%20Login"), "{uri}");
    let parsed = TOTP::from_url(&uri).expect("totp-rs reads it");
    assert_eq!(parsed.issuer.as_deref(), Some("Acme Login"));
    assert_eq!(parsed.account_name, "issuer@example.com");
    assert_eq!((parsed.digits, parsed.step), (6, 30));
}
