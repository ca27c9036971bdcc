//! The anonymous account endpoints, path- and field-compatible with the tutorial.

use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::shared::{ApiTags, MessageResponse, State};
use super::text::{Code, Email, Name, Password, ReferralCode, Text, Token};
use crate::error_responses;
use crate::flows::sessions::{self, ClientInfo, TokenPair};
use crate::flows::signup::{self, SignupOutcome, SignupRequest};
use crate::flows::{email_revert, password_reset};
use crate::http::rate_limits::ClientIp;

/// Sign-up, activation, login, token refresh, password reset, and undoing
/// an email change from the old address.
pub struct AuthApi;

/// A new account.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SignupBody {
    /// Email address; compared case-insensitively.
    pub email: Text<Email>,
    /// 8 to 128 characters, not a common password, not the email address.
    pub password: Text<Password>,
    /// Must equal `password`.
    pub confirm_password: Text<Password>,
    /// Referral code of the user who invited you (case-insensitive).
    #[oai(nullable)]
    pub referrer: Option<Text<ReferralCode>>,
    /// Display name, at most 100 characters once HTML is stripped.
    #[oai(nullable)]
    pub name: Option<Text<Name>>,
}

/// The account that was created.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SignupCreated {
    /// Always `true`.
    pub success: bool,
    /// What happens next.
    pub message: String,
    /// Id of the new user.
    pub user_id: String,
    /// The new user's own referral code, to share.
    pub referral_code: String,
}

/// Answer to a signup.
#[derive(ApiResponse)]
pub enum SignupResponse {
    /// Account created; a 6-digit verification code was emailed.
    #[oai(status = 201)]
    Created(Json<SignupCreated>),
    /// Only with `SESAME_SIGNUP_CONCEALS_EXISTING=true`: every well-formed
    /// signup gets this answer, whether or not the address was taken.
    #[oai(status = 202)]
    Accepted(Json<MessageResponse>),
}

/// An email address and the code sent to it.
#[derive(Object)]
pub struct ActivateBody {
    /// The address that signed up.
    pub email: Text<Email>,
    /// The 6-digit code from the verification email.
    pub code: Text<Code>,
}

/// An email address.
#[derive(Object)]
pub struct EmailBody {
    /// The account's email address.
    pub email: Text<Email>,
}

/// Credentials.
#[derive(Object)]
pub struct LoginBody {
    /// Email address.
    pub email: Text<Email>,
    /// Password.
    pub password: Text<Password>,
}

/// A refresh token to exchange.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RefreshBody {
    /// The refresh token from login or the previous refresh; it is spent by this call.
    pub refresh_token: Text<Token>,
}

/// A new password with the emailed reset token.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ResetBody {
    /// The token from the reset email.
    pub token: Text<Token>,
    /// The new password (same policy as signup).
    pub new_password: Text<Password>,
    /// Must equal `newPassword`.
    pub confirm_password: Text<Password>,
}

/// The token from the link in the "your email address was changed" notice.
#[derive(Object)]
pub struct RevertEmailBody {
    /// The token from the link sent to the old address.
    pub token: Text<Token>,
}

/// A session's tokens.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TokenResponse {
    /// Always `true`.
    pub success: bool,
    /// What happened.
    pub message: String,
    /// JWT to send as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    /// Opaque token for `POST /users/token/refresh`; single use.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until `accessToken` expires.
    pub expires_in: u64,
}

impl TokenResponse {
    /// `{success: true, message, accessToken, refreshToken, tokenType, expiresIn}`.
    pub(super) fn new(message: &str, pair: TokenPair) -> Json<TokenResponse> {
        Json(TokenResponse {
            success: true,
            message: message.into(),
            access_token: pair.access_token,
            refresh_token: pair.refresh_token.expose().to_owned(),
            token_type: "Bearer".into(),
            expires_in: pair.expires_in,
        })
    }
}

/// Answer to a resend request.
#[derive(ApiResponse)]
pub enum AcceptedResponse {
    /// The same answer whether or not the account exists or is active.
    #[oai(status = 202)]
    Accepted(Json<MessageResponse>),
}

error_responses!(
    /// Errors of signup.
    SignupErrors {
        400 => "`VALIDATION_FAILED` (bad email, password policy, passwords differ, malformed JSON) or `INVALID_REFERRAL_CODE`.",
        409 => "`EMAIL_IN_USE`: an account with this email exists.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`: send `application/json`.",
        429 => "`RATE_LIMITED`: too many requests from this client's address (IPv6: its /64); `Retry-After` says when to try again.",
        500 => "`INTERNAL_ERROR`.",
        503 => "`BUSY`: more password checks are waiting than the server runs in about a second; or `STORAGE_UNAVAILABLE`: the database cannot take writes right now (nothing was changed). Retry after `Retry-After` seconds.",
    }
);

error_responses!(
    /// Errors of activation.
    ActivateErrors {
        400 => "`INVALID_CODE` (wrong, expired, used up, unknown email, or the address's daily budget of wrong codes spent: one answer for all) or `VALIDATION_FAILED`.",
        409 => "`ALREADY_ACTIVE`: the account was already activated with this code.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`RATE_LIMITED`: too many requests from this client's address (IPv6: its /64); `Retry-After` says when to try again.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of endpoints that take only an email.
    EmailErrors {
        400 => "`VALIDATION_FAILED`: not an email address, or malformed JSON.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`RATE_LIMITED`: too many requests from this client's address (IPv6: its /64); `Retry-After` says when to try again.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of login.
    LoginErrors {
        400 => "`VALIDATION_FAILED`: malformed JSON or missing fields.",
        401 => "`INVALID_CREDENTIALS`: unknown email or wrong password (one answer for both; with `SESAME_SIGNUP_CONCEALS_EXISTING`, also the right password of an account not verified yet, whose code is sent again).",
        403 => "`MFA_REQUIRED`: the password was right and the account has two-factor authentication; the body also carries `mfaToken` and `methods`: finish with `POST /users/login/mfa`. Or `EMAIL_NOT_VERIFIED` (the password was right; never with `SESAME_SIGNUP_CONCEALS_EXISTING`) or `ACCOUNT_DISABLED`.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`ACCOUNT_LOCKED`: too many wrong passwords for this address from this network (or from everywhere); `Retry-After` says how long. Or `RATE_LIMITED`: too many requests from this client's address.",
        500 => "`INTERNAL_ERROR`.",
        503 => "`BUSY`: more password checks are waiting than the server runs in about a second; or `STORAGE_UNAVAILABLE`: the database cannot take writes right now (nothing was changed). Retry after `Retry-After` seconds.",
    }
);

error_responses!(
    /// Errors of token refresh.
    RefreshErrors {
        400 => "`VALIDATION_FAILED`: malformed JSON or missing fields.",
        401 => "`INVALID_TOKEN`: unknown, expired, spent or revoked refresh token. A spent token presented after the grace window also revokes its session.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`RATE_LIMITED`: too many requests from this client's address (IPv6: its /64); `Retry-After` says when to try again.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of password reset.
    ResetErrors {
        400 => "`INVALID_TOKEN` (unknown, expired or used reset token) or `VALIDATION_FAILED` (password policy, passwords differ).",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`RATE_LIMITED`: too many requests from this client's address (IPv6: its /64); `Retry-After` says when to try again.",
        500 => "`INTERNAL_ERROR`.",
        503 => "`BUSY`: more password checks are waiting than the server runs in about a second; or `STORAGE_UNAVAILABLE`: the database cannot take writes right now (nothing was changed). Retry after `Retry-After` seconds.",
    }
);

error_responses!(
    /// Errors of undoing an email change.
    RevertEmailErrors {
        400 => "`INVALID_TOKEN` (unknown, expired or used token, or one voided because a revert of an earlier change was spent) or `VALIDATION_FAILED`.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`RATE_LIMITED`: too many requests from this client's address (IPv6: its /64); `Retry-After` says when to try again.",
        500 => "`INTERNAL_ERROR`.",
        503 => "`BUSY`: more password hashes are waiting than the server runs in about a second; or `STORAGE_UNAVAILABLE`: the database cannot take writes right now (nothing was changed). Retry after `Retry-After` seconds.",
    }
);

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Sign up
    ///
    /// Creates an inactive account and emails a 6-digit verification code
    /// (valid 15 minutes) with a link to confirm. Optionally names the
    /// referral code of the user who invited you.
    #[oai(path = "/users/signup", method = "post", operation_id = "signup")]
    async fn signup(
        &self,
        state: State<'_>,
        body: Json<SignupBody>,
    ) -> Result<SignupResponse, SignupErrors> {
        let outcome = signup::signup(
            &state,
            SignupRequest {
                email: &body.email,
                password: &body.password,
                confirm_password: &body.confirm_password,
                referrer: body.referrer.as_deref(),
                name: body.name.as_deref(),
            },
        )
        .await?;
        Ok(match outcome {
            SignupOutcome::Created {
                user_id,
                referral_code,
            } => SignupResponse::Created(Json(SignupCreated {
                success: true,
                message: "Signup successful. Check your email for the verification code.".into(),
                user_id,
                referral_code,
            })),
            SignupOutcome::Concealed => {
                SignupResponse::Accepted(Json(MessageResponse::new(CONCEALED_SIGNUP)))
            }
        })
    }

    /// Activate an account
    ///
    /// Spends the emailed 6-digit code. Five wrong tries void the code; ask
    /// for a new one with `POST /users/activate/resend`. Wrong codes for one
    /// address also count in a daily budget (`SESAME_CODE_MAX_FAILURES_PER_DAY`,
    /// default 20, across resends): once it is spent, every code for that
    /// address is refused until the day is over. A password reset activates
    /// the account too.
    #[oai(path = "/users/activate", method = "patch", operation_id = "activate")]
    async fn activate(
        &self,
        state: State<'_>,
        body: Json<ActivateBody>,
    ) -> Result<Json<MessageResponse>, ActivateErrors> {
        signup::activate(&state, &body.email, &body.code).await?;
        Ok(Json(MessageResponse::new("Account activated.")))
    }

    /// Send a new verification code
    ///
    /// Replaces the previous code. Answers the same whether or not the
    /// account exists or is already active, and sends nothing while the
    /// address's daily budget of wrong codes is spent.
    #[oai(
        path = "/users/activate/resend",
        method = "post",
        operation_id = "resendActivation"
    )]
    async fn resend(
        &self,
        state: State<'_>,
        body: Json<EmailBody>,
    ) -> Result<AcceptedResponse, EmailErrors> {
        signup::resend_activation(&state, &body.email).await?;
        Ok(AcceptedResponse::Accepted(Json(MessageResponse::new(
            "If that account exists and is not active yet, a new code is on its way.",
        ))))
    }

    /// Log in
    ///
    /// Opens a session and returns an access token (JWT, 15 minutes) and a
    /// single-use refresh token. With two-factor authentication on, a right
    /// password answers `403 MFA_REQUIRED` with an `mfaToken` instead: send
    /// it with a code to `POST /users/login/mfa`.
    #[oai(path = "/users/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: State<'_>,
        client_ip: Data<&ClientIp>,
        /// Stored with the session so you can recognize it later.
        #[oai(name = "User-Agent")]
        user_agent: Header<Option<String>>,
        body: Json<LoginBody>,
    ) -> Result<Json<TokenResponse>, LoginErrors> {
        let client = client_info(&state, &client_ip, user_agent.0);
        let pair = sessions::login(&state, &body.email, &body.password, client).await?;
        Ok(TokenResponse::new("Login successful.", pair))
    }

    /// Refresh tokens
    ///
    /// Spends a refresh token and returns a new pair for the same session.
    /// Presenting a spent token again (after a short grace window for
    /// parallel tabs) revokes the whole session.
    #[oai(
        path = "/users/token/refresh",
        method = "post",
        operation_id = "refreshToken"
    )]
    async fn refresh(
        &self,
        state: State<'_>,
        body: Json<RefreshBody>,
    ) -> Result<Json<TokenResponse>, RefreshErrors> {
        let pair = sessions::refresh(&state, &body.refresh_token).await?;
        Ok(TokenResponse::new("Tokens refreshed.", pair))
    }

    /// Forgot password
    ///
    /// Emails a reset link and token (valid 15 minutes) if the account
    /// exists. The answer is the same either way.
    #[oai(
        path = "/users/forgot",
        method = "patch",
        operation_id = "forgotPassword"
    )]
    async fn forgot(
        &self,
        state: State<'_>,
        body: Json<EmailBody>,
    ) -> Result<Json<MessageResponse>, EmailErrors> {
        password_reset::forgot_password(&state, &body.email).await?;
        Ok(Json(MessageResponse::new(
            "If that email address is in our database, we will send you an email to reset your password",
        )))
    }

    /// Reset password
    ///
    /// Sets a new password with the emailed token and ends every session of
    /// the account. Voids a pending email change code, and activates an
    /// account whose address was not verified yet (the link proves it).
    #[oai(
        path = "/users/reset",
        method = "patch",
        operation_id = "resetPassword"
    )]
    async fn reset(
        &self,
        state: State<'_>,
        body: Json<ResetBody>,
    ) -> Result<Json<MessageResponse>, ResetErrors> {
        password_reset::reset_password(
            &state,
            &body.token,
            &body.new_password,
            &body.confirm_password,
        )
        .await?;
        Ok(Json(MessageResponse::new("Password has been changed")))
    }

    /// Undo an email change
    ///
    /// Spends the token from the link that a confirmed email change sends to
    /// the old address (valid `SESAME_EMAIL_REVERT_TTL_SECS`, default 7 days,
    /// single use). The old address is back on the account, every session
    /// ends, the current password stops working, pending reset links and
    /// email change codes are void, and a link to choose a new password goes
    /// to the old address. Reverts of later changes of the same account are
    /// void; those of earlier ones still work. While a revert is possible,
    /// the old address stays reserved: signups and other accounts' email
    /// changes are answered as for a taken address.
    #[oai(
        path = "/users/email/revert",
        method = "patch",
        operation_id = "revertEmailChange"
    )]
    async fn revert_email(
        &self,
        state: State<'_>,
        body: Json<RevertEmailBody>,
    ) -> Result<Json<MessageResponse>, RevertEmailErrors> {
        email_revert::revert(&state, &body.token).await?;
        Ok(Json(MessageResponse::new(REVERTED)))
    }
}

/// Where a login comes from, as its session keeps it.
pub(super) fn client_info(
    state: &State<'_>,
    client_ip: &ClientIp,
    user_agent: Option<String>,
) -> ClientInfo {
    ClientInfo {
        user_agent: user_agent.map(|ua| ua.chars().take(512).collect()),
        ip: Some(client_ip.0.to_string()),
        network: client_ip.network(state.config.ipv6_prefix_len),
    }
}

/// The answer to a revert.
const REVERTED: &str = "Your old email address is back and every session was signed out. \
     Check that address for a link to choose a new password.";

/// The answer to every signup when existing accounts are concealed.
const CONCEALED_SIGNUP: &str = "Check your email to continue.";
