//! Moving an account to another email address: a 6-digit code goes to the
//! new address (the same rules as activation codes: hashed, expiring, five
//! tries, a newer one voids the older), a notice to the current one; the
//! code moves the account.

use chrono::Utc;

use ipnet::IpNet;

use super::profile::{confirm_password, current_user};
use super::refusal::{FlowResult, Refusal};
use super::second_factor::{check_step_up, require_code};
use super::sessions::Principal;
use super::signup::code_budget;
use crate::domain::MAX_CODE_ATTEMPTS;
use crate::domain::codes::{OpaqueToken, VerificationCode, budget_key, hashes_equal};
use crate::domain::email::EmailAddress;
use crate::domain::user::User;
use crate::mail::notices;
use crate::state::AppState;
use crate::store::account::{EmailChangeAttempt, NewEmailChange};
use crate::store::code_budget::CodeKind;
use crate::store::email_reverts::NewEmailRevert;

/// Checks the password (and, with a second factor on, `code`) and sends a
/// confirmation code to `new_email`, at
/// most one per `SESAME_EMAIL_MIN_INTERVAL_SECS` to one address (so an
/// account cannot be used to flood someone's mailbox).
///
/// An address that already has an account is refused with `409` here
/// (unless signups conceal existing accounts: then nothing is sent and the
/// answer is the same as for a free address), and again at confirmation,
/// where the unique index decides who gets an address two accounts claim.
pub async fn request(
    state: &AppState,
    principal: &Principal,
    network: IpNet,
    password: &str,
    new_email: &str,
    code: Option<&str>,
) -> FlowResult<()> {
    let new_email =
        EmailAddress::parse(new_email).map_err(|p| Refusal::invalid_field("newEmail", p))?;
    let user = &principal.user;
    if new_email == user.email {
        return Err(Refusal::invalid_field(
            "newEmail",
            "is already the address of your account",
        ));
    }
    let code = require_code(user, code)?;
    confirm_password(state, user, network, password).await?;
    check_step_up(state, user, network, code).await?;
    let key = budget_key(&user.email);
    if state
        .store
        .code_budget_spent(&code_budget(state, &key, CodeKind::EmailChange))
        .await?
    {
        // Too many wrong codes today: no new one until the budget refills
        // (the answer is the same as when a code is sent).
        return Ok(());
    }
    let taken = state.store.user_by_email(&new_email).await?.is_some()
        || state.store.address_reserved(&new_email, &user.id).await?;
    if taken {
        if state.config.signup_conceals_existing {
            return Ok(());
        }
        return Err(Refusal::EmailInUse);
    }
    let code = VerificationCode::generate();
    let code_hash = code.hash_for_email_change(&user.id);
    let code_email = notices::email_change_code(&new_email, code.expose(), state.config.code_ttl);
    let notice = notices::email_change_requested(&state.config.app_url, &user.email, &new_email);
    let change = NewEmailChange {
        new_email: &new_email,
        code_hash: &code_hash,
        expires_at: Utc::now() + state.config.code_ttl,
    };
    // Throttled (a code went to that address moments ago) or not, the
    // answer is the same; a throttled request leaves the pending code valid.
    if state
        .store
        .issue_email_change(
            &user.id,
            &change,
            &code_email,
            &notice,
            state.config.email_min_interval,
        )
        .await?
    {
        // Two emails queued: the code and the notice (each counts in /metrics).
        state.wake_mailer();
        state.wake_mailer();
    }
    Ok(())
}

/// Spends the code sent to the new address and moves the account there.
/// The old address gets a notice with a link that undoes the move (see
/// [`super::email_revert`]); until that link expires, the old address stays
/// reserved for this account.
pub async fn confirm(state: &AppState, principal: &Principal, code: &str) -> FlowResult<User> {
    let code = VerificationCode::parse(code).ok_or(Refusal::InvalidCode)?;
    let presented = code.hash_for_email_change(principal.user_id());
    let key = budget_key(&principal.user.email);
    let token = OpaqueToken::generate();
    let notice = |new_email: &EmailAddress| {
        notices::email_changed(
            &state.config.app_url,
            &principal.user.email,
            new_email,
            token.expose(),
            state.config.email_revert_ttl,
        )
    };
    let revert = NewEmailRevert {
        old_email: &principal.user.email,
        token_hash: &token.hash(),
        expires_at: Utc::now() + state.config.email_revert_ttl,
        notice: &notice,
    };
    let outcome = state
        .store
        .attempt_email_change(
            principal.user_id(),
            &principal.session_id,
            &revert,
            &code_budget(state, &key, CodeKind::EmailChange),
            MAX_CODE_ATTEMPTS,
            |stored| hashes_equal(stored, &presented),
        )
        .await?;
    match outcome {
        EmailChangeAttempt::Changed => {
            state.wake_mailer();
            current_user(state, principal).await
        }
        EmailChangeAttempt::EmailTaken => Err(Refusal::EmailInUse),
        EmailChangeAttempt::Rejected => Err(Refusal::InvalidCode),
    }
}
