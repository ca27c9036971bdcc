//! How the API answers a workflow's [`Refusal`]: its code, status and message.

use poem::http::StatusCode;

use crate::flows::refusal::Refusal;
use crate::http::error::{ApiError, ErrorCode};

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::Invalid(fields) => ApiError::validation(fields),
            Refusal::UnknownReferralCode => {
                ApiError::new(ErrorCode::InvalidReferralCode, "Unknown referral code")
            }
            Refusal::EmailInUse => ApiError::new(ErrorCode::EmailInUse, "Email is already in use"),
            Refusal::InvalidCode => ApiError::new(ErrorCode::InvalidCode, "Invalid or expired code"),
            Refusal::AlreadyActive => {
                ApiError::new(ErrorCode::AlreadyActive, "Account is already active")
            }
            Refusal::InvalidCredentials => {
                ApiError::new(ErrorCode::InvalidCredentials, "Invalid credentials")
            }
            Refusal::WrongPassword => {
                ApiError::new(ErrorCode::InvalidCredentials, "Password is incorrect")
            }
            Refusal::EmailNotVerified => ApiError::new(
                ErrorCode::EmailNotVerified,
                "You must verify your email to activate your account",
            ),
            Refusal::AccountDisabled => {
                ApiError::new(ErrorCode::AccountDisabled, "This account is disabled")
            }
            Refusal::AccountLocked { retry_after_secs } => ApiError::new(
                ErrorCode::AccountLocked,
                "Too many failed logins: this account is locked for a while. Reset the password to unlock it now.",
            )
            .with_retry_after(retry_after_secs),
            Refusal::InvalidResetToken => ApiError::new(
                ErrorCode::InvalidToken,
                "Password reset token is invalid or has expired",
            ),
            Refusal::InvalidRevertToken => ApiError::new(
                ErrorCode::InvalidToken,
                "This link to undo an email change is invalid, has expired or was already used",
            ),
            // The contract answers a bad refresh token `401`, a bad reset token `400`.
            Refusal::InvalidRefreshToken => ApiError::new(
                ErrorCode::InvalidToken,
                "Refresh token is invalid, expired or revoked",
            )
            .with_status(StatusCode::UNAUTHORIZED),
            Refusal::NotAuthenticated => ApiError::unauthorized(),
            Refusal::AccessTokenExpired => {
                ApiError::new(ErrorCode::TokenExpired, "Access token has expired")
            }
            Refusal::SessionEnded => {
                ApiError::new(ErrorCode::Unauthorized, "Session has ended; log in again")
            }
            Refusal::Forbidden(why) => ApiError::new(ErrorCode::Forbidden, why),
            Refusal::NotFound(what) => ApiError::new(ErrorCode::NotFound, what),
            Refusal::MfaRequired { mfa_token, methods } => ApiError::mfa_required(
                mfa_token,
                methods.into_iter().map(str::to_owned).collect(),
            ),
            Refusal::InvalidMfaToken => ApiError::new(
                ErrorCode::InvalidToken,
                "The login step is invalid, expired, used, or had too many wrong codes; log in again",
            )
            .with_status(StatusCode::UNAUTHORIZED),
            Refusal::MfaAlreadyEnabled => ApiError::new(
                ErrorCode::MfaAlreadyEnabled,
                "Two-factor authentication is already on; turn it off first to use another authenticator",
            ),
            Refusal::MfaNotPending => ApiError::new(
                ErrorCode::MfaNotPending,
                "No authenticator is waiting to be confirmed; start with POST /users/me/mfa/totp",
            ),
            Refusal::MfaNotEnabled => ApiError::new(
                ErrorCode::MfaNotEnabled,
                "Two-factor authentication is not on for this account",
            ),
            Refusal::MfaCodeRequired => ApiError::new(
                ErrorCode::MfaCodeRequired,
                "This account uses two-factor authentication: send `code` from your authenticator app (or a recovery code)",
            ),
            Refusal::Internal(cause) => ApiError::internal(cause),
        }
    }
}
