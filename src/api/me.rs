//! Endpoints of the signed-in user.

use chrono::{DateTime, Utc};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::auth::BearerAuth;
use super::{ApiTags, MessageResponse, State};
use crate::domain::accounts;
use crate::domain::email::EmailAddress;
use crate::domain::sessions;
use crate::error_responses;
use crate::store::users::User;

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
    /// Display name, if set.
    pub name: Option<String>,
    /// Whether the email address was verified.
    pub active: bool,
    /// `user` or `admin`.
    pub role: String,
    /// The user's own referral code, to share.
    pub referral_code: String,
    /// Referral code of the user who invited this one, if any.
    pub referred_by: Option<String>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the account last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            user_id: u.id,
            email: u.email,
            name: u.name,
            active: u.active,
            role: u.role,
            referral_code: u.referral_code,
            referred_by: u.referred_by_code,
            created_at: u.created_at,
            updated_at: u.updated_at,
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

/// Options of `POST /users/logout`.
#[derive(Object)]
pub struct LogoutBody {
    /// End every session of the account, not only this one.
    #[oai(default)]
    pub all: bool,
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

#[OpenApi(tag = "ApiTags::Me")]
impl MeApi {
    /// Who am I?
    ///
    /// The profile of the signed-in user.
    #[oai(path = "/users/me", method = "get", operation_id = "getMe")]
    async fn me(&self, state: State<'_>, auth: BearerAuth) -> Result<Json<MeResponse>, AuthErrors> {
        let user = accounts::profile(&state, &auth.0.user_id).await?;
        Ok(Json(MeResponse {
            success: true,
            user: user.into(),
        }))
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
        #[oai(default, validator(maximum(value = "1000000000")))]
        offset: Query<u32>,
    ) -> Result<Json<ReferredResponse>, PagingErrors> {
        let (accounts, total) =
            accounts::referred(&state, &auth.0.user_id, limit.0, offset.0).await?;
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

    /// Log out (tutorial style)
    ///
    /// Ends the current session: its access and refresh tokens stop working at once.
    #[oai(path = "/users/logout", method = "get", operation_id = "logoutGet")]
    async fn logout_get(
        &self,
        state: State<'_>,
        auth: BearerAuth,
    ) -> Result<Json<MessageResponse>, AuthErrors> {
        sessions::logout(&state, &auth.0, false).await?;
        Ok(Json(MessageResponse::new("Logged out.")))
    }

    /// Log out
    ///
    /// Ends the current session, or with `{"all": true}` every session of the
    /// account. The body is optional.
    #[oai(path = "/users/logout", method = "post", operation_id = "logout")]
    async fn logout_post(
        &self,
        state: State<'_>,
        auth: BearerAuth,
        body: Json<Option<LogoutBody>>,
    ) -> Result<Json<MessageResponse>, AuthInputErrors> {
        let all = body.0.is_some_and(|b| b.all);
        sessions::logout(&state, &auth.0, all).await?;
        let message = if all {
            "Logged out of every session."
        } else {
            "Logged out."
        };
        Ok(Json(MessageResponse::new(message)))
    }
}

fn default_limit() -> u32 {
    50
}
