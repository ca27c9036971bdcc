//! The pages behind the links in emails: `/verify` and `/reset-password`.
//! Opening a link spends nothing; only the page's form post does, and what
//! the page then shows is what a person reads.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::*;

const NEW_PASSWORD: &str = "a brand new passphrase";

/// A page as a browser gets it: status, headers, HTML.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

async fn page(resp: Response) -> Page {
    Page {
        status: resp.status(),
        headers: resp.headers().clone(),
        html: resp.text().await.expect("body"),
    }
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn assert_shows(&self, text: &str) {
        assert!(
            self.html.contains(text),
            "page lacks {text:?}: {}",
            self.html
        );
    }
}

/// The path and query of the `/verify` or `/reset-password` link in an
/// email, as the browser would request it from this server.
async fn link_in_mail(app: &TestApp, email: &str, nth: usize, path: &str) -> String {
    let mail = app.mail.wait_for_mail_to(email, nth, WAIT).await;
    let text = mail.text_body();
    let link = text
        .split_whitespace()
        .filter_map(|word| url::Url::parse(word).ok())
        .find(|url| url.path() == path)
        .unwrap_or_else(|| panic!("no {path} link in: {text}"));
    assert_eq!(
        link.origin().ascii_serialization(),
        app.config.app_url,
        "links point at SESAME_APP_URL"
    );
    format!("{}?{}", link.path(), link.query().unwrap_or_default())
}

async fn post_form(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Page {
    let resp = app
        .client
        .post(format!("{}{path}", app.address))
        .form(fields)
        .send()
        .await
        .expect("request reaches the server");
    page(resp).await
}

async fn login_status(app: &TestApp, email: &str, password: &str) -> StatusCode {
    app.post(
        "/users/login",
        json!({"email": email, "password": password}),
    )
    .await
    .status()
}

/// Signs up, activates and asks for a reset; returns the reset link.
async fn reset_link(app: &TestApp, email: &str) -> String {
    app.activated_user(email).await;
    let resp = app.patch("/users/forgot", json!({ "email": email })).await;
    expect_json(resp, StatusCode::OK).await;
    link_in_mail(app, email, 2, "/reset-password").await
}

fn token_of(link: &str) -> String {
    url::form_urlencoded::parse(link.split_once('?').map_or("", |(_, q)| q).as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("the link carries a token")
}

// ---------------------------------------------------------------- /verify

#[tokio::test]
async fn opening_the_verification_link_shows_a_button_and_activates_nothing() {
    let app = spawn_app().await;
    expect_json(app.signup("vera@example.com").await, StatusCode::CREATED).await;
    let link = link_in_mail(&app, "vera@example.com", 1, "/verify").await;

    for _ in 0..2 {
        let shown = page(app.get(&link).await).await;
        assert_eq!(shown.status, StatusCode::OK);
        assert!(shown.header("content-type").starts_with("text/html"));
        shown.assert_shows("<form method=\"post\" action=\"verify\">");
        shown.assert_shows("<button type=\"submit\">Activate my account</button>");
        shown.assert_shows("<strong>vera@example.com</strong>");
    }

    assert_eq!(
        login_status(&app, "vera@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "opening the link must not activate the account"
    );
    let code = app.code_from_mail("vera@example.com", 1).await;
    let resp = app
        .patch(
            "/users/activate",
            json!({"email": "vera@example.com", "code": code}),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
}

#[tokio::test]
async fn pressing_the_button_activates_the_account() {
    let app = spawn_app().await;
    expect_json(app.signup("ana@example.com").await, StatusCode::CREATED).await;
    let code = app.code_from_mail("ana@example.com", 1).await;

    let done = post_form(
        &app,
        "/verify",
        &[("email", "ana@example.com"), ("code", &code)],
    )
    .await;

    assert_eq!(done.status, StatusCode::OK, "{}", done.html);
    done.assert_shows("Your account is active. You can now log in.");
    assert_eq!(
        login_status(&app, "ana@example.com", PASSWORD).await,
        StatusCode::OK
    );

    let again = post_form(
        &app,
        "/verify",
        &[("email", "ana@example.com"), ("code", &code)],
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    again.assert_shows("This account is already active.");
}

#[tokio::test]
async fn a_wrong_code_posted_from_the_page_shows_the_problem_and_the_form_again() {
    let app = spawn_app().await;
    expect_json(app.signup("wes@example.com").await, StatusCode::CREATED).await;
    let code = app.code_from_mail("wes@example.com", 1).await;
    let wrong = if code == "000000" { "000001" } else { "000000" };

    let refused = post_form(
        &app,
        "/verify",
        &[("email", "wes@example.com"), ("code", wrong)],
    )
    .await;

    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    refused.assert_shows("role=\"alert\"");
    refused.assert_shows("This code is wrong or has expired.");
    refused.assert_shows("value=\"wes@example.com\"");
    refused.assert_shows("<label for=\"code\">Verification code</label>");
    assert!(
        !refused.html.contains(wrong),
        "the wrong code is not echoed"
    );

    let done = post_form(
        &app,
        "/verify",
        &[("email", "wes@example.com"), ("code", &code)],
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.html);
}

#[tokio::test]
async fn a_link_without_its_fields_asks_for_them() {
    let app = spawn_app().await;
    let shown = page(app.get("/verify").await).await;
    assert_eq!(shown.status, StatusCode::OK);
    shown.assert_shows("<label for=\"email\">Email address</label>");
    shown.assert_shows("<label for=\"code\">Verification code</label>");
}

#[tokio::test]
async fn values_from_the_link_are_escaped_in_the_page() {
    let app = spawn_app().await;
    let shown = page(
        app.get("/verify?email=%3Cscript%3Ealert(1)%3C/script%3E&code=%22%3E%3Cimg%20src=x%3E")
            .await,
    )
    .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(!shown.html.contains("<script>"), "{}", shown.html);
    assert!(!shown.html.contains("\"><img"), "{}", shown.html);
    shown.assert_shows("&lt;script&gt;alert(1)&lt;/script&gt;");
    shown.assert_shows("value=\"&quot;&gt;&lt;img src=x&gt;\"");
}

// ---------------------------------------------------------------- /reset-password

#[tokio::test]
async fn opening_the_reset_link_shows_the_form_and_spends_nothing() {
    let app = spawn_app().await;
    let link = reset_link(&app, "rita@example.com").await;

    for _ in 0..2 {
        let shown = page(app.get(&link).await).await;
        assert_eq!(shown.status, StatusCode::OK);
        shown.assert_shows("<form method=\"post\" action=\"reset-password\">");
        shown.assert_shows("<label for=\"new-password\">New password</label>");
        shown.assert_shows("<label for=\"confirm-password\">Confirm new password</label>");
        shown.assert_shows("autocomplete=\"new-password\"");
    }

    let token = token_of(&link);
    let resp = app
        .patch(
            "/users/reset",
            json!({"token": token, "newPassword": NEW_PASSWORD, "confirmPassword": NEW_PASSWORD}),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
}

#[tokio::test]
async fn a_common_password_on_the_reset_page_shows_the_policy_message_and_keeps_the_token() {
    let app = spawn_app().await;
    let token = token_of(&reset_link(&app, "pat@example.com").await);

    let refused = post_form(
        &app,
        "/reset-password",
        &[
            ("token", &token),
            ("newPassword", "password123"),
            ("confirmPassword", "password123"),
        ],
    )
    .await;

    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    refused.assert_shows("The new password is too easy to guess");
    refused.assert_shows(&format!("name=\"token\" value=\"{token}\""));
    assert!(
        !refused.html.contains("password123"),
        "passwords are never echoed"
    );

    let done = post_form(
        &app,
        "/reset-password",
        &[
            ("token", &token),
            ("newPassword", NEW_PASSWORD),
            ("confirmPassword", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.html);
    done.assert_shows("Your password has been changed");
    assert_eq!(
        login_status(&app, "pat@example.com", NEW_PASSWORD).await,
        StatusCode::OK
    );
    assert_eq!(
        login_status(&app, "pat@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn mismatched_passwords_on_the_reset_page_are_named_plainly() {
    let app = spawn_app().await;
    let token = token_of(&reset_link(&app, "mia@example.com").await);

    let refused = post_form(
        &app,
        "/reset-password",
        &[
            ("token", &token),
            ("newPassword", NEW_PASSWORD),
            ("confirmPassword", "something else entirely"),
        ],
    )
    .await;

    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    refused.assert_shows("The two passwords do not match.");
}

#[tokio::test]
async fn a_spent_reset_token_on_the_page_asks_for_a_new_one() {
    let app = spawn_app().await;
    let token = token_of(&reset_link(&app, "sid@example.com").await);
    let fields = [
        ("token", token.as_str()),
        ("newPassword", NEW_PASSWORD),
        ("confirmPassword", NEW_PASSWORD),
    ];
    assert_eq!(
        post_form(&app, "/reset-password", &fields).await.status,
        StatusCode::OK
    );

    let again = post_form(&app, "/reset-password", &fields).await;

    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    again.assert_shows("This reset link is invalid, has expired or was already used.");
    again.assert_shows("<label for=\"email\">Email address</label>");
}

#[tokio::test]
async fn without_a_token_the_reset_page_emails_a_new_link() {
    let app = spawn_app().await;
    app.activated_user("lou@example.com").await;

    let shown = page(app.get("/reset-password").await).await;
    assert_eq!(shown.status, StatusCode::OK);
    shown.assert_shows("<button type=\"submit\">Email me a reset link</button>");

    let sent = post_form(&app, "/reset-password", &[("email", "Lou@Example.com")]).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.html);
    sent.assert_shows("a link to choose a new password is on its way");
    let link = link_in_mail(&app, "lou@example.com", 2, "/reset-password").await;
    assert!(!token_of(&link).is_empty());

    let unknown = post_form(&app, "/reset-password", &[("email", "nobody@example.com")]).await;
    assert_eq!(
        unknown.status,
        StatusCode::OK,
        "same answer for unknown addresses"
    );
    assert_eq!(unknown.html, sent.html);

    let malformed = post_form(&app, "/reset-password", &[("email", "not an address")]).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    malformed.assert_shows("That does not look like an email address.");
}

// ---------------------------------------------------------------- headers and routing

#[tokio::test]
async fn pages_carry_a_strict_policy_and_are_neither_cached_nor_referred() {
    let app = spawn_app().await;
    let pages = [
        page(app.get("/verify?email=a%40example.com&code=123456").await).await,
        page(app.get("/reset-password?token=abc").await).await,
        post_form(
            &app,
            "/verify",
            &[("email", "a@example.com"), ("code", "1")],
        )
        .await,
        post_form(&app, "/reset-password", &[("token", "abc")]).await,
    ];
    for shown in pages {
        assert!(shown.header("content-type").starts_with("text/html"));
        assert_eq!(shown.header("cache-control"), "no-store");
        assert_eq!(shown.header("referrer-policy"), "no-referrer");
        assert_eq!(shown.header("x-content-type-options"), "nosniff");
        let csp = shown.header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{directive} missing from {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(!shown.html.contains("<script"), "pages carry no scripts");
        // The policy allows the page's own stylesheet, by its hash, and nothing else.
        let style = shown
            .html
            .split_once("<style>")
            .and_then(|(_, rest)| rest.split_once("</style>"))
            .map(|(css, _)| css)
            .expect("the page has its stylesheet");
        let hash = STANDARD.encode(Sha256::digest(style.as_bytes()));
        assert!(csp.contains(&format!("style-src 'sha256-{hash}'")), "{csp}");
    }
}

#[tokio::test]
async fn other_methods_on_the_pages_answer_405_with_an_allow_header() {
    let app = spawn_app().await;
    for path in ["/verify", "/reset-password"] {
        let resp = app.request(Method::PUT, path, None, None).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let allow = resp
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(allow, "GET, HEAD, POST", "{path}");
        expect_error(resp, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    }
}

#[tokio::test]
async fn the_pages_stay_out_of_the_openapi_document() {
    let app = spawn_app().await;
    let spec = expect_json(app.get("/openapi.json").await, StatusCode::OK).await;
    assert!(spec["paths"]["/verify"].is_null());
    assert!(spec["paths"]["/reset-password"].is_null());
}
