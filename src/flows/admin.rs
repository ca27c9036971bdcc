//! What administrators may do, and making the first one.
//!
//! Who is an admin is read from the database on every request (the same
//! read that checks the session, see [`super::sessions::authenticate`]), not
//! from the token's `role` claim: a demoted admin loses admin access on the
//! very next request, not when their access token expires.

use super::mfa;
use super::refusal::{FlowResult, Refusal};
use super::sessions::Principal;
use crate::domain::email::EmailAddress;
use crate::domain::password::{NewPassword, PasswordHasher};
use crate::domain::referral::ReferralCode;
use crate::domain::user::AdminUserRecord;
use crate::domain::user::Role;
use crate::state::AppState;
use crate::store::Store;
use crate::store::admin::UserChanges;
use crate::store::users::{InsertUserError, NewUser};

/// An administrator's change to an account; `None` leaves a field alone.
pub struct UserPatch {
    pub active: Option<bool>,
    pub disabled: Option<bool>,
    pub role: Option<Role>,
    /// Only `false` (end a lockout) can be set; locking is done by failed logins.
    pub locked: Option<bool>,
    /// Only `false` (turn the second factor off, for a lost device) can be
    /// set; only the owner turns it on.
    pub mfa: Option<bool>,
}

/// `403 FORBIDDEN` unless the caller is an admin now.
fn require_admin(actor: &Principal) -> FlowResult<()> {
    if actor.user.role == Role::Admin {
        Ok(())
    } else {
        Err(Refusal::Forbidden("This needs an administrator account"))
    }
}

fn not_found() -> Refusal {
    Refusal::NotFound("No such user")
}

/// A page of users whose email contains `search`, with the total.
pub async fn list_users(
    state: &AppState,
    actor: &Principal,
    search: Option<&str>,
    limit: u32,
    offset: u32,
) -> FlowResult<(Vec<AdminUserRecord>, u64)> {
    require_admin(actor)?;
    // Emails are stored lower-cased; so is the search.
    let search = search
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    Ok(state
        .store
        .admin_list_users(search.as_deref(), limit, offset)
        .await?)
}

/// One user.
pub async fn get_user(
    state: &AppState,
    actor: &Principal,
    user_id: &str,
) -> FlowResult<AdminUserRecord> {
    require_admin(actor)?;
    state.store.admin_user(user_id).await?.ok_or_else(not_found)
}

/// Changes an account. Disabling ends every session of it at once;
/// `mfa: false` turns its second factor off and tells the owner.
/// Admins cannot disable or demote themselves here: the last admin could
/// lock everyone out.
pub async fn update_user(
    state: &AppState,
    actor: &Principal,
    user_id: &str,
    patch: UserPatch,
) -> FlowResult<AdminUserRecord> {
    require_admin(actor)?;
    if patch.locked == Some(true) {
        return Err(Refusal::invalid_field(
            "locked",
            "can only be set to false (to end a lockout); use `disabled` to block an account",
        ));
    }
    if patch.mfa == Some(true) {
        return Err(Refusal::invalid_field(
            "mfa",
            "can only be set to false (to turn the second factor off); only the account's \
             owner can turn it on",
        ));
    }
    if user_id == actor.user_id()
        && (patch.disabled == Some(true) || patch.role == Some(Role::User))
    {
        return Err(Refusal::Forbidden(
            "Admins cannot disable or demote their own account; ask another admin",
        ));
    }
    if patch.active.is_none()
        && patch.disabled.is_none()
        && patch.role.is_none()
        && patch.locked.is_none()
        && patch.mfa.is_none()
    {
        // Nothing to change: not even `updatedAt` moves.
        return state.store.admin_user(user_id).await?.ok_or_else(not_found);
    }
    let changes = UserChanges {
        active: patch.active,
        disabled: patch.disabled,
        role: patch.role,
        clear_lockout: patch.locked == Some(false),
    };
    if !state.store.admin_update_user(user_id, &changes).await? {
        return Err(not_found());
    }
    if patch.mfa == Some(false) {
        let user = state
            .store
            .user_by_id(user_id)
            .await?
            .ok_or_else(not_found)?;
        if mfa::reset(&state.store, &state.config.app_url, &user).await? {
            tracing::info!(user_id, "an administrator turned a second factor off");
            state.wake_mailer();
        }
    }
    state.store.admin_user(user_id).await?.ok_or_else(not_found)
}

/// Deletes an account, as `DELETE /users/me` would. Not one's own: use
/// `DELETE /users/me`, which asks for the password.
pub async fn delete_user(state: &AppState, actor: &Principal, user_id: &str) -> FlowResult<()> {
    require_admin(actor)?;
    if user_id == actor.user_id() {
        return Err(Refusal::Forbidden(
            "Admins cannot delete their own account here; use DELETE /users/me",
        ));
    }
    if state.store.delete_user(user_id).await? {
        Ok(())
    } else {
        Err(not_found())
    }
}

/// Creates an active admin account (for `sesame admin create`); returns its
/// id. The errors are sentences for the operator.
pub async fn create_admin(
    store: &Store,
    hasher: &PasswordHasher,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let email =
        EmailAddress::parse(email).map_err(|problem| anyhow::anyhow!("--email {problem}"))?;
    let password = NewPassword::parse(password, &email)
        .map_err(|problem| anyhow::anyhow!("the password {problem}"))?;
    let password_hash = hasher.hash(&password).await?;
    let id = uuid::Uuid::now_v7().to_string();
    // A referral code collision is astronomically rare; retry a few times.
    for _ in 0..5 {
        let referral_code = ReferralCode::generate();
        let user = NewUser {
            id: &id,
            email: &email,
            password_hash: &password_hash,
            name: None,
            referral_code: referral_code.as_str(),
            referred_by: None,
        };
        match store.insert_admin(&user).await {
            Ok(()) => return Ok(id),
            Err(InsertUserError::EmailTaken) => {
                anyhow::bail!("an account with the email {email} already exists")
            }
            Err(InsertUserError::ReferralCodeTaken) => continue,
            Err(InsertUserError::Other(e)) => return Err(e),
        }
    }
    anyhow::bail!("could not find a free referral code")
}
