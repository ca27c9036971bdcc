//! Passkeys (WebAuthn): adding them to the signed-in account, listing and
//! removing them, and logging in with one.
//!
//! Each ceremony has two calls. `…/start` answers `challengeId` and
//! `publicKey`: the options for `navigator.credentials.create()` (register)
//! or `.get()` (login), in their JSON form (binary fields base64url, as
//! `PublicKeyCredential.parseCreationOptionsFromJSON()` /
//! `parseRequestOptionsFromJSON()` take them). `…/finish` takes
//! `challengeId` and `credential`: the `PublicKeyCredential` the browser
//! returned, in its JSON form (`credential.toJSON()`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::Value;

use super::auth::TokenResponse;
use super::bearer::BearerAuth;
use super::me::AuthErrors;
use super::shared::{ApiTags, MessageResponse, State};
use super::text::{ChallengeId, Email, PasskeyName, Password, SecondFactor, Text, Token};
use crate::domain::passkey::PasskeyInfo;
use crate::error_responses;
use crate::flows::passkey_step;
use crate::flows::passkeys::{self, Started};
use crate::flows::sessions::ClientInfo;
use crate::http::rate_limits::ClientIp;

/// Passkeys of the signed-in user, and logging in with one.
pub struct PasskeysApi;

/// A JSON object, passed through as it is.
pub type JsonObject = BTreeMap<String, Value>;

/// The password (and, with two-factor authentication on, a code), to
/// confirm a change to the account's passkeys.
#[derive(Object)]
pub struct PasskeyPasswordBody {
    /// The account's password.
    pub password: Text<Password>,
    /// With two-factor authentication on: a 6-digit code from the
    /// authenticator app, or an unused recovery code (else `400 MFA_CODE_REQUIRED`).
    #[oai(nullable)]
    pub code: Option<Text<SecondFactor>>,
}

/// The new passkey, as the authenticator made it.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RegisterFinishBody {
    /// `challengeId` from `POST /users/me/passkeys/register/start`.
    pub challenge_id: Text<ChallengeId>,
    /// The `PublicKeyCredential` from `navigator.credentials.create()`, as
    /// `credential.toJSON()` gives it: `{id, rawId, type, response:
    /// {clientDataJSON, attestationObject, transports}, clientExtensionResults}`,
    /// binary fields base64url.
    pub credential: JsonObject,
    /// A name to tell it apart, e.g. "Laptop"; HTML is stripped; default
    /// "Passkey".
    #[oai(nullable)]
    pub name: Option<Text<PasskeyName>>,
}

/// Whose passkeys to offer at login.
#[derive(Object)]
pub struct LoginStartBody {
    /// Leave out (or `null`) for a login without an address: any passkey
    /// made for this site may answer, and it names the account. With an
    /// address, that account's passkeys are offered; the answer has the
    /// same shape whether or not the address has an account or passkeys.
    #[oai(nullable)]
    pub email: Option<Text<Email>>,
}

/// The second step of a login, to be finished with a passkey.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SecondStepStartBody {
    /// The `mfaToken` of the `403 MFA_REQUIRED` answer to the password.
    pub mfa_token: Text<Token>,
}

/// The assertion that answers a login challenge.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct LoginFinishBody {
    /// `challengeId` from `POST /users/login/passkey/start`.
    pub challenge_id: Text<ChallengeId>,
    /// The `PublicKeyCredential` from `navigator.credentials.get()`, as
    /// `credential.toJSON()` gives it: `{id, rawId, type, response:
    /// {clientDataJSON, authenticatorData, signature, userHandle},
    /// clientExtensionResults}`, binary fields base64url.
    pub credential: JsonObject,
}

/// A started ceremony.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ChallengeResponse {
    /// Always `true`.
    pub success: bool,
    /// What to do next.
    pub message: String,
    /// Send it back with the credential; single use, valid 5 minutes.
    pub challenge_id: String,
    /// The options for the authenticator: `PublicKeyCredentialCreationOptions`
    /// (register) or `PublicKeyCredentialRequestOptions` (login) in their
    /// JSON form, binary fields (`challenge`, `user.id`, credential `id`s)
    /// base64url without padding.
    pub public_key: JsonObject,
}

/// A passkey of the account.
#[derive(Object)]
#[oai(rename_all = "camelCase", rename = "Passkey")]
pub struct PasskeyView {
    /// Id of the passkey (for `DELETE /users/me/passkeys/{passkeyId}`).
    pub passkey_id: String,
    /// Its name.
    pub name: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it last logged in; `null` if never.
    #[oai(nullable)]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<PasskeyInfo> for PasskeyView {
    fn from(p: PasskeyInfo) -> Self {
        PasskeyView {
            passkey_id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

/// A passkey that was added.
#[derive(Object)]
pub struct PasskeyCreated {
    /// Always `true`.
    pub success: bool,
    /// What happened.
    pub message: String,
    // A plain comment: a doc comment would wrap the `$ref` in `allOf`
    // (see `ErrorBody::code`). The new passkey.
    pub passkey: PasskeyView,
}

/// Answer to a finished registration.
#[derive(ApiResponse)]
pub enum PasskeyCreatedResponse {
    /// The passkey was added; the account was told by email.
    #[oai(status = 201)]
    Created(Json<PasskeyCreated>),
}

/// The account's passkeys.
#[derive(Object)]
pub struct PasskeysResponse {
    /// Always `true`.
    pub success: bool,
    /// Oldest first.
    pub passkeys: Vec<PasskeyView>,
}

error_responses!(
    /// Errors of starting a registration.
    RegisterStartErrors {
        400 => "`MFA_CODE_REQUIRED` (two-factor authentication is on and no `code` was sent), `INVALID_CODE` (a wrong or used code, or the daily budget of wrong codes spent), or `VALIDATION_FAILED`: missing fields or malformed JSON.",
        401 => "`INVALID_CREDENTIALS` (wrong password), or `UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        404 => "`NOT_FOUND`: passkeys are off on this server (no `SESAME_WEBAUTHN_RP_ID`, and `SESAME_APP_URL` has no domain name).",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`ACCOUNT_LOCKED`: too many wrong passwords or codes (here or at login); `Retry-After` says for how long.",
        500 => "`INTERNAL_ERROR`.",
        503 => "`BUSY`: more password checks are waiting than the server runs in about a second; or `STORAGE_UNAVAILABLE`: the database cannot take writes right now (nothing was changed). Retry after `Retry-After` seconds.",
    }
);

error_responses!(
    /// Errors of finishing a registration.
    RegisterFinishErrors {
        400 => "`INVALID_CREDENTIAL`: the credential does not verify (another origin or RP ID, no user verification, another challenge, malformed), is registered already, or the challenge is unknown, used or expired (start again); or `VALIDATION_FAILED` (a name over 64 characters, malformed JSON).",
        401 => "`UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        404 => "`NOT_FOUND`: passkeys are off on this server.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of removing a passkey.
    DeletePasskeyErrors {
        400 => "`MFA_CODE_REQUIRED` (two-factor authentication is on and no `code` was sent), `INVALID_CODE` (a wrong or used code, or the daily budget of wrong codes spent), or `VALIDATION_FAILED`: missing fields or malformed JSON.",
        401 => "`INVALID_CREDENTIALS` (wrong password), or `UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        404 => "`NOT_FOUND`: the account has no passkey with this id.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`ACCOUNT_LOCKED`: too many wrong passwords or codes (here or at login); `Retry-After` says for how long.",
        500 => "`INTERNAL_ERROR`.",
        503 => "`BUSY`: more password checks are waiting than the server runs in about a second; or `STORAGE_UNAVAILABLE`: the database cannot take writes right now (nothing was changed). Retry after `Retry-After` seconds.",
    }
);

error_responses!(
    /// Errors of starting a passkey login.
    LoginStartErrors {
        400 => "`VALIDATION_FAILED`: malformed JSON.",
        404 => "`NOT_FOUND`: passkeys are off on this server.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`RATE_LIMITED`: too many requests from this network; `Retry-After` says for how long.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of finishing a passkey login.
    LoginFinishErrors {
        400 => "`VALIDATION_FAILED`: missing fields or malformed JSON.",
        401 => "`INVALID_CREDENTIALS`: the credential does not verify (another origin or RP ID, no user verification, a bad signature, a passkey not of the address given, a signature counter that went backwards: the owner is emailed), is not a registered passkey, or the challenge is unknown, used or expired. One answer for all.",
        403 => "`ACCOUNT_DISABLED`, or `EMAIL_NOT_VERIFIED`.",
        404 => "`NOT_FOUND`: passkeys are off on this server.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`RATE_LIMITED`: too many requests from this network; `Retry-After` says for how long.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of starting a passkey as a login's second step.
    SecondStepStartErrors {
        400 => "`VALIDATION_FAILED`: missing fields or malformed JSON.",
        401 => "`INVALID_TOKEN`: `mfaToken` is unknown, expired (5 minutes), used, or void after five wrong codes: log in again.",
        404 => "`NOT_FOUND`: the account has no passkey (`methods` did not list `passkey`), or passkeys are off on this server.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`RATE_LIMITED`: too many requests from this network; `Retry-After` says for how long.",
        500 => "`INTERNAL_ERROR`.",
    }
);

fn challenge(message: &str, started: Started) -> Json<ChallengeResponse> {
    let public_key = match started.public_key {
        Value::Object(map) => map.into_iter().collect(),
        // The options always serialize to an object.
        _ => JsonObject::new(),
    };
    Json(ChallengeResponse {
        success: true,
        message: message.into(),
        challenge_id: started.challenge_id,
        public_key,
    })
}

fn object(map: &JsonObject) -> Value {
    Value::Object(map.clone().into_iter().collect())
}

#[OpenApi(tag = "ApiTags::Me")]
impl PasskeysApi {
    /// Start adding a passkey
    ///
    /// Needs the password (checked like a login: wrong ones count towards
    /// the lockout) and, with two-factor authentication on, a `code`. Answers the options for `navigator.credentials.create()`:
    /// a discoverable credential with user verification, for this site's
    /// RP ID, excluding the account's passkeys. Finish within 5 minutes with
    /// `POST /users/me/passkeys/register/finish`.
    #[oai(
        path = "/users/me/passkeys/register/start",
        method = "post",
        operation_id = "startPasskeyRegistration"
    )]
    async fn register_start(
        &self,
        state: State<'_>,
        client_ip: Data<&ClientIp>,
        auth: BearerAuth,
        body: Json<PasskeyPasswordBody>,
    ) -> Result<Json<ChallengeResponse>, RegisterStartErrors> {
        let network = client_ip.network(state.config.ipv6_prefix_len);
        let started = passkeys::start_registration(
            &state,
            &auth.0,
            network,
            &body.password,
            body.code.as_deref(),
        )
        .await?;
        Ok(challenge(
            "Create the passkey with these options, then send it to /users/me/passkeys/register/finish.",
            started,
        ))
    }

    /// Finish adding a passkey
    ///
    /// Verifies the new credential (origin, RP ID, user verification, the
    /// challenge) and adds it to the account; the account is told by email.
    /// The challenge is spent, whatever the outcome.
    #[oai(
        path = "/users/me/passkeys/register/finish",
        method = "post",
        operation_id = "finishPasskeyRegistration"
    )]
    async fn register_finish(
        &self,
        state: State<'_>,
        auth: BearerAuth,
        body: Json<RegisterFinishBody>,
    ) -> Result<PasskeyCreatedResponse, RegisterFinishErrors> {
        let passkey = passkeys::finish_registration(
            &state,
            &auth.0,
            &body.challenge_id,
            object(&body.credential),
            body.name.as_deref(),
        )
        .await?;
        Ok(PasskeyCreatedResponse::Created(Json(PasskeyCreated {
            success: true,
            message: "Passkey added.".into(),
            passkey: passkey.into(),
        })))
    }

    /// My passkeys
    #[oai(
        path = "/users/me/passkeys",
        method = "get",
        operation_id = "listPasskeys"
    )]
    async fn list(
        &self,
        state: State<'_>,
        auth: BearerAuth,
    ) -> Result<Json<PasskeysResponse>, AuthErrors> {
        let passkeys = passkeys::list(&state, &auth.0).await?;
        Ok(Json(PasskeysResponse {
            success: true,
            passkeys: passkeys.into_iter().map(Into::into).collect(),
        }))
    }

    /// Remove a passkey
    ///
    /// Needs the password and, with two-factor authentication on, a `code`.
    /// The passkey stops working at once; the account is told by email.
    #[oai(
        path = "/users/me/passkeys/:passkeyId",
        method = "delete",
        operation_id = "deletePasskey"
    )]
    async fn delete(
        &self,
        state: State<'_>,
        client_ip: Data<&ClientIp>,
        auth: BearerAuth,
        /// Id of the passkey, from `GET /users/me/passkeys`.
        #[oai(name = "passkeyId")]
        passkey_id: Path<String>,
        body: Json<PasskeyPasswordBody>,
    ) -> Result<Json<MessageResponse>, DeletePasskeyErrors> {
        let network = client_ip.network(state.config.ipv6_prefix_len);
        passkeys::delete(
            &state,
            &auth.0,
            network,
            &body.password,
            body.code.as_deref(),
            &passkey_id,
        )
        .await?;
        Ok(Json(MessageResponse::new("Passkey removed.")))
    }
}

/// Logging in with a passkey.
pub struct PasskeyLoginApi;

#[OpenApi(tag = "ApiTags::Auth")]
impl PasskeyLoginApi {
    /// Start a passkey login
    ///
    /// Answers the options for `navigator.credentials.get()`, with user
    /// verification required. Without `email`, any passkey made for this
    /// site may answer (the browser lets the user pick an account). With
    /// `email`, that account's passkeys are offered; an address without
    /// passkeys or without an account gets an answer of the same shape.
    /// Finish within 5 minutes with `POST /users/login/passkey/finish`.
    #[oai(
        path = "/users/login/passkey/start",
        method = "post",
        operation_id = "startPasskeyLogin"
    )]
    async fn login_start(
        &self,
        state: State<'_>,
        body: Json<LoginStartBody>,
    ) -> Result<Json<ChallengeResponse>, LoginStartErrors> {
        let started = passkeys::start_login(&state, body.email.as_deref()).await?;
        Ok(challenge(
            "Sign the challenge with a passkey, then send it to /users/login/passkey/finish.",
            started,
        ))
    }

    /// Log in: a passkey as the second step
    ///
    /// After `POST /users/login` answered `403 MFA_REQUIRED` with
    /// `"passkey"` in `methods`, answers the options for
    /// `navigator.credentials.get()` offering the account's passkeys (asking
    /// again replaces them). Send the credential with the `mfaToken` to
    /// `POST /users/login/mfa` within 5 minutes.
    #[oai(
        path = "/users/login/mfa/passkey/start",
        method = "post",
        operation_id = "startPasskeySecondStep"
    )]
    async fn second_step_start(
        &self,
        state: State<'_>,
        body: Json<SecondStepStartBody>,
    ) -> Result<Json<ChallengeResponse>, SecondStepStartErrors> {
        let started = passkey_step::start(&state, &body.mfa_token).await?;
        Ok(challenge(
            "Sign the challenge with a passkey, then send it with the mfaToken to /users/login/mfa.",
            started,
        ))
    }

    /// Finish a passkey login
    ///
    /// Verifies the assertion (origin, RP ID, user verification, signature,
    /// the challenge, a signature counter that moves forward) against the
    /// stored passkey, and opens a session like `POST /users/login`. Its
    /// access tokens carry `amr: ["hwk", "mfa"]` (the authenticator verified
    /// the user). The challenge is spent, whatever the outcome.
    #[oai(
        path = "/users/login/passkey/finish",
        method = "post",
        operation_id = "finishPasskeyLogin"
    )]
    async fn login_finish(
        &self,
        state: State<'_>,
        client_ip: Data<&ClientIp>,
        /// Stored with the session so you can recognize it later.
        #[oai(name = "User-Agent")]
        user_agent: Header<Option<String>>,
        body: Json<LoginFinishBody>,
    ) -> Result<Json<TokenResponse>, LoginFinishErrors> {
        let client = ClientInfo {
            user_agent: user_agent.0.map(|ua| ua.chars().take(512).collect()),
            ip: Some(client_ip.0.0.to_string()),
            network: client_ip.network(state.config.ipv6_prefix_len),
        };
        let pair =
            passkeys::finish_login(&state, &body.challenge_id, object(&body.credential), client)
                .await?;
        Ok(TokenResponse::new("Login successful.", pair))
    }
}
