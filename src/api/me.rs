//! The signed-in user's profile (`/users/me`: read, update, delete) and
//! referrals. Every operation on one path lives in one `#[OpenApi]` impl:
//! poem-openapi writes each impl's paths separately into the spec.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};

use super::bearer::BearerAuth;
use super::shared::{ApiTags, MessageResponse, State};
use super::text::{Name, Password, SecondFactor, Text};
use crate::domain::email::EmailAddress;
use crate::domain::user::User;
use crate::error_responses;
use crate::flows::profile::{self, NameChange};
use crate::http::rate_limits::ClientIp;

/// The signed-in user's own resources.
pub struct MeApi;

/// A user's profile.
#[derive(Object)]
#[oai(rename_all = "camelCase", rename = "User")]
pub struct UserView {
    /// Id of the user (UUID v7).
    pub user_id: String,
    /// Email address, lower-cased.
    pub email: String,
    /// Display name; `null` when not set.
    #[oai(nullable)]
    pub name: Option<String>,
    /// Whether the email address was verified.
    pub active: bool,
    /// `user` or `admin`.
    pub role: String,
    /// The user's own referral code, to share.
    pub referral_code: String,
    /// Referral code of the user who invited this one; `null` if none.
    #[oai(nullable)]
    pub referred_by: Option<String>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the account last changed.
    pub updated_at: DateTime<Utc>,
    // The second factors. (No doc comment: see `MeResponse::user`.)
    pub mfa: MfaStatus,
}

/// The second factors of an account.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MfaStatus {
    /// Whether logins need a code from an authenticator app (TOTP).
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
    /// Registered passkeys.
    pub passkeys: u32,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            user_id: u.id,
            email: u.email.as_str().to_owned(),
            name: u.name,
            active: u.active,
            role: u.role.as_str().to_owned(),
            referral_code: u.referral_code,
            referred_by: u.referred_by_code,
            created_at: u.created_at,
            updated_at: u.updated_at,
            mfa: MfaStatus {
                totp: u.mfa.totp,
                recovery_codes_left: u.mfa.recovery_codes_left,
                passkeys: 0,
            },
        }
    }
}

/// The signed-in user's profile, in `user`.
#[derive(Object)]
pub struct MeResponse {
    /// Always `true`.
    pub success: bool,
    // No doc comment: it would make the `$ref` an `allOf` that generators
    // turn into a second copy of `User` (`MeResponseUser`).
    pub user: UserView,
}

/// The user after a change.
#[derive(Object)]
pub struct UserUpdated {
    /// Always `true`.
    pub success: bool,
    /// What changed, for people.
    pub message: String,
    // The profile as it is now. (No doc comment: see `MeResponse::user`.)
    pub user: UserView,
}

impl UserUpdated {
    /// `{success: true, message, user}`.
    pub fn new(message: &str, user: User) -> Json<UserUpdated> {
        Json(UserUpdated {
            success: true,
            message: message.to_owned(),
            user: user.into(),
        })
    }
}

/// Profile fields to change; a field left out stays as it is.
#[derive(Object)]
pub struct UpdateMeBody {
    /// Display name, at most 100 characters once HTML is stripped (tags are
    /// removed, whitespace collapsed). `null` or `""` removes it.
    #[oai(nullable)]
    pub name: MaybeUndefined<Text<Name>>,
}

/// The password, to confirm a destructive change.
#[derive(Object)]
pub struct PasswordBody {
    /// The account's current password.
    pub password: Text<Password>,
    /// With two-factor authentication on: a 6-digit code from the
    /// authenticator app, or an unused recovery code (else `400 MFA_CODE_REQUIRED`).
    #[oai(nullable)]
    pub code: Option<Text<SecondFactor>>,
}

/// An account that signed up with your referral code.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ReferredAccount {
    /// Masked email address, e.g. `s***@gmail.com`.
    pub email: String,
    /// Whether the account verified its email.
    pub active: bool,
    /// When it signed up.
    pub joined_at: DateTime<Utc>,
}

/// A page of referred accounts.
#[derive(Object)]
pub struct ReferredResponse {
    /// Always `true`.
    pub success: bool,
    /// This page, oldest first.
    pub accounts: Vec<ReferredAccount>,
    /// How many accounts you referred in all.
    pub total: u64,
}

error_responses!(
    /// Errors of endpoints that only need a valid session.
    AuthErrors {
        401 => "`UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of paged lists.
    PagingErrors {
        400 => "`VALIDATION_FAILED`: `limit` outside 1–200 or a bad `offset`.",
        401 => "`UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of endpoints that need a session and take parameters or a body.
    AuthInputErrors {
        400 => "`VALIDATION_FAILED`: malformed JSON.",
        401 => "`UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of a profile update.
    UpdateMeErrors {
        400 => "`VALIDATION_FAILED`: `name` too long, not a string, or malformed JSON.",
        401 => "`UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of endpoints that confirm a change with the password.
    PasswordCheckErrors {
        400 => "`VALIDATION_FAILED`: missing fields or malformed JSON. With two-factor authentication on: `MFA_CODE_REQUIRED` (no `code`) or `INVALID_CODE`.",
        401 => "`INVALID_CREDENTIALS` (wrong password), or `UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        429 => "`ACCOUNT_LOCKED`: too many wrong passwords (here or at login); `Retry-After` says for how long.",
        500 => "`INTERNAL_ERROR`.",
    }
);

#[OpenApi(tag = "ApiTags::Me")]
impl MeApi {
    /// Who am I?
    ///
    /// The profile of the signed-in user.
    #[oai(path = "/users/me", method = "get", operation_id = "getMe")]
    async fn me(&self, auth: BearerAuth) -> Result<Json<MeResponse>, AuthErrors> {
        // Authentication read the account with the session.
        Ok(Json(MeResponse {
            success: true,
            user: auth.0.user.into(),
        }))
    }

    /// Update my profile
    ///
    /// Changes the fields sent (today: `name`); fields left out stay as they
    /// are. HTML is stripped from the name.
    #[oai(path = "/users/me", method = "patch", operation_id = "updateMe")]
    async fn update_me(
        &self,
        state: State<'_>,
        auth: BearerAuth,
        body: Json<UpdateMeBody>,
    ) -> Result<Json<UserUpdated>, UpdateMeErrors> {
        let name = match &body.name {
            MaybeUndefined::Undefined => NameChange::Keep,
            MaybeUndefined::Null => NameChange::Clear,
            MaybeUndefined::Value(name) => NameChange::Set(name),
        };
        let user = profile::update(&state, &auth.0, name).await?;
        Ok(UserUpdated::new("Profile updated.", user))
    }

    /// Delete my account
    ///
    /// Needs the password (and, with two-factor authentication on, `code`).
    /// Removes the account with its sessions, codes and
    /// queued emails; every token of it stops working at once, and the
    /// address can sign up again. Accounts you referred keep theirs.
    #[oai(path = "/users/me", method = "delete", operation_id = "deleteMe")]
    async fn delete_me(
        &self,
        state: State<'_>,
        client_ip: Data<&ClientIp>,
        auth: BearerAuth,
        body: Json<PasswordBody>,
    ) -> Result<Json<MessageResponse>, PasswordCheckErrors> {
        let network = client_ip.network(state.config.ipv6_prefix_len);
        profile::delete(
            &state,
            &auth.0,
            network,
            &body.password,
            body.code.as_deref(),
        )
        .await?;
        Ok(Json(MessageResponse::new("Account deleted.")))
    }

    /// Accounts I referred
    ///
    /// The accounts that signed up with your referral code, oldest first,
    /// with masked email addresses.
    #[oai(
        path = "/users/referred",
        method = "get",
        operation_id = "listReferred"
    )]
    async fn referred(
        &self,
        state: State<'_>,
        auth: BearerAuth,
        /// Page size, 1 to 200.
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
        /// How many accounts to skip.
        #[oai(
            default,
            validator(minimum(value = "0"), maximum(value = "1000000000"))
        )]
        offset: Query<u32>,
    ) -> Result<Json<ReferredResponse>, PagingErrors> {
        let (accounts, total) =
            profile::referred(&state, auth.0.user_id(), limit.0, offset.0).await?;
        let accounts = accounts
            .into_iter()
            .map(|a| ReferredAccount {
                email: EmailAddress::mask(&a.email),
                active: a.active,
                joined_at: a.joined_at,
            })
            .collect();
        Ok(Json(ReferredResponse {
            success: true,
            accounts,
            total,
        }))
    }
}

fn default_limit() -> u32 {
    50
}
