//! What signed-in users do to their own account: rename, change the
//! password, delete the account.

use ipnet::IpNet;

use super::password_check::{PasswordCheck, check_password};
use super::refusal::{FlowResult, Refusal};
use super::second_factor::{check_step_up, require_code};
use super::sessions::Principal;
use crate::domain::name::{MAX_NAME_LEN, sanitize_name};
use crate::domain::password::{NewPassword, Verdict};
use crate::domain::referral::Referred;
use crate::domain::user::User;
use crate::mail::notices;
use crate::state::AppState;
use crate::store::lockout::LoginSubject;

/// A change to the display name.
pub enum NameChange<'a> {
    /// Leave it as it is (the field was left out).
    Keep,
    /// Remove it (`null`, or nothing left once HTML is stripped).
    Clear,
    /// Set it; HTML is stripped first.
    Set(&'a str),
}

/// Updates the caller's profile and returns it.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    name: NameChange<'_>,
) -> FlowResult<User> {
    let name = match name {
        NameChange::Keep => return Ok(principal.user.clone()),
        NameChange::Clear => None,
        NameChange::Set(raw) => Some(sanitize_name(raw)).filter(|n| !n.is_empty()),
    };
    if name
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NAME_LEN)
    {
        return Err(Refusal::invalid_field(
            "name",
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if !state
        .store
        .update_name(principal.user_id(), name.as_deref())
        .await?
    {
        return Err(Refusal::NotAuthenticated);
    }
    current_user(state, principal).await
}

/// Changes the caller's password after checking the current one (and,
/// with a second factor on, `code`). Every other session of the account
/// ends; this one stays. The account is told by email.
pub async fn change_password(
    state: &AppState,
    principal: &Principal,
    network: IpNet,
    current: &str,
    new_password: &str,
    confirm: &str,
    code: Option<&str>,
) -> FlowResult<()> {
    let user = &principal.user;
    if new_password != confirm {
        return Err(Refusal::invalid_field(
            "confirmPassword",
            "must match newPassword",
        ));
    }
    let password = NewPassword::parse(new_password, &user.email)
        .map_err(|problem| Refusal::invalid_field("newPassword", problem))?;
    let code = require_code(user, code)?;
    confirm_password(state, user, network, current).await?;
    check_step_up(state, user, network, code).await?;
    let hash = state.hasher.hash(&password).await?;
    let notice = notices::password_changed(&state.config.app_url, &user.email);
    state
        .store
        .change_password(&user.id, &principal.session_id, &hash, &notice)
        .await?;
    state.wake_mailer();
    Ok(())
}

/// Deletes the caller's account after checking the password (and, with a
/// second factor on, `code`): sessions, codes and queued emails go with
/// it; accounts it referred stay.
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    network: IpNet,
    password: &str,
    code: Option<&str>,
) -> FlowResult<()> {
    let user = &principal.user;
    let code = require_code(user, code)?;
    confirm_password(state, user, network, password).await?;
    check_step_up(state, user, network, code).await?;
    state.store.delete_user(&user.id).await?;
    Ok(())
}

/// The caller's account; `401` if it vanished since the token was checked.
pub(super) async fn current_user(state: &AppState, principal: &Principal) -> FlowResult<User> {
    state
        .store
        .user_by_id(principal.user_id())
        .await?
        .ok_or(Refusal::NotAuthenticated)
}

/// [`Refusal::WrongPassword`] unless `password` is the user's password.
///
/// Checked like a login (see [`check_password`]): a wrong password here
/// counts towards the account's lockout for the caller's network, and a
/// locked account is refused before any hash runs: a stolen access token
/// must not buy unlimited guesses at the password, and an account's owner
/// cannot make the server hash without bound.
pub(super) async fn confirm_password(
    state: &AppState,
    user: &User,
    network: IpNet,
    password: &str,
) -> FlowResult<()> {
    let check = PasswordCheck {
        subject: LoginSubject::Account(&user.id),
        network,
        stored: Some(&user.password_hash),
        owner: Some(&user.email),
        right_counts: true,
        right_clears: !user.mfa.totp,
    };
    match check_password(state, check, password).await? {
        Verdict::Correct | Verdict::CorrectNeedsRehash => Ok(()),
        Verdict::Wrong => Err(Refusal::WrongPassword),
    }
}

/// A page of the accounts a user referred, with their total.
pub async fn referred(
    state: &AppState,
    user_id: &str,
    limit: u32,
    offset: u32,
) -> FlowResult<(Vec<Referred>, u64)> {
    Ok(state.store.referred_by(user_id, limit, offset).await?)
}
