//! Access and refresh tokens: rotation, theft detection, expiry, the
//! published keys, and what forged or foreign tokens get.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame::config::JwtSigning;
use sesame::domain::secret::Secret;

use crate::support::*;

/// The shared secret of the HS256 apps below (at least 32 characters).
const HS_SECRET: &str = "a shared secret that is long enough for HS256 signing";

/// Decodes one base64url JSON part of a JWT (0: header, 1: claims).
fn jwt_part(token: &str, index: usize) -> Value {
    let part = token
        .split('.')
        .nth(index)
        .unwrap_or_else(|| panic!("not a JWT: {token}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_else(|e| panic!("JWT part {index} is not base64url ({e}): {token}"));
    serde_json::from_slice(&bytes).expect("JWT part is JSON")
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("serializable"))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Refreshes and returns the new (access, refresh) pair.
async fn refreshed_pair(app: &TestApp, refresh_token: &str) -> (String, String) {
    let body = expect_json(app.api.refresh(refresh_token).await, StatusCode::OK).await;
    assert_eq!(body["tokenType"], json!("Bearer"), "{body}");
    (
        str_field(&body, "accessToken"),
        str_field(&body, "refreshToken"),
    )
}

async fn expect_spent(app: &TestApp, refresh_token: &str) {
    expect_error(
        app.api.refresh(refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_TOKEN",
    )
    .await;
}

async fn expect_me_ok(app: &TestApp, access: &str) -> Value {
    expect_json(app.api.me(access).await, StatusCode::OK).await
}

async fn expect_me_refused(app: &TestApp, access: &str) {
    expect_401(app.api.me(access).await, "UNAUTHORIZED").await;
}

async fn jwks(app: &TestApp) -> Value {
    let resp = app.api.jwks().await;
    expect_json(resp, StatusCode::OK).await
}

// ---------------------------------------------------------------- refresh

#[tokio::test]
async fn refreshing_rotates_the_pair_and_spends_the_old_refresh_token() {
    let app = spawn_app().await;
    let (access, first_refresh) = app.logged_in_user("sam@example.com").await;

    let (new_access, new_refresh) = refreshed_pair(&app, &first_refresh).await;

    assert_ne!(new_refresh, first_refresh);
    assert_ne!(new_access, access);
    assert_eq!(jwt_part(&new_access, 1)["sid"], jwt_part(&access, 1)["sid"]);
    expect_me_ok(&app, &new_access).await;
    // The new refresh token rotates in turn.
    let (third_access, _) = refreshed_pair(&app, &new_refresh).await;
    expect_me_ok(&app, &third_access).await;
}

#[tokio::test]
async fn a_spent_refresh_token_presented_after_the_grace_window_revokes_the_session() {
    let app = spawn_app_with(|config| config.refresh_reuse_grace = Duration::ZERO).await;
    let (first_access, first_refresh) = app.logged_in_user("sam@example.com").await;
    let (newest_access, newest_refresh) = refreshed_pair(&app, &first_refresh).await;
    expect_me_ok(&app, &newest_access).await;

    expect_spent(&app, &first_refresh).await;

    // Theft detection: everything of that session dies, the thief's and the victim's.
    expect_spent(&app, &newest_refresh).await;
    expect_me_refused(&app, &newest_access).await;
    expect_me_refused(&app, &first_access).await;
}

#[tokio::test]
async fn theft_detection_leaves_the_users_other_sessions_alone() {
    let app = spawn_app_with(|config| config.refresh_reuse_grace = Duration::ZERO).await;
    let (_, stolen) = app.logged_in_user("sam@example.com").await;
    let other = app.login("sam@example.com").await;
    refreshed_pair(&app, &stolen).await;

    expect_spent(&app, &stolen).await;

    expect_me_ok(&app, &str_field(&other, "accessToken")).await;
    refreshed_pair(&app, &str_field(&other, "refreshToken")).await;
}

#[tokio::test]
async fn a_spent_refresh_token_presented_within_the_grace_window_gets_a_pair_for_the_same_session()
{
    let app = spawn_app().await;
    assert_eq!(app.config.refresh_reuse_grace, Duration::from_secs(10));
    let (access, first_refresh) = app.logged_in_user("sam@example.com").await;

    // Two tabs refresh with the same token.
    let (tab_a_access, tab_a_refresh) = refreshed_pair(&app, &first_refresh).await;
    let (tab_b_access, tab_b_refresh) = refreshed_pair(&app, &first_refresh).await;

    assert_ne!(tab_a_refresh, tab_b_refresh);
    let sid = jwt_part(&access, 1)["sid"].clone();
    assert!(sid.is_string(), "no sid claim in {access}");
    assert_eq!(jwt_part(&tab_a_access, 1)["sid"], sid);
    assert_eq!(jwt_part(&tab_b_access, 1)["sid"], sid);
    expect_me_ok(&app, &tab_a_access).await;
    expect_me_ok(&app, &tab_b_access).await;
    // Both successors keep working: neither tab is logged out.
    let (a, _) = refreshed_pair(&app, &tab_a_refresh).await;
    let (b, _) = refreshed_pair(&app, &tab_b_refresh).await;
    expect_me_ok(&app, &a).await;
    expect_me_ok(&app, &b).await;
}

#[tokio::test]
async fn an_unknown_refresh_token_is_invalid() {
    let app = spawn_app().await;
    app.logged_in_user("sam@example.com").await;

    expect_spent(&app, "not a refresh token").await;
    expect_spent(&app, &URL_SAFE_NO_PAD.encode([7u8; 32])).await;
}

// ---------------------------------------------------------------- expiry

#[tokio::test]
async fn an_access_token_past_its_lifetime_is_answered_token_expired() {
    let app = spawn_app_with(|config| config.access_token_ttl = Duration::from_secs(1)).await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    let tokens = app.login("sam@example.com").await;
    assert_eq!(tokens["expiresIn"], json!(1), "{tokens}");
    let access_two = str_field(&tokens, "accessToken");
    let claims = jwt_part(&access_two, 1);
    assert_eq!(
        claims["exp"].as_i64(),
        claims["iat"].as_i64().map(|t| t + 1)
    );
    expect_me_ok(&app, &access_two).await;

    let deadline = tokio::time::Instant::now() + WAIT;
    let resp = loop {
        let resp = app.api.me(&access).await;
        if resp.status() != StatusCode::OK {
            break resp;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a 1-second access token still works after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    expect_401(resp, "TOKEN_EXPIRED").await;
}

// ---------------------------------------------------------------- keys

#[tokio::test]
async fn the_jwks_publishes_one_ed25519_key_named_in_the_token_header() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;

    let jwks = jwks(&app).await;

    let keys = jwks["keys"].as_array().expect("`keys` array");
    assert_eq!(keys.len(), 1, "{jwks}");
    let key = &keys[0];
    assert_eq!(key["kty"], json!("OKP"), "{jwks}");
    assert_eq!(key["crv"], json!("Ed25519"), "{jwks}");
    assert_eq!(key["alg"], json!("EdDSA"), "{jwks}");
    let kid = str_field(key, "kid");
    assert!(!kid.is_empty(), "{jwks}");
    let x = URL_SAFE_NO_PAD
        .decode(str_field(key, "x"))
        .expect("`x` is base64url");
    assert_eq!(x.len(), 32, "an Ed25519 public key has 32 bytes: {jwks}");
    assert!(key.get("d").is_none(), "the JWKS leaks the private key");
    let header = jwt_part(&access, 0);
    assert_eq!(header["alg"], json!("EdDSA"), "{header}");
    assert_eq!(header["kid"], json!(kid), "{header}");
}

#[tokio::test]
async fn a_token_verifies_with_the_published_key_and_carries_the_documented_claims() {
    let app = spawn_app().await;
    let signup = app.activated_user("sam@example.com").await;
    let access = str_field(&app.login("sam@example.com").await, "accessToken");
    let jwks = jwks(&app).await;
    let x = str_field(&jwks["keys"][0], "x");

    let key = DecodingKey::from_ed_components(&x).expect("an Ed25519 key");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[&app.config.jwt_audience]);
    validation.set_issuer(&[&app.config.public_url]);
    let claims = jsonwebtoken::decode::<Value>(&access, &key, &validation)
        .expect("the published key verifies the token")
        .claims;

    assert_eq!(claims["sub"], signup["userId"], "{claims}");
    assert_eq!(claims["aud"], json!("sesame"), "{claims}");
    assert_eq!(claims["iss"], json!(app.config.public_url), "{claims}");
    assert_eq!(claims["role"], json!("user"), "{claims}");
    for name in ["sid", "jti"] {
        assert!(
            claims[name].as_str().is_some_and(|s| !s.is_empty()),
            "{claims}"
        );
    }
    let (iat, nbf, exp) = (
        claims["iat"].as_i64().expect("iat"),
        claims["nbf"].as_i64().expect("nbf"),
        claims["exp"].as_i64().expect("exp"),
    );
    assert!(nbf <= iat && iat <= now(), "{claims}");
    assert_eq!(exp - iat, 900, "{claims}");
    // A tampered payload does not verify with that key.
    let mut forged = jwt_part(&access, 1);
    forged["role"] = json!("admin");
    let parts: Vec<&str> = access.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], encode_part(&forged), parts[2]);
    assert!(jsonwebtoken::decode::<Value>(&tampered, &key, &validation).is_err());
    expect_me_refused(&app, &tampered).await;
}

#[tokio::test]
async fn an_unsigned_token_with_alg_none_is_refused() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    let header = jwt_part(&access, 0);
    let claims = jwt_part(&access, 1);

    let none_header = json!({"alg": "none", "typ": "JWT", "kid": header["kid"]});
    let unsigned = format!("{}.{}.", encode_part(&none_header), encode_part(&claims));
    expect_me_refused(&app, &unsigned).await;
    let lowercase = json!({"alg": "None", "typ": "JWT", "kid": header["kid"]});
    let unsigned = format!("{}.{}.", encode_part(&lowercase), encode_part(&claims));
    expect_me_refused(&app, &unsigned).await;

    // The claims themselves are fine: the original token still works.
    expect_me_ok(&app, &access).await;
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_public_key_is_refused() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    let jwks = jwks(&app).await;
    let kid = str_field(&jwks["keys"][0], "kid");
    let x = str_field(&jwks["keys"][0], "x");
    let raw = URL_SAFE_NO_PAD.decode(&x).expect("base64url");
    let claims = jwt_part(&access, 1);

    // Algorithm confusion: the public key, in every form an attacker may try, as HMAC secret.
    for secret in [raw.as_slice(), x.as_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let forged = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret))
            .expect("sign");
        expect_me_refused(&app, &forged).await;
    }
    expect_me_ok(&app, &access).await;
}

#[tokio::test]
async fn a_token_issued_by_another_sesame_is_refused() {
    let ours = spawn_app().await;
    let theirs = spawn_app().await;
    theirs.activated_user("sam@example.com").await;
    let foreign = str_field(&theirs.login("sam@example.com").await, "accessToken");
    expect_me_ok(&theirs, &foreign).await;
    // Even for an account of the same address on our side.
    ours.activated_user("sam@example.com").await;

    expect_me_refused(&ours, &foreign).await;
}

#[tokio::test]
async fn the_signing_key_survives_a_restart() {
    let app = spawn_app().await;
    let (access, refresh_token) = app.logged_in_user("sam@example.com").await;
    let before = jwks(&app).await;

    let app = app.restart_with(|_| {}).await;

    assert_eq!(jwks(&app).await, before);
    expect_me_ok(&app, &access).await;
    let (new_access, _) = refreshed_pair(&app, &refresh_token).await;
    assert_eq!(jwt_part(&new_access, 0)["kid"], jwt_part(&access, 0)["kid"]);
}

// ---------------------------------------------------------------- HS256 mode

async fn spawn_hs256_app() -> TestApp {
    spawn_app_with(|config| config.jwt = JwtSigning::Hs256(Secret::new(HS_SECRET.to_owned()))).await
}

/// An HS256 app with a logged-in user: the app, the access token, its claims.
async fn hs256_app_with_token() -> (TestApp, String, Value) {
    let app = spawn_hs256_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;
    let claims = jwt_part(&access, 1);
    (app, access, claims)
}

/// Signs `claims` with the app's shared secret and the header sesame uses.
fn sign_hs256(access: &str, claims: &Value) -> String {
    let original: Header = serde_json::from_value(jwt_part(access, 0)).expect("a JWT header");
    assert_eq!(original.alg, Algorithm::HS256);
    jsonwebtoken::encode(
        &original,
        claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .expect("sign")
}

#[tokio::test]
async fn in_hs256_mode_the_jwks_is_empty_and_login_works() {
    let app = spawn_hs256_app().await;
    let signup = app.activated_user("sam@example.com").await;

    let jwks = jwks(&app).await;
    assert_eq!(jwks, json!({"keys": []}));

    let access = str_field(&app.login("sam@example.com").await, "accessToken");
    assert_eq!(jwt_part(&access, 0)["alg"], json!("HS256"));
    let me = expect_me_ok(&app, &access).await;
    assert_eq!(me["user"]["userId"], signup["userId"], "{me}");
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[&app.config.jwt_audience]);
    validation.set_issuer(&[&app.config.public_url]);
    let verified = jsonwebtoken::decode::<Value>(
        &access,
        &DecodingKey::from_secret(HS_SECRET.as_bytes()),
        &validation,
    );
    assert!(verified.is_ok(), "{verified:?}");
}

#[tokio::test]
async fn a_token_we_sign_with_the_shared_secret_and_the_right_claims_is_accepted() {
    // The control for the forgeries below: signing from the test works.
    let (app, access, mut claims) = hs256_app_with_token().await;
    claims["jti"] = json!(uuid::Uuid::now_v7().to_string());

    let resigned = sign_hs256(&access, &claims);

    assert_ne!(resigned, access);
    expect_me_ok(&app, &resigned).await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let (app, access, mut claims) = hs256_app_with_token().await;
    claims["aud"] = json!("another-service");

    expect_me_refused(&app, &sign_hs256(&access, &claims)).await;
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let (app, access, mut claims) = hs256_app_with_token().await;
    claims["iss"] = json!("https://evil.example");

    expect_me_refused(&app, &sign_hs256(&access, &claims)).await;
}

#[tokio::test]
async fn a_token_not_valid_before_a_future_time_is_refused() {
    let (app, access, mut claims) = hs256_app_with_token().await;
    claims["nbf"] = json!(now() + 3600);
    claims["iat"] = json!(now() + 3600);
    claims["exp"] = json!(now() + 7200);

    expect_me_refused(&app, &sign_hs256(&access, &claims)).await;
}

#[tokio::test]
async fn a_validly_signed_token_for_an_unknown_session_is_refused() {
    let (app, access, mut claims) = hs256_app_with_token().await;
    claims["sid"] = json!(uuid::Uuid::now_v7().to_string());

    expect_me_refused(&app, &sign_hs256(&access, &claims)).await;
}

#[tokio::test]
async fn a_validly_signed_token_naming_another_user_for_the_session_is_refused() {
    let (app, access, mut claims) = hs256_app_with_token().await;
    let other = app.activated_user("kim@example.com").await;
    claims["sub"] = other["userId"].clone();

    expect_me_refused(&app, &sign_hs256(&access, &claims)).await;
}

#[tokio::test]
async fn a_validly_signed_token_past_its_expiry_is_answered_token_expired() {
    let (app, access, mut claims) = hs256_app_with_token().await;
    claims["iat"] = json!(now() - 7200);
    claims["nbf"] = json!(now() - 7200);
    claims["exp"] = json!(now() - 3600);

    expect_401(
        app.api.me(&sign_hs256(&access, &claims)).await,
        "TOKEN_EXPIRED",
    )
    .await;
}

#[tokio::test]
async fn token_checks_keep_answering_while_writes_go_on_and_a_revocation_counts_at_once() {
    // The session read runs on the request's thread, next to a writer that
    // is busy with refreshes, logins and logouts: no check may fail.
    let app = std::sync::Arc::new(spawn_app().await);
    let (access, refresh_token) = app.logged_in_user("busy@example.com").await;
    app.activated_user("writer@example.com").await;

    let writer = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut refresh_token = refresh_token;
            for _ in 0..20 {
                let (_, next) = refreshed_pair(&app, &refresh_token).await;
                refresh_token = next;
                let other = str_field(&app.login("writer@example.com").await, "accessToken");
                // Used once (so its signature verdict is remembered), then revoked.
                expect_me_ok(&app, &other).await;
                expect_json(app.api.logout(&other, None).await, StatusCode::OK).await;
                expect_me_refused(&app, &other).await;
            }
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (app, access) = (app.clone(), access.clone());
            tokio::spawn(async move {
                for _ in 0..100 {
                    expect_me_ok(&app, &access).await;
                }
            })
        })
        .collect();
    writer.await.expect("writer");
    for reader in readers {
        reader.await.expect("reader");
    }
}
