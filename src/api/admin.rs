//! Administration of every account. Only users whose role is `admin` *now*
//! (read from the database on each request) get past `403 FORBIDDEN`.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::bearer::BearerAuth;
use super::me::UserView;
use super::shared::{ApiTags, MessageResponse, State};
use crate::domain::user::{AdminUserRecord, Role};
use crate::error_responses;
use crate::flows::admin::{self, UserPatch};

/// The accounts, as administrators manage them.
pub struct AdminApi;

/// A user as administrators see it: the profile and its access state.
#[derive(Object)]
#[oai(rename_all = "camelCase", rename = "AdminUser")]
pub struct AdminUserView {
    /// The profile, as `GET /users/me` shows it (its fields are inlined).
    #[oai(flatten)]
    pub user: UserView,
    /// Disabled accounts cannot log in, and lose every session when disabled.
    pub disabled: bool,
    /// While in the future, failed logins have locked the account until then; `null` when not locked.
    #[oai(nullable)]
    pub locked_until: Option<DateTime<Utc>>,
    /// When the account last logged in; `null` if never.
    #[oai(nullable)]
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<AdminUserRecord> for AdminUserView {
    fn from(r: AdminUserRecord) -> Self {
        AdminUserView {
            disabled: r.user.disabled,
            user: r.user.into(),
            locked_until: r.locked_until,
            last_login_at: r.last_login_at,
        }
    }
}

/// A page of users.
#[derive(Object)]
pub struct AdminUsersResponse {
    /// Always `true`.
    pub success: bool,
    /// This page, oldest account first.
    pub users: Vec<AdminUserView>,
    /// How many users match the search in all.
    pub total: u64,
}

/// One user.
#[derive(Object)]
pub struct AdminUserResponse {
    /// Always `true`.
    pub success: bool,
    // No doc comment: it would make the `$ref` an `allOf` that generators
    // turn into a second copy of the schema.
    pub user: AdminUserView,
}

/// A role a user can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum RoleName {
    /// An ordinary account.
    User,
    /// May use the `/admin` endpoints.
    Admin,
}

/// Changes to an account; a field left out stays as it is.
#[derive(Object)]
pub struct AdminUpdateBody {
    /// Whether the email address counts as verified. `false` does not end
    /// sessions; use `disabled` to lock someone out.
    #[oai(nullable)]
    pub active: Option<bool>,
    /// `true` blocks logins and ends every session at once; `false` allows logins again.
    #[oai(nullable)]
    pub disabled: Option<bool>,
    // `user` or `admin`; a demoted admin loses admin access on the next
    // request. (No doc comment: see `AdminUserResponse::user`; the enum's
    // own description shows in the spec.)
    pub role: Option<RoleName>,
    /// `false` ends a lockout from failed logins (and resets their count).
    /// `true` is refused: use `disabled` to block an account.
    #[oai(nullable)]
    pub locked: Option<bool>,
    /// `false` turns the second factor off (TOTP and recovery codes, for a
    /// lost device) and emails the owner. `true` is refused: only the owner
    /// turns it on.
    #[oai(nullable)]
    pub mfa: Option<bool>,
}

error_responses!(
    /// Errors of the user list.
    AdminListErrors {
        400 => "`VALIDATION_FAILED`: `limit` outside 1–200, a bad `offset`, or `search` too long.",
        401 => "`UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        403 => "`FORBIDDEN`: the caller is not an admin.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of reading or deleting one user.
    AdminUserErrors {
        401 => "`UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        403 => "`FORBIDDEN`: the caller is not an admin (or, on delete, names their own account).",
        404 => "`NOT_FOUND`: no user has this id.",
        500 => "`INTERNAL_ERROR`.",
    }
);

error_responses!(
    /// Errors of changing a user.
    AdminUpdateErrors {
        400 => "`VALIDATION_FAILED`: a field of the wrong type, an unknown `role`, `locked: true`, `mfa: true`, or malformed JSON.",
        401 => "`UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        403 => "`FORBIDDEN`: the caller is not an admin, or tries to disable or demote their own account.",
        404 => "`NOT_FOUND`: no user has this id.",
        413 => "`PAYLOAD_TOO_LARGE`.",
        415 => "`UNSUPPORTED_MEDIA_TYPE`.",
        500 => "`INTERNAL_ERROR`.",
    }
);

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// List users
    ///
    /// Every account, oldest first, optionally only those whose email
    /// contains `search` (case-insensitive).
    #[oai(path = "/admin/users", method = "get", operation_id = "listAccounts")]
    async fn list(
        &self,
        state: State<'_>,
        auth: BearerAuth,
        /// Part of the email address to look for.
        #[oai(validator(max_length = 320))]
        search: Query<Option<String>>,
        /// Page size, 1 to 200.
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
        /// How many users to skip.
        #[oai(
            default,
            validator(minimum(value = "0"), maximum(value = "1000000000"))
        )]
        offset: Query<u32>,
    ) -> Result<Json<AdminUsersResponse>, AdminListErrors> {
        let (users, total) =
            admin::list_users(&state, &auth.0, search.0.as_deref(), limit.0, offset.0).await?;
        Ok(Json(AdminUsersResponse {
            success: true,
            users: users.into_iter().map(AdminUserView::from).collect(),
            total,
        }))
    }

    /// Get a user
    #[oai(
        path = "/admin/users/:userId",
        method = "get",
        operation_id = "getAccount"
    )]
    async fn get(
        &self,
        state: State<'_>,
        auth: BearerAuth,
        /// Id of the user.
        #[oai(name = "userId")]
        user_id: Path<String>,
    ) -> Result<Json<AdminUserResponse>, AdminUserErrors> {
        let user = admin::get_user(&state, &auth.0, &user_id).await?;
        Ok(Json(AdminUserResponse {
            success: true,
            user: user.into(),
        }))
    }

    /// Change a user
    ///
    /// Sets `active`, `disabled`, `role`, ends a lockout with
    /// `locked: false`, or turns the second factor off with `mfa: false`
    /// (the owner is emailed). Disabling ends every session of the account at once.
    #[oai(
        path = "/admin/users/:userId",
        method = "patch",
        operation_id = "updateAccount"
    )]
    async fn update(
        &self,
        state: State<'_>,
        auth: BearerAuth,
        /// Id of the user.
        #[oai(name = "userId")]
        user_id: Path<String>,
        body: Json<AdminUpdateBody>,
    ) -> Result<Json<AdminUserResponse>, AdminUpdateErrors> {
        let patch = UserPatch {
            active: body.active,
            disabled: body.disabled,
            role: body.role.map(|r| match r {
                RoleName::User => Role::User,
                RoleName::Admin => Role::Admin,
            }),
            locked: body.locked,
            mfa: body.mfa,
        };
        let user = admin::update_user(&state, &auth.0, &user_id, patch).await?;
        Ok(Json(AdminUserResponse {
            success: true,
            user: user.into(),
        }))
    }

    /// Delete a user
    ///
    /// Removes the account with its sessions, codes and queued emails, as
    /// `DELETE /users/me` does; accounts it referred keep theirs.
    #[oai(
        path = "/admin/users/:userId",
        method = "delete",
        operation_id = "deleteAccount"
    )]
    async fn delete(
        &self,
        state: State<'_>,
        auth: BearerAuth,
        /// Id of the user.
        #[oai(name = "userId")]
        user_id: Path<String>,
    ) -> Result<Json<MessageResponse>, AdminUserErrors> {
        admin::delete_user(&state, &auth.0, &user_id).await?;
        Ok(Json(MessageResponse::new("User deleted.")))
    }
}

fn default_limit() -> u32 {
    50
}
