//! Two-factor authentication: enrolling a TOTP authenticator, recovery
//! codes, turning it off, and the second step of a login.

use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::{TokenResponse, client_info};
use super::bearer::BearerAuth;
use super::shared::{ApiTags, MessageResponse, State};
use super::text::{Password, SecondFactor, Text, Token};
use crate::error_responses;
use crate::flows::mfa;
use crate::http::rate_limits::ClientIp;

/// The signed-in user's second factor.
pub struct MfaApi;

/// The step a second factor adds to a login (shown with the other login
/// operations).
pub struct MfaLoginApi;

/// The password, to start enrolling an authenticator.
#[derive(Object)]
pub struct TotpEnrolmentBody {
    /// The account's current password.
    pub password: Text<Password>,
}

/// A pending authenticator's secret, shown once.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TotpEnrolment {
    /// Always `true`.
    pub success: bool,
    /// What to do next.
    pub message: String,
    /// The secret in base32 (no padding), to type into an authenticator app.
    pub secret: String,
    /// `otpauth://totp/…` with the secret, the issuer and the account's
    /// email: show it as a QR code for the app to scan.
    pub otpauth_uri: String,
}

/// A code from the authenticator app.
#[derive(Object)]
pub struct TotpCodeBody {
    /// The 6-digit code the app shows now.
    pub code: Text<SecondFactor>,
}

/// The password and a second-factor code.
#[derive(Object)]
pub struct MfaConfirmationBody {
    /// The account's current password.
    pub password: Text<Password>,
    /// A 6-digit code from the authenticator app, or an unused recovery code.
    pub code: Text<SecondFactor>,
}

/// Recovery codes, shown once.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RecoveryCodesResponse {
    /// Always `true`.
    pub success: bool,
    /// What happened, and what to do with the codes.
    pub message: String,
    /// Ten single-use codes (`xxxx-xxxx-xxxx-xxxx`), each a way in when the
    /// authenticator is lost. Store them somewhere safe: they are not shown again.
    pub recovery_codes: Vec<String>,
}

impl RecoveryCodesResponse {
    fn new(message: &str, codes: Vec<String>) -> Json<RecoveryCodesResponse> {
        Json(RecoveryCodesResponse {
            success: true,
            message: message.to_owned(),
            recovery_codes: codes,
        })
    }
}

/// The second step of a login.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct LoginMfaBody {
    /// The `mfaToken` of the `403 MFA_REQUIRED` answer to the password.
    pub mfa_token: Text<Token>,
    /// A 6-digit code from the authenticator app, or an unused recovery code.
    pub code: Text<SecondFactor>,
}

/// Answer to the start of an enrolment.
#[derive(ApiResponse)]
pub enum TotpEnrolmentResponse {
    /// A new secret is pending: confirm it with a code from the app.
    #[oai(status = 201)]
    Created(Json<TotpEnrolment>),
}

error_responses!(
    /// Errors of starting an enrolment.
    StartTotpErrors {
        400 => "`VALIDATION_FAILED`: missing fields or malformed JSON.",
        401 => "`INVALID_CREDENTIALS` (wrong password), or `UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        409 => "`MFA_ALREADY_ENABLED`: turn it off first to use another authenticator.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`ACCOUNT_LOCKED`: too many wrong passwords or codes (here or at login); `Retry-After` says for how long.",
        500 => "`INTERNAL_ERROR`.",
        503 => "`BUSY`: more password checks are waiting than the server runs in about a second; or `STORAGE_UNAVAILABLE`: the database cannot take writes right now (nothing was changed). Retry after `Retry-After` seconds.",
    }
);

error_responses!(
    /// Errors of confirming an enrolment.
    ConfirmTotpErrors {
        400 => "`INVALID_CODE` (not the app's code for now, or a code already used) or `VALIDATION_FAILED`.",
        401 => "`UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        409 => "`MFA_NOT_PENDING` (no enrolment started) or `MFA_ALREADY_ENABLED`.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of endpoints that take the password and a second-factor code.
    MfaChangeErrors {
        400 => "`INVALID_CODE` (wrong or used code, or the account's daily budget of wrong codes spent) or `VALIDATION_FAILED`.",
        401 => "`INVALID_CREDENTIALS` (wrong password), or `UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        409 => "`MFA_NOT_ENABLED`: the account has no second factor.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`ACCOUNT_LOCKED`: too many wrong passwords or codes (here or at login); `Retry-After` says for how long.",
        500 => "`INTERNAL_ERROR`.",
        503 => "`BUSY`: more password checks are waiting than the server runs in about a second; or `STORAGE_UNAVAILABLE`: the database cannot take writes right now (nothing was changed). Retry after `Retry-After` seconds.",
    }
);

error_responses!(
    /// Errors of a login's second step.
    LoginMfaErrors {
        400 => "`INVALID_CODE` (wrong or used code, or the account's daily budget of wrong codes spent; the fifth wrong code voids `mfaToken`) or `VALIDATION_FAILED`.",
        401 => "`INVALID_TOKEN`: `mfaToken` is unknown, expired (5 minutes), used, or void after five wrong codes: log in again.",
        403 => "`ACCOUNT_DISABLED`.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`ACCOUNT_LOCKED`: too many wrong passwords or codes from your network; `Retry-After` says for how long. Or `RATE_LIMITED`.",
        500 => "`INTERNAL_ERROR`.",
    }
);

#[OpenApi(tag = "ApiTags::Mfa")]
impl MfaApi {
    /// Start enrolling an authenticator app
    ///
    /// Needs the password. Returns a new TOTP secret (RFC 6238: SHA-1, 6
    /// digits, 30 seconds) and its `otpauth://` URI; nothing changes until
    /// a code from the app confirms it with `PATCH /users/me/mfa/totp`.
    /// Asking again replaces a pending secret.
    #[oai(
        path = "/users/me/mfa/totp",
        method = "post",
        operation_id = "startTotpEnrolment"
    )]
    async fn start_totp(
        &self,
        state: State<'_>,
        client_ip: Data<&ClientIp>,
        auth: BearerAuth,
        body: Json<TotpEnrolmentBody>,
    ) -> Result<TotpEnrolmentResponse, StartTotpErrors> {
        let network = client_ip.network(state.config.ipv6_prefix_len);
        let enrolment = mfa::start_totp(&state, &auth.0, network, &body.password).await?;
        Ok(TotpEnrolmentResponse::Created(Json(TotpEnrolment {
            success: true,
            message: "Add this secret to your authenticator app, then confirm with a code from it."
                .into(),
            secret: enrolment.secret,
            otpauth_uri: enrolment.otpauth_uri,
        })))
    }

    /// Confirm the authenticator app
    ///
    /// Spends a code from the app: two-factor authentication is on, every
    /// other session of the account ends, and an email tells the owner.
    /// Returns ten recovery codes, shown this once. The secret is never
    /// shown again.
    #[oai(
        path = "/users/me/mfa/totp",
        method = "patch",
        operation_id = "confirmTotpEnrolment"
    )]
    async fn confirm_totp(
        &self,
        state: State<'_>,
        auth: BearerAuth,
        body: Json<TotpCodeBody>,
    ) -> Result<Json<RecoveryCodesResponse>, ConfirmTotpErrors> {
        let codes = mfa::confirm_totp(&state, &auth.0, &body.code).await?;
        Ok(RecoveryCodesResponse::new(
            "Two-factor authentication is on. Your other sessions were logged out. Keep these \
             recovery codes safe: each works once, and they are not shown again.",
            codes,
        ))
    }

    /// Turn two-factor authentication off
    ///
    /// Needs the password and a code from the app (or a recovery code). The
    /// authenticator and the recovery codes are removed, and an email tells
    /// the owner.
    #[oai(
        path = "/users/me/mfa/totp",
        method = "delete",
        operation_id = "disableTotp"
    )]
    async fn disable_totp(
        &self,
        state: State<'_>,
        client_ip: Data<&ClientIp>,
        auth: BearerAuth,
        body: Json<MfaConfirmationBody>,
    ) -> Result<Json<MessageResponse>, MfaChangeErrors> {
        let network = client_ip.network(state.config.ipv6_prefix_len);
        mfa::turn_off(&state, &auth.0, network, &body.password, &body.code).await?;
        Ok(Json(MessageResponse::new(
            "Two-factor authentication is off.",
        )))
    }

    /// Make new recovery codes
    ///
    /// Needs the password and a code from the app (or a recovery code).
    /// Returns ten new codes, shown this once; the old ones stop working.
    #[oai(
        path = "/users/me/mfa/recovery-codes",
        method = "post",
        operation_id = "regenerateRecoveryCodes"
    )]
    async fn regenerate_recovery_codes(
        &self,
        state: State<'_>,
        client_ip: Data<&ClientIp>,
        auth: BearerAuth,
        body: Json<MfaConfirmationBody>,
    ) -> Result<Json<RecoveryCodesResponse>, MfaChangeErrors> {
        let network = client_ip.network(state.config.ipv6_prefix_len);
        let codes =
            mfa::replace_recovery_codes(&state, &auth.0, network, &body.password, &body.code)
                .await?;
        Ok(RecoveryCodesResponse::new(
            "New recovery codes made; the old ones no longer work. Keep these safe: they are \
             not shown again.",
            codes,
        ))
    }
}

#[OpenApi(tag = "ApiTags::Auth")]
impl MfaLoginApi {
    /// Log in: the second step
    ///
    /// After `POST /users/login` answered `403 MFA_REQUIRED`, send its
    /// `mfaToken` with a code from the authenticator app (or a recovery
    /// code) to open the session. Each code works once; five wrong codes
    /// void the token, and wrong codes count towards the account's lockout
    /// like wrong passwords.
    #[oai(path = "/users/login/mfa", method = "post", operation_id = "loginMfa")]
    async fn login_mfa(
        &self,
        state: State<'_>,
        client_ip: Data<&ClientIp>,
        /// Stored with the session so you can recognize it later.
        #[oai(name = "User-Agent")]
        user_agent: Header<Option<String>>,
        body: Json<LoginMfaBody>,
    ) -> Result<Json<TokenResponse>, LoginMfaErrors> {
        let client = client_info(&state, &client_ip, user_agent.0);
        let pair = mfa::finish_login(&state, &body.mfa_token, &body.code, client).await?;
        Ok(TokenResponse::new("Login successful.", pair))
    }
}
