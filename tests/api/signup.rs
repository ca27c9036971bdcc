//! `POST /users/signup`: the answer, the verification email, validation,
//! duplicate addresses (also racing), referral codes, names, concealment.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;
use crate::support::{find_query_param, find_six_digit_code};

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
    let resp = app.api.activate(email, &code).await;
    expect_json(resp, StatusCode::OK).await;
    let access = str_field(&app.login(email).await, "accessToken");
    let me = expect_json(app.api.me(&access).await, StatusCode::OK).await;
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
        .api
        .signup(&Signup::new("  Mixed.Case@Example.COM "))
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
    let resp = app.api.activate(email, &code).await;
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
    let resp = app.api.activate("CAROL.JONES@example.com", &code).await;
    expect_json(resp, StatusCode::OK).await;

    let tokens = app.login("cArOl.jOnEs@EXAMPLE.com ").await;
    let me = expect_json(
        app.api.me(&str_field(&tokens, "accessToken")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        me["user"]["email"],
        json!("carol.jones@example.com"),
        "{me}"
    );
}

/// A signup the rules refuse: the field the answer must blame, and one it must not.
struct Refused {
    case: &'static str,
    form: Signup,
    field: &'static str,
    not_blamed: Option<&'static str>,
}

impl Refused {
    fn new(case: &'static str, form: Signup, field: &'static str) -> Refused {
        Refused {
            case,
            form,
            field,
            not_blamed: None,
        }
    }
}

#[tokio::test]
async fn signups_that_break_a_rule_are_refused_naming_the_field_and_create_nothing() {
    let app = spawn_app().await;
    let sam = || Signup::new("sam@example.com");
    let long = "horse battery staple ".repeat(7); // 147 characters
    let mut cases = Vec::new();
    for bad in ["a@b", "plain", "@example.com", "sam@", "sam @example.com"] {
        cases.push(Refused::new("a malformed email", Signup::new(bad), "email"));
    }
    cases.push(Refused {
        not_blamed: Some("email"),
        ..Refused::new(
            "a password under 8 characters",
            sam().password("Xk7#pQ2"),
            "password",
        )
    });
    cases.push(Refused::new(
        "a password over 128 characters",
        sam().password(&long[..129]),
        "password",
    ));
    for common in ["password123", "Password123", "QWERTY123", "12345678"] {
        let form = sam().password(common);
        cases.push(Refused::new(
            "a common password in any case",
            form,
            "password",
        ));
    }
    for own in ["sam.smith@example.com", "SAM.SMITH@EXAMPLE.COM"] {
        let form = Signup::new("Sam.Smith@example.com").password(own);
        cases.push(Refused::new(
            "the email address as password",
            form,
            "password",
        ));
    }
    cases.push(Refused {
        not_blamed: Some("password"),
        ..Refused::new(
            "a confirmation that differs from the password",
            sam().confirm("correct horse battery stapler"),
            "confirmPassword",
        )
    });
    cases.push(Refused::new(
        "a name over 100 characters",
        sam().name(&"n".repeat(101)),
        "name",
    ));

    for Refused {
        case,
        form,
        field,
        not_blamed,
    } in cases
    {
        let body = app
            .api
            .signup(&form)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "VALIDATION_FAILED");
        assert!(
            body["fields"][field]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{case} ({:?}): expected a `fields.{field}` message in {body}",
            form.password
        );
        if let Some(other) = not_blamed {
            assert!(body["fields"].get(other).is_none(), "{case}: {body}");
        }
    }

    // Nothing was created: both addresses are still free.
    for email in ["sam@example.com", "sam.smith@example.com"] {
        expect_json(app.signup(email).await, StatusCode::CREATED).await;
    }
}

#[tokio::test]
async fn signups_just_within_the_limits_are_accepted_as_sent() {
    let app = spawn_app().await;
    let long = "horse battery staple ".repeat(7);
    let cases = [
        (
            "a password of 8 characters",
            Signup::new("eight@example.com").password("Xk7#pQ2w"),
        ),
        (
            "a password of 128 characters",
            Signup::new("long@example.com").password(&long[..128]),
        ),
        (
            "a name of 100 characters",
            Signup::new("named@example.com").name(&"n".repeat(100)),
        ),
    ];
    for (case, form) in cases {
        let answer = app.api.signup(&form).await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{case}: {}",
            answer.text
        );
        let code = app.code_from_mail(&form.email, 1).await;
        app.api
            .activate(&form.email, &code)
            .await
            .expect(StatusCode::OK);
        let tokens = app
            .api
            .login(&form.email, &form.password)
            .await
            .expect(StatusCode::OK);
        let me = app.me(&str_field(&tokens, "accessToken")).await;
        if let Some(name) = &form.name {
            assert_eq!(me["name"], json!(name), "{case}: {me}");
        }
    }
}

#[tokio::test]
async fn signup_with_missing_fields_or_wrong_types_is_refused_with_validation_failed() {
    let app = spawn_app().await;
    let email = "sam@example.com";
    let bodies = [
        ("an empty object", json!({})),
        (
            "no email",
            json!({"password": PASSWORD, "confirmPassword": PASSWORD}),
        ),
        (
            "no password",
            json!({"email": email, "confirmPassword": PASSWORD}),
        ),
        (
            "no confirmation",
            json!({"email": email, "password": PASSWORD}),
        ),
        (
            "a null email",
            json!({"email": null, "password": PASSWORD, "confirmPassword": PASSWORD}),
        ),
        (
            "an email in an array",
            json!({"email": ["sam@example.com"], "password": PASSWORD, "confirmPassword": PASSWORD}),
        ),
        (
            "a password in an array",
            json!({"email": email, "password": ["x"], "confirmPassword": PASSWORD}),
        ),
        (
            "a confirmation in an object",
            json!({"email": email, "password": PASSWORD, "confirmPassword": {"value": PASSWORD}}),
        ),
        (
            "a referrer in an array",
            json!({"email": email, "password": PASSWORD, "confirmPassword": PASSWORD, "referrer": ["ACDEFGHJ"]}),
        ),
        (
            "a name in an object",
            json!({"email": email, "password": PASSWORD, "confirmPassword": PASSWORD, "name": {"first": "Sam"}}),
        ),
        ("an array body", json!([email, PASSWORD, PASSWORD])),
        ("a string body", json!("sam@example.com")),
        (
            "numbers for passwords",
            json!({"email": "num@example.com", "password": 987654321012_u64, "confirmPassword": 987654321012_u64}),
        ),
        (
            "a boolean name",
            json!({"email": email, "password": PASSWORD, "confirmPassword": PASSWORD, "name": false}),
        ),
        (
            "a number referrer",
            json!({"email": email, "password": PASSWORD, "confirmPassword": PASSWORD, "referrer": 7}),
        ),
    ];
    for (case, body) in bodies {
        let answer = app
            .post("/users/signup", body.clone())
            .await
            .into_answer()
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{case}, {body}: {}",
            answer.text
        );
        assert_eq!(
            answer.body["error"],
            json!(true),
            "{case}, {body}: {}",
            answer.text
        );
        assert_eq!(
            answer.body["code"],
            json!("VALIDATION_FAILED"),
            "{case}, {body}: {}",
            answer.text
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
async fn signup_with_a_taken_address_is_refused_with_409_in_any_case() {
    let app = spawn_app().await;
    app.activated_user("taken@example.com").await;

    for again in ["taken@example.com", "  TAKEN@Example.com "] {
        let resp = app
            .api
            .signup(&Signup::new(again).password("another fine passphrase"))
            .await;
        expect_error(resp, StatusCode::CONFLICT, "EMAIL_IN_USE").await;
    }

    // The account keeps its password.
    app.login("taken@example.com").await;
    let resp = app
        .api
        .login("taken@example.com", "another fine passphrase")
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
        let resp = app
            .api
            .signup(&Signup::new("bob@example.com").referrer(code))
            .await;
        expect_error(resp, StatusCode::BAD_REQUEST, "INVALID_REFERRAL_CODE").await;
    }

    // Nothing was created: the address is still free.
    expect_json(app.signup("bob@example.com").await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn html_in_a_name_is_stripped_before_it_is_stored() {
    let app = spawn_app().await;
    let form = Signup::new("sam@example.com").name("<b>Sam</b><script>x</script>");
    expect_json(app.api.signup(&form).await, StatusCode::CREATED).await;

    let me = activate_and_fetch_me(&app, "sam@example.com").await;
    assert_eq!(me["name"], json!("Sam"), "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_signups_for_one_address_create_one_account_and_send_one_email() {
    let app = spawn_app().await;
    let email = "racer@example.com";
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let api = app.api.clone();
            // Each racer with its own password, so the winner is identifiable.
            let password = format!("racing passphrase number {i}");
            tokio::spawn(async move {
                let answer = api.signup(&Signup::new(email).password(&password)).await;
                (i, answer.status, answer.body)
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
    app.drain_outbox("sentinel@example.com").await;
    assert_eq!(app.mail.mails_to(email).len(), 1, "one verification email");

    // The account is the winner's.
    let resp = app.api.activate(email, &code).await;
    expect_json(resp, StatusCode::OK).await;
    let password = format!("racing passphrase number {}", winners[0]);
    let resp = app.api.login(email, &password).await;
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
            .api
            .signup(&Signup::new(again).password("another fine passphrase"))
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

    app.drain_outbox("sentinel@example.com").await;
    assert_eq!(
        app.mail.mails_to("taken@example.com").len(),
        2,
        "the verification email, then a notice that someone tried to sign up"
    );
}

/// `activated_user` for an app that answers signups with `202`.
async fn activated_user_concealed(app: &TestApp, email: &str) {
    expect_json(app.signup(email).await, StatusCode::ACCEPTED).await;
    let code = app.code_from_mail(email, 1).await;
    let resp = app.api.activate(email, &code).await;
    expect_json(resp, StatusCode::OK).await;
}
