//! The signed-in user's credentials: changing the password and moving the
//! account to another email address.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::bearer::BearerAuth;
use super::me::UserUpdated;
use super::shared::{ApiTags, MessageResponse, State};
use super::text::{Code, Email, Password, SecondFactor, Text};
use crate::error_responses;
use crate::flows::{email_change, profile};
use crate::http::rate_limits::ClientIp;

/// Password and email address of the signed-in user.
pub struct AccountApi;

/// A new password, confirmed with the current one.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ChangePasswordBody {
    /// The password in use now.
    pub current_password: Text<Password>,
    /// The new password: 8 to 128 characters, not a common password, not the email address.
    pub new_password: Text<Password>,
    /// Must equal `newPassword`.
    pub confirm_password: Text<Password>,
    /// With two-factor authentication on: a 6-digit code from the
    /// authenticator app, or an unused recovery code (else `400 MFA_CODE_REQUIRED`).
    #[oai(nullable)]
    pub code: Option<Text<SecondFactor>>,
}

/// The address to move the account to, confirmed with the password.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct EmailChangeBody {
    /// The account's current password.
    pub password: Text<Password>,
    /// The new email address; a 6-digit code is sent there.
    pub new_email: Text<Email>,
    /// With two-factor authentication on: a 6-digit code from the
    /// authenticator app, or an unused recovery code (else `400 MFA_CODE_REQUIRED`).
    #[oai(nullable)]
    pub code: Option<Text<SecondFactor>>,
}

/// The code sent to the new address.
#[derive(Object)]
pub struct EmailCodeBody {
    /// The 6-digit code from the email sent to the new address.
    pub code: Text<Code>,
}

/// Answer to an email change request.
#[derive(ApiResponse)]
pub enum EmailChangeRequested {
    /// A code is on its way to the new address, and a notice to the current one.
    #[oai(status = 202)]
    Accepted(Json<MessageResponse>),
}

error_responses!(
    /// Errors of a password change.
    ChangePasswordErrors {
        400 => "`VALIDATION_FAILED`: the new password breaks the policy, the two new passwords differ, or malformed JSON. With two-factor authentication on: `MFA_CODE_REQUIRED` (no `code`) or `INVALID_CODE`.",
        401 => "`INVALID_CREDENTIALS` (wrong current password), or `UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`ACCOUNT_LOCKED`: too many wrong passwords (here or at login); `Retry-After` says for how long.",
        500 => "`INTERNAL_ERROR`.",
        503 => "`BUSY`: more password checks are waiting than the server runs in about a second; or `STORAGE_UNAVAILABLE`: the database cannot take writes right now (nothing was changed). Retry after `Retry-After` seconds.",
    }
);

error_responses!(
    /// Errors of an email change request.
    RequestEmailChangeErrors {
        400 => "`VALIDATION_FAILED`: `newEmail` is not an address or is already yours, or malformed JSON. With two-factor authentication on: `MFA_CODE_REQUIRED` (no `code`) or `INVALID_CODE`.",
        401 => "`INVALID_CREDENTIALS` (wrong password), or `UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        409 => "`EMAIL_IN_USE`: another account has this address (not answered when the server conceals existing accounts).",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`ACCOUNT_LOCKED`: too many wrong passwords (here or at login); `Retry-After` says for how long.",
        500 => "`INTERNAL_ERROR`.",
        503 => "`BUSY`: more password checks are waiting than the server runs in about a second; or `STORAGE_UNAVAILABLE`: the database cannot take writes right now (nothing was changed). Retry after `Retry-After` seconds.",
    }
);

error_responses!(
    /// Errors of an email change confirmation.
    ConfirmEmailChangeErrors {
        400 => "`INVALID_CODE` (wrong, expired, used up, replaced by a newer one, no change pending, or the daily budget of wrong codes spent: one answer for all) or `VALIDATION_FAILED`.",
        401 => "`UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        409 => "`EMAIL_IN_USE`: another account took the address since the code was sent.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        500 => "`INTERNAL_ERROR`.",
    }
);

#[OpenApi(tag = "ApiTags::Me")]
impl AccountApi {
    /// Change my password
    ///
    /// Needs the current password (and, with two-factor authentication on,
    /// `code`). Every other session of the account is
    /// logged out; this one stays. Pending reset links and email change
    /// codes stop working. The account gets an email saying so.
    #[oai(
        path = "/users/me/password",
        method = "patch",
        operation_id = "changePassword"
    )]
    async fn change_password(
        &self,
        state: State<'_>,
        client_ip: Data<&ClientIp>,
        auth: BearerAuth,
        body: Json<ChangePasswordBody>,
    ) -> Result<Json<MessageResponse>, ChangePasswordErrors> {
        profile::change_password(
            &state,
            &auth.0,
            client_ip.network(state.config.ipv6_prefix_len),
            &body.current_password,
            &body.new_password,
            &body.confirm_password,
            body.code.as_deref(),
        )
        .await?;
        Ok(Json(MessageResponse::new(
            "Password changed. Your other sessions were logged out.",
        )))
    }

    /// Ask to change my email address
    ///
    /// Needs the password (and, with two-factor authentication on, `code`).
    /// Sends a 6-digit code (valid 15 minutes, 5 tries)
    /// to the new address and a notice to the current one; a newer request
    /// voids the older code. Wrong codes count in the account's daily budget
    /// (`SESAME_CODE_MAX_FAILURES_PER_DAY`); while it is spent, nothing is
    /// sent (same answer). Nothing changes until the code is confirmed
    /// with `PATCH /users/me/email`.
    #[oai(
        path = "/users/me/email",
        method = "post",
        operation_id = "requestEmailChange"
    )]
    async fn request_email_change(
        &self,
        state: State<'_>,
        client_ip: Data<&ClientIp>,
        auth: BearerAuth,
        body: Json<EmailChangeBody>,
    ) -> Result<EmailChangeRequested, RequestEmailChangeErrors> {
        let network = client_ip.network(state.config.ipv6_prefix_len);
        email_change::request(
            &state,
            &auth.0,
            network,
            &body.password,
            &body.new_email,
            body.code.as_deref(),
        )
        .await?;
        Ok(EmailChangeRequested::Accepted(Json(MessageResponse::new(
            "Check the new address for a confirmation code.",
        ))))
    }

    /// Confirm my new email address
    ///
    /// Spends the code sent to the new address and moves the account there.
    /// Every other session of the account ends, and reset links sent to the
    /// old address stop working. If another account took the address
    /// meanwhile, answers `409`.
    #[oai(
        path = "/users/me/email",
        method = "patch",
        operation_id = "confirmEmailChange"
    )]
    async fn confirm_email_change(
        &self,
        state: State<'_>,
        auth: BearerAuth,
        body: Json<EmailCodeBody>,
    ) -> Result<Json<UserUpdated>, ConfirmEmailChangeErrors> {
        let user = email_change::confirm(&state, &auth.0, &body.code).await?;
        Ok(UserUpdated::new("Email address changed.", user))
    }
}
