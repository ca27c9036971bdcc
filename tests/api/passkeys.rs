//! Passkeys end to end over HTTP, with a software authenticator in the
//! test standing in for the browser: registering one after the password,
//! listing and removing them, logging in with one alone (with or without
//! an address), and every check that makes them phishing-resistant:
//! origin, RP ID, user verification, single-use expiring challenges, the
//! signature counter.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::authenticator::{SoftAuthenticator, b64};
use crate::support::*;

/// Starts adding a passkey; the `200` body.
async fn register_start(app: &TestApp, access: &str) -> Value {
    let answer = app
        .post_auth(
            "/users/me/passkeys/register/start",
            json!({"password": PASSWORD}),
            access,
        )
        .await;
    expect_json(answer, StatusCode::OK).await
}

/// Sends a made credential to finish a registration.
async fn register_finish(
    app: &TestApp,
    access: &str,
    started: &Value,
    credential: Value,
) -> Answer {
    let body = json!({
        "challengeId": started["challengeId"],
        "credential": credential,
        "name": "Laptop",
    });
    app.post_auth("/users/me/passkeys/register/finish", body, access)
        .await
        .into_answer()
        .await
}

/// Adds a passkey made by `authenticator`; the new passkey.
async fn register(app: &TestApp, access: &str, authenticator: &mut SoftAuthenticator) -> Value {
    let started = register_start(app, access).await;
    let credential = authenticator.create(&started["publicKey"]);
    let body = register_finish(app, access, &started, credential)
        .await
        .expect(StatusCode::CREATED);
    body["passkey"].clone()
}

/// Starts a passkey login (with an address or without); the `200` body.
async fn login_start(app: &TestApp, email: Option<&str>) -> Value {
    let body = match email {
        Some(email) => json!({"email": email}),
        None => json!({}),
    };
    expect_json(
        app.post("/users/login/passkey/start", body).await,
        StatusCode::OK,
    )
    .await
}

/// Finishes a passkey login.
async fn login_finish(app: &TestApp, started: &Value, credential: Value) -> Answer {
    let body = json!({"challengeId": started["challengeId"], "credential": credential});
    app.post("/users/login/passkey/finish", body)
        .await
        .into_answer()
        .await
}

/// A signed-in user with one passkey: (access token, authenticator).
async fn user_with_passkey(app: &TestApp, email: &str) -> (String, SoftAuthenticator) {
    let (access, _) = app.logged_in_user(email).await;
    let mut authenticator = SoftAuthenticator::new();
    register(app, &access, &mut authenticator).await;
    (access, authenticator)
}

async fn list(app: &TestApp, access: &str) -> Vec<Value> {
    let body = expect_json(
        app.get_auth("/users/me/passkeys", access).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["success"], json!(true), "{body}");
    body["passkeys"].as_array().expect("an array").clone()
}

/// The claims of an access token.
fn claims(access: &str) -> Value {
    use base64::Engine;
    let payload = access.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_passkey_added_after_the_password_logs_in_alone() {
    let app = spawn_app().await;
    let email = "pia@example.com";
    let (access, _) = app.logged_in_user(email).await;
    let mut authenticator = SoftAuthenticator::new();

    let started = register_start(&app, &access).await;
    assert_eq!(started["success"], json!(true), "{started}");
    let options = &started["publicKey"];
    assert_eq!(options["rp"]["id"], json!("localhost"), "{options}");
    assert_eq!(options["rp"]["name"], json!("sesame"), "{options}");
    let selection = &options["authenticatorSelection"];
    assert_eq!(selection["residentKey"], json!("required"), "{options}");
    assert_eq!(
        selection["userVerification"],
        json!("required"),
        "{options}"
    );
    assert_eq!(options["user"]["name"], json!(email), "{options}");
    let credential = authenticator.create(options);
    let created = register_finish(&app, &access, &started, credential)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(created["success"], json!(true), "{created}");
    let passkey = &created["passkey"];
    assert_eq!(passkey["name"], json!("Laptop"), "{created}");
    assert_eq!(passkey["lastUsedAt"], Value::Null, "{created}");
    let notice = app.mail.wait_for_mail_to(email, 2, WAIT).await;
    assert_eq!(notice.subject(), "A passkey was added to your account");

    let listed = list(&app, &access).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["passkeyId"], passkey["passkeyId"]);

    // Logged out, with no address: the authenticator names the account.
    let started = login_start(&app, None).await;
    assert_eq!(started["publicKey"]["allowCredentials"], json!([]));
    assert_eq!(started["publicKey"]["userVerification"], json!("required"));
    let assertion = authenticator.get(&started["publicKey"]);
    let tokens = login_finish(&app, &started, assertion)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        keys(&tokens),
        [
            "accessToken",
            "expiresIn",
            "message",
            "refreshToken",
            "success",
            "tokenType"
        ],
        "the body of a password login"
    );
    let passkey_access = str_field(&tokens, "accessToken");
    assert_eq!(app.me(&passkey_access).await["email"], json!(email));
    assert_eq!(claims(&passkey_access)["amr"], json!(["hwk", "mfa"]));
    assert_eq!(claims(&access)["amr"], json!(["pwd"]));
    // A refreshed token says the same of its session.
    let refreshed = app
        .api
        .refresh(&str_field(&tokens, "refreshToken"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        claims(&str_field(&refreshed, "accessToken"))["amr"],
        json!(["hwk", "mfa"])
    );
    let listed = list(&app, &access).await;
    assert!(listed[0]["lastUsedAt"].is_string(), "{listed:?}");
}

#[tokio::test]
async fn a_login_with_an_address_offers_that_accounts_passkeys() {
    let app = spawn_app().await;
    let (_, mut authenticator) = user_with_passkey(&app, "eli@example.com").await;
    let started = login_start(&app, Some("ELI@example.com")).await;
    let offered = &started["publicKey"]["allowCredentials"];
    assert_eq!(
        offered,
        &json!([{"type": "public-key", "id": b64(&authenticator.credentials[0].id)}])
    );
    let assertion = authenticator.get(&started["publicKey"]);
    let tokens = login_finish(&app, &started, assertion)
        .await
        .expect(StatusCode::OK);
    assert!(tokens["accessToken"].is_string());

    // Another account's passkey cannot answer a login for this address.
    let (_, mut other) = user_with_passkey(&app, "other@example.com").await;
    let started = login_start(&app, Some("eli@example.com")).await;
    let assertion = other.get_unoffered(&started["publicKey"]);
    login_finish(&app, &started, assertion)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn an_address_without_passkeys_gets_an_answer_of_the_same_shape() {
    let app = spawn_app().await;
    let (_, mut authenticator) = user_with_passkey(&app, "has@example.com").await;
    app.activated_user("none@example.com").await;

    let real = login_start(&app, Some("has@example.com")).await;
    let without = login_start(&app, Some("none@example.com")).await;
    let unknown = login_start(&app, Some("nobody@example.com")).await;
    for answer in [&without, &unknown] {
        assert_eq!(keys(answer), keys(&real), "{answer}");
        assert_eq!(
            keys(&answer["publicKey"]),
            keys(&real["publicKey"]),
            "{answer}"
        );
        for offered in answer["publicKey"]["allowCredentials"].as_array().unwrap() {
            assert_eq!(keys(offered), ["id", "type"], "{answer}");
        }
        assert_eq!(answer["message"], real["message"]);
    }
    // The same decoys each time, as an account's passkeys would be.
    let again = login_start(&app, Some("nobody@example.com")).await;
    assert_eq!(
        again["publicKey"]["allowCredentials"],
        unknown["publicKey"]["allowCredentials"]
    );
    assert_ne!(again["challengeId"], unknown["challengeId"]);
    // Nothing finishes a decoy, not even a real passkey.
    let assertion = authenticator.get_unoffered(&unknown["publicKey"]);
    login_finish(&app, &unknown, assertion)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn a_credential_made_on_another_origin_or_for_another_rp_id_is_refused() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("ori@example.com").await;

    // A phishing page at another origin relaying sesame's options.
    let mut phished = SoftAuthenticator::at("https://sesame.example.net");
    let started = register_start(&app, &access).await;
    let credential = phished.create(&started["publicKey"]);
    register_finish(&app, &access, &started, credential)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CREDENTIAL");
    // A credential bound to the phishing site's own RP ID.
    let mut other_rp = SoftAuthenticator::new();
    other_rp.rp_id_override = Some("sesame.example.net".into());
    let started = register_start(&app, &access).await;
    let credential = other_rp.create(&started["publicKey"]);
    register_finish(&app, &access, &started, credential)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CREDENTIAL");
    assert!(list(&app, &access).await.is_empty());

    // A real passkey, used through a phishing page, does not log in.
    let mut authenticator = SoftAuthenticator::new();
    register(&app, &access, &mut authenticator).await;
    authenticator.origin = "https://sesame.example.net".into();
    let started = login_start(&app, None).await;
    let assertion = authenticator.get(&started["publicKey"]);
    login_finish(&app, &started, assertion)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
    authenticator.origin = "http://localhost:5000".into();
    authenticator.rp_id_override = Some("example.net".into());
    authenticator.credentials[0].rp_id = "example.net".into();
    let started = login_start(&app, None).await;
    let assertion = authenticator.get(&started["publicKey"]);
    login_finish(&app, &started, assertion)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn an_authenticator_that_does_not_verify_the_user_is_refused() {
    let app = spawn_app().await;
    let (access, mut authenticator) = user_with_passkey(&app, "uv@example.com").await;
    authenticator.verifies_user = false;
    let started = login_start(&app, None).await;
    let assertion = authenticator.get(&started["publicKey"]);
    login_finish(&app, &started, assertion)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");

    let mut presence_only = SoftAuthenticator::new();
    presence_only.verifies_user = false;
    let started = register_start(&app, &access).await;
    let credential = presence_only.create(&started["publicKey"]);
    register_finish(&app, &access, &started, credential)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CREDENTIAL");
}

#[tokio::test]
async fn a_challenge_is_spent_by_its_first_finish() {
    let app = spawn_app().await;
    let (access, mut authenticator) = user_with_passkey(&app, "once@example.com").await;
    let started = login_start(&app, None).await;
    let assertion = authenticator.get(&started["publicKey"]);
    login_finish(&app, &started, assertion.clone())
        .await
        .expect(StatusCode::OK);
    // The same signed answer, replayed.
    login_finish(&app, &started, assertion)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
    // A failed finish spends the challenge too.
    let started = login_start(&app, None).await;
    login_finish(&app, &started, json!({"id": "x"}))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
    let assertion = authenticator.get(&started["publicKey"]);
    login_finish(&app, &started, assertion)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");

    // A registration challenge: once, and only by the account that started it.
    let mut second = SoftAuthenticator::new();
    let started = register_start(&app, &access).await;
    let credential = second.create(&started["publicKey"]);
    let (intruder, _) = app.logged_in_user("intruder@example.com").await;
    register_finish(&app, &intruder, &started, credential.clone())
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CREDENTIAL");
    register_finish(&app, &access, &started, credential)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CREDENTIAL");
    // A login challenge is no registration challenge.
    let login = login_start(&app, None).await;
    let started = register_start(&app, &access).await;
    let mut options = started["publicKey"].clone();
    options["challenge"] = login["publicKey"]["challenge"].clone();
    let credential = second.create(&options);
    register_finish(&app, &access, &login, credential)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "INVALID_CREDENTIAL");
    assert_eq!(list(&app, &access).await.len(), 1);
}

#[tokio::test]
async fn an_expired_challenge_is_refused() {
    let app = spawn_app().await;
    let (_, mut authenticator) = user_with_passkey(&app, "late@example.com").await;
    let started = login_start(&app, None).await;
    let challenge_id = str_field(&started, "challengeId");
    let expired = app
        .db()
        .execute(
            "UPDATE passkey_challenges SET expires_at = '2000-01-01T00:00:00.000000Z' \
             WHERE id = ?",
            &[&challenge_id],
        )
        .await;
    assert_eq!(expired, 1, "the challenge is kept in the database");
    let assertion = authenticator.get(&started["publicKey"]);
    login_finish(&app, &started, assertion)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
    // Five minutes is what a fresh one gets.
    let started = login_start(&app, None).await;
    let expires: String = app
        .db()
        .scalar(
            "SELECT expires_at FROM passkey_challenges WHERE id = ?",
            &[&str_field(&started, "challengeId")],
        )
        .await;
    let left = chrono::DateTime::parse_from_rfc3339(&expires)
        .unwrap()
        .with_timezone(&chrono::Utc)
        - chrono::Utc::now();
    assert!(
        left <= chrono::Duration::minutes(5) && left > chrono::Duration::minutes(4),
        "{left}"
    );
}

#[tokio::test]
async fn a_signature_counter_that_goes_backwards_is_refused_and_the_owner_told() {
    let app = spawn_app().await;
    let email = "clone@example.com";
    let (_, mut authenticator) = user_with_passkey(&app, email).await;
    for _ in 0..2 {
        let started = login_start(&app, None).await;
        let assertion = authenticator.get(&started["publicKey"]);
        login_finish(&app, &started, assertion)
            .await
            .expect(StatusCode::OK);
    }
    let stored: i64 = app
        .db()
        .scalar("SELECT sign_count FROM passkeys", &[])
        .await;
    assert_eq!(stored, 2);
    // A copy of the key that signed once, behind the original.
    let started = login_start(&app, None).await;
    let assertion = authenticator.get_with_counter(&started["publicKey"], 1);
    login_finish(&app, &started, assertion)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
    // Verification code, passkey added, then the warning.
    let warning = app.mail.wait_for_mail_to(email, 3, WAIT).await;
    assert_eq!(
        warning.subject(),
        "A login with one of your passkeys was refused"
    );
    assert!(warning.text_body().contains("counter went backwards"));
    // The original, ahead of both, still logs in.
    let started = login_start(&app, None).await;
    let assertion = authenticator.get_with_counter(&started["publicKey"], 3);
    login_finish(&app, &started, assertion)
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn removing_a_passkey_needs_the_password_and_stops_it_at_once() {
    let app = spawn_app().await;
    let email = "rem@example.com";
    let (access, mut authenticator) = user_with_passkey(&app, email).await;
    let id = str_field(&list(&app, &access).await[0], "passkeyId");
    let path = format!("/users/me/passkeys/{id}");

    let wrong = app
        .delete_auth(
            &path,
            Some(json!({"password": "not the password"})),
            &access,
        )
        .await;
    expect_error(wrong, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    let unknown = app
        .delete_auth(
            "/users/me/passkeys/0190f0f0-0000-7000-8000-000000000000",
            Some(json!({"password": PASSWORD})),
            &access,
        )
        .await;
    expect_error(unknown, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    // Someone else's passkey is not yours to remove.
    let (stranger, _) = app.logged_in_user("stranger@example.com").await;
    let theirs = app
        .delete_auth(&path, Some(json!({"password": PASSWORD})), &stranger)
        .await;
    expect_error(theirs, StatusCode::NOT_FOUND, "NOT_FOUND").await;

    let removed = app
        .delete_auth(&path, Some(json!({"password": PASSWORD})), &access)
        .await;
    let body = expect_json(removed, StatusCode::OK).await;
    assert_eq!(body["success"], json!(true), "{body}");
    let notice = app.mail.wait_for_mail_to(email, 3, WAIT).await;
    assert_eq!(notice.subject(), "A passkey was removed from your account");
    assert!(list(&app, &access).await.is_empty());
    let started = login_start(&app, None).await;
    let assertion = authenticator.get(&started["publicKey"]);
    login_finish(&app, &started, assertion)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn adding_a_passkey_needs_the_password_and_a_session() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("pw@example.com").await;
    let wrong = app
        .post_auth(
            "/users/me/passkeys/register/start",
            json!({"password": "not the password"}),
            &access,
        )
        .await;
    expect_error(wrong, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    let anonymous = app
        .post(
            "/users/me/passkeys/register/start",
            json!({"password": PASSWORD}),
        )
        .await;
    expect_401(anonymous, "UNAUTHORIZED").await;
    expect_401(app.get("/users/me/passkeys").await, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn a_disabled_account_cannot_log_in_with_its_passkey() {
    let app = spawn_app().await;
    let (_, mut authenticator) = user_with_passkey(&app, "off@example.com").await;
    app.db()
        .execute(
            "UPDATE users SET disabled = TRUE WHERE email = ?",
            &["off@example.com"],
        )
        .await;
    let started = login_start(&app, None).await;
    let assertion = authenticator.get(&started["publicKey"]);
    login_finish(&app, &started, assertion)
        .await
        .expect_error(StatusCode::FORBIDDEN, "ACCOUNT_DISABLED");
}

#[tokio::test]
async fn starting_passkey_logins_counts_in_the_anonymous_rate_limit() {
    let app = spawn_app_with(|config| config.ip_rate_limit = 2).await;
    for _ in 0..2 {
        login_start(&app, Some("flood@example.com")).await;
    }
    let limited = app
        .post(
            "/users/login/passkey/start",
            json!({"email": "flood@example.com"}),
        )
        .await;
    let answer = limited.into_answer().await;
    assert!(answer.header("retry-after").is_some());
    answer.expect_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
}

#[tokio::test]
async fn passkeys_are_off_when_the_app_url_has_no_domain_name() {
    let app = spawn_app_with(|config| config.passkeys = None).await;
    let (access, _) = app.logged_in_user("ip@example.com").await;
    let start = app.post("/users/login/passkey/start", json!({})).await;
    expect_error(start, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let register = app
        .post_auth(
            "/users/me/passkeys/register/start",
            json!({"password": PASSWORD}),
            &access,
        )
        .await;
    expect_error(register, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert!(list(&app, &access).await.is_empty());
}

#[tokio::test]
async fn a_passkey_added_by_whoever_moved_the_account_dies_with_the_revert() {
    let app = spawn_app().await;
    let (owner, attacker) = ("keeper@example.com", "taker@evil.example");
    app.logged_in_user(owner).await;
    // Someone with the leaked password adds a passkey and moves the account.
    let (access, _) = app.another_session(owner).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&app, &access, &mut authenticator).await;
    let answer = app
        .api
        .request_email_change(&access, attacker, PASSWORD)
        .await;
    answer.expect(StatusCode::ACCEPTED);
    let code = app.mail.wait_for_mail_to(attacker, 1, WAIT).await.code();
    app.api
        .confirm_email_change(&access, &code)
        .await
        .expect(StatusCode::OK);
    // The owner follows the link in the notice to the old address.
    let notices = app
        .db()
        .count(
            "SELECT COUNT(*) FROM outbox WHERE recipient = ?1 AND id <= \
             (SELECT MAX(id) FROM outbox WHERE recipient = ?1 AND kind = 'email_changed')",
            &[owner],
        )
        .await;
    let notice = app
        .mail
        .wait_for_mail_to(owner, notices as usize, WAIT)
        .await;
    app.api
        .revert_email_change(&notice.link_param("token"))
        .await
        .expect(StatusCode::OK);

    let started = login_start(&app, None).await;
    let assertion = authenticator.get(&started["publicKey"]);
    login_finish(&app, &started, assertion)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS");
    let left = app.db().count("SELECT COUNT(*) FROM passkeys", &[]).await;
    assert_eq!(left, 0);
}

/// Turns TOTP on for a signed-in user; the recovery codes.
async fn with_totp(app: &TestApp, access: &str) -> Vec<String> {
    let started = app
        .post_auth("/users/me/mfa/totp", json!({"password": PASSWORD}), access)
        .await;
    let body = expect_json(started, StatusCode::CREATED).await;
    let totp = totp_rs::TOTP::from_url(str_field(&body, "otpauthUri")).expect("an otpauth URI");
    // One step of skew either way is accepted: a code made now still works
    // if the step turns before it arrives.
    let code = totp.generate_current().expect("the clock is after 1970");
    let confirmed = app
        .patch_auth("/users/me/mfa/totp", json!({"code": code}), access)
        .await;
    let body = expect_json(confirmed, StatusCode::OK).await;
    body["recoveryCodes"]
        .as_array()
        .expect("recoveryCodes")
        .iter()
        .map(|c| c.as_str().expect("a string").to_owned())
        .collect()
}

#[tokio::test]
async fn with_two_factor_on_adding_or_removing_a_passkey_needs_a_code() {
    let app = spawn_app().await;
    let email = "steps@example.com";
    let (access, _) = app.logged_in_user(email).await;
    let codes = with_totp(&app, &access).await;
    let start = "/users/me/passkeys/register/start";

    let no_code = app
        .post_auth(start, json!({"password": PASSWORD}), &access)
        .await;
    expect_error(no_code, StatusCode::BAD_REQUEST, "MFA_CODE_REQUIRED").await;
    let wrong = app
        .post_auth(
            start,
            json!({"password": PASSWORD, "code": "000000"}),
            &access,
        )
        .await;
    expect_error(wrong, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    let started = app
        .post_auth(
            start,
            json!({"password": PASSWORD, "code": codes[0]}),
            &access,
        )
        .await;
    let started = expect_json(started, StatusCode::OK).await;
    let mut authenticator = SoftAuthenticator::new();
    let credential = authenticator.create(&started["publicKey"]);
    let created = register_finish(&app, &access, &started, credential)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(app.me(&access).await["mfa"]["passkeys"], json!(1));

    // A verified passkey is two factors by itself: no TOTP step.
    let login = login_start(&app, None).await;
    let assertion = authenticator.get(&login["publicKey"]);
    let tokens = login_finish(&app, &login, assertion)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        claims(&str_field(&tokens, "accessToken"))["amr"],
        json!(["hwk", "mfa"])
    );

    let path = format!(
        "/users/me/passkeys/{}",
        str_field(&created["passkey"], "passkeyId")
    );
    let no_code = app
        .delete_auth(&path, Some(json!({"password": PASSWORD})), &access)
        .await;
    expect_error(no_code, StatusCode::BAD_REQUEST, "MFA_CODE_REQUIRED").await;
    let removed = app
        .delete_auth(
            &path,
            Some(json!({"password": PASSWORD, "code": codes[1]})),
            &access,
        )
        .await;
    expect_json(removed, StatusCode::OK).await;
    assert_eq!(app.me(&access).await["mfa"]["passkeys"], json!(0));
}

#[tokio::test]
async fn a_passkey_finishes_the_second_step_after_a_password() {
    let app = spawn_app().await;
    let email = "second@example.com";
    let (access, _) = app.logged_in_user(email).await;
    let codes = with_totp(&app, &access).await;
    let started = app
        .post_auth(
            "/users/me/passkeys/register/start",
            json!({"password": PASSWORD, "code": codes[0]}),
            &access,
        )
        .await;
    let started = expect_json(started, StatusCode::OK).await;
    let mut authenticator = SoftAuthenticator::new();
    let credential = authenticator.create(&started["publicKey"]);
    register_finish(&app, &access, &started, credential)
        .await
        .expect(StatusCode::CREATED);

    let first = app.api.login(email, PASSWORD).await;
    let first = first.expect_error(StatusCode::FORBIDDEN, "MFA_REQUIRED");
    assert_eq!(first["methods"], json!(["totp", "recovery", "passkey"]));
    let mfa_token = str_field(&first, "mfaToken");
    let step = app
        .post(
            "/users/login/mfa/passkey/start",
            json!({"mfaToken": mfa_token}),
        )
        .await;
    let step = expect_json(step, StatusCode::OK).await;
    assert_eq!(
        step["publicKey"]["allowCredentials"],
        json!([{"type": "public-key", "id": b64(&authenticator.credentials[0].id)}])
    );
    // Another account's passkey does not answer it, and counts as a wrong code.
    let (_, mut other) = user_with_passkey(&app, "other2@example.com").await;
    let wrong = app
        .post(
            "/users/login/mfa",
            json!({"mfaToken": mfa_token, "credential": other.get_unoffered(&step["publicKey"])}),
        )
        .await;
    expect_error(wrong, StatusCode::BAD_REQUEST, "INVALID_CODE").await;
    // That spent the ceremony: start again, then the right passkey.
    let step = app
        .post(
            "/users/login/mfa/passkey/start",
            json!({"mfaToken": mfa_token}),
        )
        .await;
    let step = expect_json(step, StatusCode::OK).await;
    let assertion = authenticator.get(&step["publicKey"]);
    let done = app
        .post(
            "/users/login/mfa",
            json!({"mfaToken": mfa_token, "credential": assertion}),
        )
        .await;
    let tokens = expect_json(done, StatusCode::OK).await;
    assert_eq!(
        claims(&str_field(&tokens, "accessToken"))["amr"],
        json!(["pwd", "hwk", "mfa"])
    );
    // The mfaToken is spent.
    let again = app
        .post(
            "/users/login/mfa/passkey/start",
            json!({"mfaToken": mfa_token}),
        )
        .await;
    expect_error(again, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
    // Neither a code nor a credential, or both: a validation error.
    let first = app.api.login(email, PASSWORD).await;
    let mfa_token = str_field(
        &first.expect_error(StatusCode::FORBIDDEN, "MFA_REQUIRED"),
        "mfaToken",
    );
    let neither = app
        .post("/users/login/mfa", json!({"mfaToken": mfa_token}))
        .await;
    expect_error(neither, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
}
