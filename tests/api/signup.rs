//! `POST /users/signup`: the answer, the verification email, validation,
//! duplicate addresses (also racing), referral codes, names, concealment.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;
use crate::support::{find_query_param, find_six_digit_code};

/// A signup body with the given password and confirmation.
fn signup_body(email: &str, password: &str, confirm: &str) -> Value {
    json!({"email": email, "password": password, "confirmPassword": confirm})
}

/// Asserts `400 VALIDATION_FAILED` with a non-empty message for `field`.
async fn expect_field_error(resp: reqwest::Response, field: &str) -> Value {
    let body = expect_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    assert!(
        body["fields"][field]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "expected a `fields.{field}` message in {body}"
    );
    body
}

/// Sends `raw` as a JSON body to the signup endpoint.
async fn post_raw_json(app: &TestApp, raw: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/users/signup", app.address))
        .header("Content-Type", "application/json")
        .body(raw.to_owned())
        .send()
        .await
        .expect("request reaches the server")
}

/// Waits until every email queued so far has been delivered: the outbox
/// delivers in order, so once a fresh address's verification email (queued
/// last) has arrived, everything queued before it has arrived too.
async fn drain_outbox(app: &TestApp, sentinel: &str) {
    let resp = app.signup(sentinel).await;
    assert!(
        resp.status().is_success(),
        "sentinel signup failed: {resp:?}"
    );
    app.mail.wait_for_mail_to(sentinel, 1, WAIT).await;
}

/// How many emails were delivered to `email` (exact envelope address).
fn mails_to(app: &TestApp, email: &str) -> usize {
    app.mail
        .messages()
        .iter()
        .filter(|m| m.to.iter().any(|t| t == email))
        .count()
}

/// Decodes the character references an HTML attribute or text may use.
fn html_unescape(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let decoded = rest.find(';').and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity.strip_prefix('#').and_then(|num| {
                    let n = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => num.parse().ok(),
                    };
                    n.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Activates with the emailed code and logs in; returns the `/users/me` user.
async fn activate_and_fetch_me(app: &TestApp, email: &str) -> Value {
    let code = app.code_from_mail(email, 1).await;
    let resp = app
        .patch("/users/activate", json!({"email": email, "code": code}))
        .await;
    expect_json(resp, StatusCode::OK).await;
    let access = str_field(&app.login(email).await, "accessToken");
    let me = expect_json(app.get_auth("/users/me", &access).await, StatusCode::OK).await;
    me["user"].clone()
}

#[tokio::test]
async fn signup_answers_201_with_a_uuid_user_id_and_an_8_character_referral_code() {
    let app = spawn_app().await;

    let body = expect_json(app.signup("sam@example.com").await, StatusCode::CREATED).await;

    assert_eq!(body["success"], json!(true), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let user_id = str_field(&body, "userId");
    uuid::Uuid::parse_str(&user_id).unwrap_or_else(|_| panic!("userId is not a UUID: {body}"));
    let referral_code = str_field(&body, "referralCode");
    assert_eq!(referral_code.chars().count(), 8, "{body}");
    assert!(
        referral_code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "{body}"
    );

    // The ids are the account's: /users/me shows the same ones.
    let me = activate_and_fetch_me(&app, "sam@example.com").await;
    assert_eq!(me["userId"], json!(user_id), "{me}");
    assert_eq!(me["referralCode"], json!(referral_code), "{me}");

    // A second account gets its own id and code.
    let other = expect_json(app.signup("kim@example.com").await, StatusCode::CREATED).await;
    assert_ne!(str_field(&other, "userId"), user_id);
    assert_ne!(str_field(&other, "referralCode"), referral_code);
}

#[tokio::test]
async fn the_verification_email_goes_to_the_normalized_address_with_the_code_and_a_verify_link() {
    let app = spawn_app().await;

    let resp = app
        .post(
            "/users/signup",
            signup_body("  Mixed.Case@Example.COM ", PASSWORD, PASSWORD),
        )
        .await;
    expect_json(resp, StatusCode::CREATED).await;

    let email = "mixed.case@example.com";
    let mail = app.mail.wait_for_mail_to(email, 1, WAIT).await;
    assert_eq!(mail.to, vec![email.to_owned()], "envelope recipient");
    assert!(
        mail.subject().to_lowercase().contains("verif"),
        "subject: {:?}",
        mail.subject()
    );

    let text = mail.text_body();
    let code = find_six_digit_code(&text).expect("text part carries a 6-digit code");
    let verify_link = format!("{}/verify?", app.config.app_url);
    assert!(
        text.contains(&verify_link),
        "no {verify_link} link in:\n{text}"
    );
    assert_eq!(find_query_param(&text, "email").as_deref(), Some(email));
    assert_eq!(find_query_param(&text, "code").as_deref(), Some(&*code));

    // What a mail client shows and follows: the HTML with its entities decoded.
    let html = html_unescape(&mail.html_body().expect("the email has an HTML part"));
    assert!(html.contains(&code), "HTML part lacks the code:\n{html}");
    let href = format!("href=\"{verify_link}");
    assert!(html.contains(&href), "no {href} link in:\n{html}");
    assert_eq!(find_query_param(&html, "email").as_deref(), Some(email));
    assert_eq!(find_query_param(&html, "code").as_deref(), Some(&*code));

    // It is the code of this account.
    let resp = app
        .patch("/users/activate", json!({"email": email, "code": code}))
        .await;
    expect_json(resp, StatusCode::OK).await;
}

#[tokio::test]
async fn the_email_is_stored_lower_cased_so_login_and_me_work_in_another_case() {
    let app = spawn_app().await;
    expect_json(
        app.signup(" Carol.Jones@Example.COM").await,
        StatusCode::CREATED,
    )
    .await;
    let code = app.code_from_mail("carol.jones@example.com", 1).await;
    let resp = app
        .patch(
            "/users/activate",
            json!({"email": "CAROL.JONES@example.com", "code": code}),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;

    let tokens = app.login("cArOl.jOnEs@EXAMPLE.com ").await;
    let me = expect_json(
        app.get_auth("/users/me", &str_field(&tokens, "accessToken"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        me["user"]["email"],
        json!("carol.jones@example.com"),
        "{me}"
    );
}

#[tokio::test]
async fn signup_with_a_malformed_email_is_refused_with_a_field_message() {
    let app = spawn_app().await;
    for bad in ["a@b", "plain", "@example.com", "sam@", "sam @example.com"] {
        let resp = app
            .post("/users/signup", signup_body(bad, PASSWORD, PASSWORD))
            .await;
        expect_field_error(resp, "email").await;
    }
}

#[tokio::test]
async fn signup_with_a_password_under_8_characters_is_refused_and_8_are_enough() {
    let app = spawn_app().await;
    let resp = app
        .post(
            "/users/signup",
            signup_body("sam@example.com", "Xk7#pQ2", "Xk7#pQ2"),
        )
        .await;
    let body = expect_field_error(resp, "password").await;
    assert!(body["fields"].get("email").is_none(), "{body}");

    // Nothing was created: the same address signs up with 8 characters.
    let resp = app
        .post(
            "/users/signup",
            signup_body("sam@example.com", "Xk7#pQ2w", "Xk7#pQ2w"),
        )
        .await;
    expect_json(resp, StatusCode::CREATED).await;
}

#[tokio::test]
async fn signup_with_a_password_over_128_characters_is_refused_and_128_are_enough() {
    let app = spawn_app().await;
    let long = "horse battery staple ".repeat(7); // 147 characters
    let too_long = &long[..129];
    let resp = app
        .post(
            "/users/signup",
            signup_body("sam@example.com", too_long, too_long),
        )
        .await;
    expect_field_error(resp, "password").await;

    let just_right = &long[..128];
    let resp = app
        .post(
            "/users/signup",
            signup_body("sam@example.com", just_right, just_right),
        )
        .await;
    expect_json(resp, StatusCode::CREATED).await;
}

#[tokio::test]
async fn signup_with_a_common_password_is_refused_in_any_case() {
    let app = spawn_app().await;
    for common in ["password123", "Password123", "QWERTY123", "12345678"] {
        let resp = app
            .post(
                "/users/signup",
                signup_body("sam@example.com", common, common),
            )
            .await;
        expect_field_error(resp, "password").await;
    }
}

#[tokio::test]
async fn signup_with_the_email_address_as_password_is_refused() {
    let app = spawn_app().await;
    for password in ["sam.smith@example.com", "SAM.SMITH@EXAMPLE.COM"] {
        let resp = app
            .post(
                "/users/signup",
                signup_body("Sam.Smith@example.com", password, password),
            )
            .await;
        expect_field_error(resp, "password").await;
    }
}

#[tokio::test]
async fn signup_whose_confirmation_differs_from_the_password_is_refused() {
    let app = spawn_app().await;
    let resp = app
        .post(
            "/users/signup",
            signup_body("sam@example.com", PASSWORD, "correct horse battery stapler"),
        )
        .await;
    let body = expect_field_error(resp, "confirmPassword").await;
    assert!(body["fields"].get("password").is_none(), "{body}");

    // Nothing was created.
    expect_json(app.signup("sam@example.com").await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn signup_with_a_name_over_100_characters_is_refused_and_100_are_enough() {
    let app = spawn_app().await;
    let mut body = signup_body("sam@example.com", PASSWORD, PASSWORD);
    body["name"] = json!("n".repeat(101));
    let resp = app.post("/users/signup", body.clone()).await;
    expect_field_error(resp, "name").await;

    body["name"] = json!("n".repeat(100));
    let resp = app.post("/users/signup", body).await;
    expect_json(resp, StatusCode::CREATED).await;
    let me = activate_and_fetch_me(&app, "sam@example.com").await;
    assert_eq!(me["name"], json!("n".repeat(100)), "{me}");
}

#[tokio::test]
async fn signup_with_missing_fields_or_wrong_types_is_refused_with_validation_failed() {
    let app = spawn_app().await;
    let email = "sam@example.com";
    let bodies = [
        json!({}),
        json!({"password": PASSWORD, "confirmPassword": PASSWORD}),
        json!({"email": email, "confirmPassword": PASSWORD}),
        json!({"email": email, "password": PASSWORD}),
        json!({"email": null, "password": PASSWORD, "confirmPassword": PASSWORD}),
        json!({"email": ["sam@example.com"], "password": PASSWORD, "confirmPassword": PASSWORD}),
        json!({"email": email, "password": ["x"], "confirmPassword": PASSWORD}),
        json!({"email": email, "password": PASSWORD, "confirmPassword": {"value": PASSWORD}}),
        json!({"email": email, "password": PASSWORD, "confirmPassword": PASSWORD, "referrer": ["ACDEFGHJ"]}),
        json!({"email": email, "password": PASSWORD, "confirmPassword": PASSWORD, "name": {"first": "Sam"}}),
        json!([email, PASSWORD, PASSWORD]),
        json!("sam@example.com"),
    ];
    for body in bodies {
        let resp = app.post("/users/signup", body.clone()).await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert_eq!(status, StatusCode::BAD_REQUEST, "for {body}: {text}");
        let answer: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("for {body}: not JSON: {text}"));
        assert_eq!(answer["error"], json!(true), "for {body}: {answer}");
        assert_eq!(
            answer["code"],
            json!("VALIDATION_FAILED"),
            "for {body}: {answer}"
        );
    }
    for raw in [
        r#"{"email": "sam@example.com", "password": "#,
        "not json",
        "",
    ] {
        let resp = post_raw_json(&app, raw).await;
        expect_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    }

    // None of them created the account.
    expect_json(app.signup(email).await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn signup_with_a_number_or_boolean_for_a_string_field_is_refused_with_validation_failed() {
    let app = spawn_app().await;
    let bodies = [
        json!({"email": "num@example.com", "password": 987654321012_u64, "confirmPassword": 987654321012_u64}),
        json!({"email": "sam@example.com", "password": PASSWORD, "confirmPassword": PASSWORD, "name": false}),
        json!({"email": "sam@example.com", "password": PASSWORD, "confirmPassword": PASSWORD, "referrer": 7}),
    ];
    for body in bodies {
        let resp = app.post("/users/signup", body.clone()).await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert_eq!(status, StatusCode::BAD_REQUEST, "for {body}: {text}");
        let answer: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("for {body}: not JSON: {text}"));
        assert_eq!(
            answer["code"],
            json!("VALIDATION_FAILED"),
            "for {body}: {answer}"
        );
    }
}

#[tokio::test]
async fn signup_with_a_taken_address_is_refused_with_409_in_any_case() {
    let app = spawn_app().await;
    app.activated_user("taken@example.com").await;

    for again in ["taken@example.com", "  TAKEN@Example.com "] {
        let resp = app
            .post(
                "/users/signup",
                signup_body(again, "another fine passphrase", "another fine passphrase"),
            )
            .await;
        expect_error(resp, StatusCode::CONFLICT, "EMAIL_IN_USE").await;
    }

    // The account keeps its password.
    app.login("taken@example.com").await;
    let resp = app
        .post(
            "/users/login",
            json!({"email": "taken@example.com", "password": "another fine passphrase"}),
        )
        .await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
}

#[tokio::test]
async fn a_taken_address_is_refused_even_before_its_account_is_activated() {
    let app = spawn_app().await;
    expect_json(app.signup("pending@example.com").await, StatusCode::CREATED).await;
    let resp = app.signup("Pending@Example.com").await;
    expect_error(resp, StatusCode::CONFLICT, "EMAIL_IN_USE").await;
}

#[tokio::test]
async fn signup_with_an_unknown_referral_code_is_refused_and_creates_nothing() {
    let app = spawn_app().await;
    let referrer = app.activated_user("alice@example.com").await;
    let real = str_field(&referrer, "referralCode");
    // Well-formed (8 characters of the code alphabet) but nobody's.
    let unused = if real == "ACDEFGHJ" {
        "KMNPQRTU"
    } else {
        "ACDEFGHJ"
    };
    let malformed = ["not-a-code", "O0I1L5SZ", "ABC", "ACDEFGHJK"];
    for code in std::iter::once(unused).chain(malformed) {
        let mut body = signup_body("bob@example.com", PASSWORD, PASSWORD);
        body["referrer"] = json!(code);
        let resp = app.post("/users/signup", body).await;
        expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_REFERRAL_CODE").await;
    }

    // Nothing was created: the address is still free.
    expect_json(app.signup("bob@example.com").await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn html_in_a_name_is_stripped_before_it_is_stored() {
    let app = spawn_app().await;
    let mut body = signup_body("sam@example.com", PASSWORD, PASSWORD);
    body["name"] = json!("<b>Sam</b><script>x</script>");
    expect_json(app.post("/users/signup", body).await, StatusCode::CREATED).await;

    let me = activate_and_fetch_me(&app, "sam@example.com").await;
    assert_eq!(me["name"], json!("Sam"), "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_signups_for_one_address_create_one_account_and_send_one_email() {
    let app = spawn_app().await;
    let email = "racer@example.com";
    let url = format!("{}/users/signup", app.address);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let client = app.client.clone();
            let url = url.clone();
            // Each racer with its own password, so the winner is identifiable.
            let password = format!("racing passphrase number {i}");
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .json(&signup_body(email, &password, &password))
                    .send()
                    .await
                    .expect("request reaches the server");
                let status = resp.status();
                let body: Value = resp.json().await.expect("JSON body");
                (i, status, body)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (i, status, body) = task.await.expect("task");
        match status {
            StatusCode::CREATED => winners.push(i),
            StatusCode::CONFLICT => assert_eq!(body["code"], json!("EMAIL_IN_USE"), "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one signup wins: {winners:?}");

    let code = app.code_from_mail(email, 1).await;
    drain_outbox(&app, "sentinel@example.com").await;
    assert_eq!(mails_to(&app, email), 1, "one verification email");

    // The account is the winner's.
    let resp = app
        .patch("/users/activate", json!({"email": email, "code": code}))
        .await;
    expect_json(resp, StatusCode::OK).await;
    let password = format!("racing passphrase number {}", winners[0]);
    let resp = app
        .post(
            "/users/login",
            json!({"email": email, "password": password}),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
}

#[tokio::test]
async fn with_concealment_a_new_address_gets_202_without_ids_and_a_working_code() {
    let app = spawn_app_with(|config| config.signup_conceals_existing = true).await;

    let resp = app.signup("new@example.com").await;
    let body = expect_json(resp, StatusCode::ACCEPTED).await;
    assert_eq!(body["success"], json!(true), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body.get("userId").is_none(), "{body}");
    assert!(body.get("referralCode").is_none(), "{body}");

    // The account exists and activates with the emailed code.
    let me = activate_and_fetch_me(&app, "new@example.com").await;
    assert_eq!(me["email"], json!("new@example.com"), "{me}");
}

#[tokio::test]
async fn with_concealment_a_taken_address_gets_the_same_202_body_and_keeps_its_password() {
    let app = spawn_app_with(|config| config.signup_conceals_existing = true).await;
    let fresh = expect_json(app.signup("fresh@example.com").await, StatusCode::ACCEPTED).await;
    activated_user_concealed(&app, "taken@example.com").await;

    for again in ["taken@example.com", "Taken@Example.COM"] {
        let resp = app
            .post(
                "/users/signup",
                signup_body(again, "another fine passphrase", "another fine passphrase"),
            )
            .await;
        let taken = expect_json(resp, StatusCode::ACCEPTED).await;
        assert_eq!(taken, fresh);
    }

    app.login("taken@example.com").await;
}

#[tokio::test]
async fn with_concealment_the_owner_of_a_taken_address_is_told_by_email() {
    let app = spawn_app_with(|config| config.signup_conceals_existing = true).await;
    activated_user_concealed(&app, "taken@example.com").await;

    let resp = app.signup("taken@example.com").await;
    expect_json(resp, StatusCode::ACCEPTED).await;

    drain_outbox(&app, "sentinel@example.com").await;
    assert_eq!(
        mails_to(&app, "taken@example.com"),
        2,
        "the verification email, then a notice that someone tried to sign up"
    );
}

/// `activated_user` for an app that answers signups with `202`.
async fn activated_user_concealed(app: &TestApp, email: &str) {
    expect_json(app.signup(email).await, StatusCode::ACCEPTED).await;
    let code = app.code_from_mail(email, 1).await;
    let resp = app
        .patch("/users/activate", json!({"email": email, "code": code}))
        .await;
    expect_json(resp, StatusCode::OK).await;
}
