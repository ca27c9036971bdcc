//! Hostile input: absurd sizes, NUL bytes, broken encodings, deep nesting,
//! look-alike addresses, duplicate keys and out-of-range numbers. Every
//! answer is a `4xx` in the contract's shape (never a `500`), and the server
//! stays healthy afterwards.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

/// Text that must never reach a client.
const INTERNALS: [&str; 6] = ["sqlx", "SELECT", "/src/", "panicked", "stack", ".rs:"];

/// A body limit big enough for the absurd inputs to reach the handlers.
const BIG_BODY: usize = 1024 * 1024;

async fn roomy_app() -> TestApp {
    spawn_app_with(|config| config.max_body_bytes = BIG_BODY).await
}

/// Sends `body` as-is, labelled as JSON.
async fn send_raw(app: &TestApp, method: reqwest::Method, path: &str, body: Vec<u8>) -> Response {
    app.client
        .request(method, format!("{}{path}", app.address))
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .expect("request reaches the server")
}

async fn post_raw(app: &TestApp, path: &str, body: impl Into<Vec<u8>>) -> Response {
    send_raw(app, reqwest::Method::POST, path, body.into()).await
}

/// Asserts a client error with this status and code, in the contract's shape
/// and without internals; returns the body.
async fn expect_refused(resp: Response, status: StatusCode, code: &str, what: &str) -> Value {
    let actual = resp.status();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.expect("body");
    assert_eq!(actual, status, "{what}: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content type {content_type:?}"
    );
    for internal in INTERNALS {
        assert!(
            !text.contains(internal),
            "{what} leaks {internal:?}: {text}"
        );
    }
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
    assert_eq!(body["error"], json!(true), "{what}: {body}");
    assert_eq!(body["code"], json!(code), "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    body
}

async fn expect_invalid(resp: Response, what: &str) -> Value {
    expect_refused(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED", what).await
}

/// Asserts the server still answers and still creates accounts.
async fn assert_healthy(app: &TestApp, email: &str) {
    expect_json(app.get("/ping").await, StatusCode::OK).await;
    expect_json(app.get("/health/ready").await, StatusCode::OK).await;
    expect_json(app.signup(email).await, StatusCode::CREATED).await;
}

/// Asserts that signing up with `email` answers `400` naming the field.
async fn expect_email_refused(app: &TestApp, email: &str) {
    let resp = app
        .post("/users/signup", signup_body(email, PASSWORD))
        .await;
    let body = expect_invalid(resp, &format!("{email:?}")).await;
    assert!(body["fields"]["email"].is_string(), "{email:?}: {body}");
}

fn signup_body(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password, "confirmPassword": password})
}

// ---------------------------------------------------------------- sizes

#[tokio::test]
async fn a_ten_thousand_character_email_answers_400_everywhere() {
    let app = roomy_app().await;
    let email = format!("{}@example.com", "a".repeat(10_000));

    let calls = [
        (
            "signup",
            app.post("/users/signup", signup_body(&email, PASSWORD))
                .await,
        ),
        (
            "login",
            app.post(
                "/users/login",
                json!({"email": email, "password": PASSWORD}),
            )
            .await,
        ),
        (
            "forgot",
            app.patch("/users/forgot", json!({ "email": email })).await,
        ),
        (
            "resend",
            app.post("/users/activate/resend", json!({ "email": email }))
                .await,
        ),
    ];
    for (what, resp) in calls {
        let status = resp.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
            "{what}: {status}"
        );
        if status == StatusCode::BAD_REQUEST {
            expect_invalid(resp, what).await;
        } else {
            // Login answers every impossible address like an unknown one.
            expect_refused(resp, status, "INVALID_CREDENTIALS", what).await;
        }
    }
    let activate = app
        .patch("/users/activate", json!({"email": email, "code": "123456"}))
        .await;
    let status = activate.status();
    assert!(status == StatusCode::BAD_REQUEST, "activate: {status}");
    assert_healthy(&app, "after-long-email@example.com").await;
}

#[tokio::test]
async fn a_hundred_thousand_character_password_answers_400_without_being_hashed() {
    let app = roomy_app().await;
    let password = "Zx9!".repeat(25_000);

    let body = expect_invalid(
        app.post(
            "/users/signup",
            signup_body("long-password@example.com", &password),
        )
        .await,
        "signup",
    )
    .await;
    assert!(body["message"].is_string(), "{body}");
    expect_invalid(
        app.post(
            "/users/login",
            json!({"email": "long-password@example.com", "password": password}),
        )
        .await,
        "login",
    )
    .await;
    let token = "A".repeat(43);
    expect_invalid(
        app.patch(
            "/users/reset",
            json!({"token": token, "newPassword": password, "confirmPassword": password}),
        )
        .await,
        "reset",
    )
    .await;
    assert_healthy(&app, "long-password@example.com").await;
}

#[tokio::test]
async fn a_password_one_character_over_the_policy_is_refused_with_the_limit() {
    let app = spawn_app().await;
    let password = "x".repeat(129);

    let body = expect_invalid(
        app.post("/users/signup", signup_body("limit@example.com", &password))
            .await,
        "129 characters",
    )
    .await;

    assert_eq!(
        body["fields"]["password"],
        json!("must be at most 128 characters")
    );
}

#[tokio::test]
async fn a_policy_length_password_of_wide_characters_is_accepted() {
    let app = spawn_app().await;
    // 128 characters of four bytes each: within the policy in characters,
    // and within the field's byte limit.
    let password: String = (0..128u32)
        .map(|i| char::from_u32(0x1F600 + (i * 37) % 128).expect("an emoji"))
        .collect();
    assert_eq!(password.len(), 512);

    expect_json(
        app.post("/users/signup", signup_body("wide@example.com", &password))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let code = app.code_from_mail("wide@example.com", 1).await;
    let resp = app
        .patch(
            "/users/activate",
            json!({"email": "wide@example.com", "code": code}),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    let resp = app
        .post(
            "/users/login",
            json!({"email": "wide@example.com", "password": password}),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
}

#[tokio::test]
async fn an_overlong_name_answers_400() {
    let app = roomy_app().await;

    for (what, name) in [
        ("1001 characters", "n".repeat(1001)),
        ("101 characters", "n".repeat(101)),
        ("a megabyte of markup", "<b>".repeat(300_000)),
    ] {
        let mut body = signup_body("named@example.com", PASSWORD);
        body["name"] = json!(name);
        let resp = app.post("/users/signup", body).await;
        let status = resp.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            expect_refused(resp, status, "PAYLOAD_TOO_LARGE", what).await;
        } else {
            expect_invalid(resp, what).await;
        }
    }
    assert_healthy(&app, "named@example.com").await;
}

// ---------------------------------------------------------------- NUL and control bytes

#[tokio::test]
async fn a_nul_byte_in_the_email_answers_400() {
    let app = spawn_app().await;

    for email in [
        "sam\0@example.com",
        "sam@exa\0mple.com",
        "\0sam@example.com",
    ] {
        expect_email_refused(&app, email).await;
    }
    expect_json(app.signup("sam@example.com").await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn a_nul_byte_in_the_password_answers_400() {
    let app = spawn_app().await;
    let password = "correct horse\0battery staple";

    let body = expect_invalid(
        app.post("/users/signup", signup_body("nul@example.com", password))
            .await,
        "signup",
    )
    .await;

    assert_eq!(
        body["fields"]["password"],
        json!("must not contain NUL characters"),
        "{body}"
    );
    // At login it is merely a wrong password.
    app.activated_user("nul@example.com").await;
    let resp = app
        .post(
            "/users/login",
            json!({"email": "nul@example.com", "password": format!("{PASSWORD}\0")}),
        )
        .await;
    expect_refused(
        resp,
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
        "login",
    )
    .await;
}

/// Signs up with `name`, activates and reads the profile: the name as
/// stored, or `None` if the signup was refused with `400` (also fine).
async fn stored_name(app: &TestApp, email: &str, name: &str) -> Option<String> {
    let mut body = signup_body(email, PASSWORD);
    body["name"] = json!(name);
    let resp = app.post("/users/signup", body).await;
    if resp.status() == StatusCode::BAD_REQUEST {
        expect_invalid(resp, &format!("name {name:?}")).await;
        return None;
    }
    expect_json(resp, StatusCode::CREATED).await;
    let code = app.code_from_mail(email, 1).await;
    let resp = app
        .patch("/users/activate", json!({"email": email, "code": code}))
        .await;
    expect_json(resp, StatusCode::OK).await;
    let tokens = app.login(email).await;
    let me = expect_json(
        app.get_auth("/users/me", &str_field(&tokens, "accessToken"))
            .await,
        StatusCode::OK,
    )
    .await;
    Some(me["user"]["name"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_nul_byte_in_the_name_never_reaches_the_profile() {
    let app = spawn_app().await;
    let Some(name) = stored_name(&app, "nul-name@example.com", "Sam\0 Doe\u{7}").await else {
        return;
    };
    assert!(name.contains("Sam") && name.contains("Doe"), "{name:?}");
    assert!(!name.contains('\0'), "NUL stored in the name: {name:?}");
}

#[tokio::test]
async fn control_characters_never_reach_the_profile_name() {
    let app = spawn_app().await;
    let raw = "Sam\u{7} \u{1b}[31mDoe\u{7f}\u{85}";
    let Some(name) = stored_name(&app, "control@example.com", raw).await else {
        return;
    };
    assert!(
        !name.chars().any(char::is_control),
        "control characters stored in the name: {name:?}"
    );
}

// ---------------------------------------------------------------- broken encodings

#[tokio::test]
async fn invalid_utf8_in_a_body_answers_400() {
    let app = spawn_app().await;

    let mut inside_a_string = br#"{"email": "sam@example.com", "password": ""#.to_vec();
    inside_a_string.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    inside_a_string.extend_from_slice(br#"", "confirmPassword": "x"}"#);
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("inside a string", inside_a_string),
        ("as the body", vec![0xff, 0xfe, 0xfd]),
        (
            "overlong encoding",
            b"{\"email\": \"\xc0\xafx@example.com\"}".to_vec(),
        ),
        (
            "lone surrogate escape",
            br#"{"email": "\ud800@example.com"}"#.to_vec(),
        ),
        ("byte order mark", b"\xef\xbb\xbf{}".to_vec()),
    ];
    for (what, body) in bodies {
        expect_invalid(post_raw(&app, "/users/signup", body.clone()).await, what).await;
        expect_invalid(post_raw(&app, "/users/login", body).await, what).await;
    }
    assert_healthy(&app, "after-utf8@example.com").await;
}

#[tokio::test]
async fn bodies_that_are_not_objects_answer_400() {
    let app = spawn_app().await;

    for body in [
        "null",
        "[]",
        "\"sam@example.com\"",
        "42",
        "true",
        "{",
        "}",
        "",
    ] {
        expect_invalid(
            post_raw(&app, "/users/login", body).await,
            &format!("body {body:?}"),
        )
        .await;
    }
}

#[tokio::test]
async fn deeply_nested_json_answers_400_and_the_server_stays_up() {
    let app = roomy_app().await;

    let arrays = "[".repeat(100_000);
    let objects = "{\"a\":".repeat(100_000);
    let mut in_a_field = String::from("{\"email\": ");
    in_a_field.push_str(&"[".repeat(100_000));
    for (what, body) in [
        ("arrays", arrays),
        ("objects", objects),
        ("inside a field", in_a_field),
    ] {
        expect_invalid(post_raw(&app, "/users/signup", body.clone()).await, what).await;
        expect_invalid(post_raw(&app, "/users/login", body).await, what).await;
    }
    assert_healthy(&app, "after-nesting@example.com").await;
}

#[tokio::test]
async fn numbers_out_of_any_range_answer_400() {
    let app = spawn_app().await;

    for body in [
        r#"{"email": 1e999, "password": "x"}"#,
        r#"{"email": -1e999, "password": "x"}"#,
        r#"{"email": 123456789012345678901234567890, "password": "x"}"#,
        r#"{"email": "a@example.com", "password": NaN}"#,
        r#"{"email": "a@example.com", "password": Infinity}"#,
    ] {
        expect_invalid(post_raw(&app, "/users/login", body).await, body).await;
    }
}

// ---------------------------------------------------------------- addresses

#[tokio::test]
async fn a_look_alike_address_is_refused() {
    let app = spawn_app().await;
    expect_json(app.signup("paypal@example.com").await, StatusCode::CREATED).await;

    for email in [
        "p\u{430}ypal@example.com",
        "paypal@ex\u{430}mple.com",
        "pa\u{200b}ypal@example.com",
        "paypal@example.com\u{0338}",
    ] {
        expect_email_refused(&app, email).await;
    }
}

#[tokio::test]
async fn things_that_are_not_addresses_answer_400() {
    let app = spawn_app().await;

    for email in [
        "a@b",
        "a@b.",
        "a@.b",
        "@example.com",
        "sam@",
        "sam",
        "sam example@example.com",
        "sam@exam ple.com",
        "sam@@example.com",
        "sam@example..com",
        "sam@-example.com",
        "sam@example-.com",
        "sam@example.com\nBcc: victim@example.com",
        "sam@example.com\r\nBcc: victim@example.com",
        "   ",
        "",
    ] {
        expect_email_refused(&app, email).await;
    }
}

#[tokio::test]
async fn an_address_the_mailer_cannot_send_to_is_refused_at_signup() {
    let app = spawn_app().await;

    for email in [
        "\"sam example\"@example.com",
        "\"<b>x</b>\"@example.com",
        "\"a@b\"@example.com",
        "sam@[127.0.0.1]",
    ] {
        expect_email_refused(&app, email).await;
    }
}

#[tokio::test]
async fn a_quoted_local_part_cannot_open_a_second_account_for_one_mailbox() {
    let app = spawn_app().await;
    expect_json(app.signup("sam@example.com").await, StatusCode::CREATED).await;

    let resp = app
        .post(
            "/users/signup",
            signup_body("\"sam\"@example.com", PASSWORD),
        )
        .await;

    let status = resp.status();
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::CONFLICT,
        "a quoted spelling of a taken address answered {status}: {}",
        resp.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn real_addresses_with_tags_and_subdomains_are_accepted() {
    let app = spawn_app().await;

    for email in [
        "first.last+newsletter@example.com",
        "x_y-z@mail.sub.example.co.uk",
        "o'neil@example.ie",
        "1234567890@example.org",
        "a@b.cd",
    ] {
        let resp = app.signup(email).await;
        let body = expect_json(resp, StatusCode::CREATED).await;
        assert!(body["userId"].is_string(), "{email}: {body}");
        app.mail.wait_for_mail_to(email, 1, WAIT).await;
    }
}

// ---------------------------------------------------------------- ambiguous JSON

#[tokio::test]
async fn duplicate_keys_are_read_the_same_way_every_time() {
    let app = spawn_app().await;
    let body = format!(
        r#"{{"email": "first@example.com", "email": "second@example.com",
            "password": "{PASSWORD}", "confirmPassword": "{PASSWORD}"}}"#
    );

    let first = post_raw(&app, "/users/signup", body.clone()).await;
    let status = first.status();
    assert!(
        status == StatusCode::CREATED || status == StatusCode::BAD_REQUEST,
        "duplicate keys: {status}"
    );
    if status == StatusCode::BAD_REQUEST {
        expect_invalid(first, "duplicate keys").await;
        expect_invalid(post_raw(&app, "/users/signup", body).await, "again").await;
        return;
    }
    expect_json(first, StatusCode::CREATED).await;
    // The last value wins (serde_json), and it is the one that was signed up.
    app.mail
        .wait_for_mail_to("second@example.com", 1, WAIT)
        .await;
    expect_refused(
        post_raw(&app, "/users/signup", body).await,
        StatusCode::CONFLICT,
        "EMAIL_IN_USE",
        "the same body again",
    )
    .await;
    expect_json(app.signup("first@example.com").await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn unknown_fields_and_many_keys_are_harmless() {
    let app = roomy_app().await;
    let mut body = signup_body("many-keys@example.com", PASSWORD);
    for n in 0..20_000 {
        body[format!("k{n}")] = json!(n);
    }
    body["role"] = json!("admin");
    body["active"] = json!(true);

    let resp = app.post("/users/signup", body).await;
    let status = resp.status();
    assert!(
        status.is_client_error() || status == StatusCode::CREATED,
        "{status}"
    );
    if status == StatusCode::CREATED {
        expect_json(resp, status).await;
        let code = app.code_from_mail("many-keys@example.com", 1).await;
        let resp = app
            .patch(
                "/users/activate",
                json!({"email": "many-keys@example.com", "code": code}),
            )
            .await;
        expect_json(resp, StatusCode::OK).await;
        let tokens = app.login("many-keys@example.com").await;
        let me = expect_json(
            app.get_auth("/users/me", &str_field(&tokens, "accessToken"))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(me["user"]["role"], json!("user"), "{me}");
    } else {
        expect_invalid(resp, "many keys").await;
    }
}

#[tokio::test]
async fn a_hostile_referral_code_answers_invalid_referral_code() {
    let app = spawn_app().await;

    for referrer in ["' OR 1=1 --", "%", "_", "ABCDEFGH' --", "\u{0}ABCDEFG"] {
        let mut body = signup_body("referred@example.com", PASSWORD);
        body["referrer"] = json!(referrer);
        let resp = app.post("/users/signup", body).await;
        expect_refused(
            resp,
            StatusCode::BAD_REQUEST,
            "INVALID_REFERRAL_CODE",
            referrer,
        )
        .await;
    }
}

// ---------------------------------------------------------------- paging

#[tokio::test]
async fn out_of_range_paging_on_referred_answers_400() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("pager@example.com").await;

    for query in [
        "limit=-1",
        "offset=-1",
        "limit=0",
        "limit=201",
        "limit=99999999999999999999",
        "offset=99999999999999999999",
        "offset=1000000001",
        "limit=1.5",
        "limit=1e3",
        "limit=abc",
        "limit=",
        "limit=%00",
        "limit=NaN",
    ] {
        let resp = app
            .get_auth(&format!("/users/referred?{query}"), &access)
            .await;
        expect_invalid(resp, query).await;
    }
    for query in ["limit=200", "limit=1&offset=1000000000", ""] {
        let resp = app
            .get_auth(&format!("/users/referred?{query}"), &access)
            .await;
        let body = expect_json(resp, StatusCode::OK).await;
        assert_eq!(body["total"], json!(0), "{query}: {body}");
    }
}

// ---------------------------------------------------------------- headers

#[tokio::test]
async fn hostile_authorization_headers_answer_401() {
    let app = spawn_app().await;
    let long = format!("Bearer {}", "a".repeat(10_000));
    let headers: Vec<Vec<u8>> = vec![
        long.into_bytes(),
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        b"Basic c2FtOnNlY3JldA==".to_vec(),
        b"Bearer a.b.c".to_vec(),
        b"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".to_vec(),
        b"Bearer \xff\xfe".to_vec(),
    ];
    for value in headers {
        let header = reqwest::header::HeaderValue::from_bytes(&value).expect("header bytes");
        let resp = app
            .client
            .get(format!("{}/users/me", app.address))
            .header(reqwest::header::AUTHORIZATION, header)
            .send()
            .await
            .expect("request reaches the server");
        let what = String::from_utf8_lossy(&value[..value.len().min(40)]).into_owned();
        expect_refused(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", &what).await;
    }
}

#[tokio::test]
async fn a_huge_user_agent_is_stored_cut_short() {
    let app = spawn_app().await;
    app.activated_user("agent@example.com").await;

    let resp = app
        .client
        .post(format!("{}/users/login", app.address))
        .header(reqwest::header::USER_AGENT, "U".repeat(8_000))
        .json(&json!({"email": "agent@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("request reaches the server");

    expect_json(resp, StatusCode::OK).await;
}
