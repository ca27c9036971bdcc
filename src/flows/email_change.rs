//! Moving an account to another email address: a 6-digit code goes to the
//! new address (the same rules as activation codes: hashed, expiring, five
//! tries, a newer one voids the older), a notice to the current one; the
//! code moves the account.

use chrono::Utc;

use super::profile::{confirm_password, current_user};
use super::sessions::Principal;
use super::signup::code_budget;
use crate::domain::MAX_CODE_ATTEMPTS;
use crate::domain::codes::{VerificationCode, budget_key, hashes_equal};
use crate::domain::email::EmailAddress;
use crate::domain::user::User;
use crate::http::error::{ApiError, ApiResult, ErrorCode};
use crate::mail::notices;
use crate::state::AppState;
use crate::store::account::{EmailChangeAttempt, NewEmailChange};
use crate::store::code_budget::CodeKind;

/// Checks the password and sends a confirmation code to `new_email`, at
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
    password: &str,
    new_email: &str,
) -> ApiResult<()> {
    let new_email =
        EmailAddress::parse(new_email).map_err(|p| ApiError::invalid_field("newEmail", p))?;
    let user = &principal.user;
    if new_email.as_str() == user.email {
        return Err(ApiError::invalid_field(
            "newEmail",
            "is already the address of your account",
        ));
    }
    confirm_password(state, user, password).await?;
    let key = budget_key(&current_address(user)?);
    if state
        .store
        .code_budget_spent(&code_budget(state, &key, CodeKind::EmailChange))
        .await?
    {
        // Too many wrong codes today: no new one until the budget refills
        // (the answer is the same as when a code is sent).
        return Ok(());
    }
    if state
        .store
        .user_by_email(new_email.as_str())
        .await?
        .is_some()
    {
        if state.config.signup_conceals_existing {
            return Ok(());
        }
        return Err(email_in_use());
    }
    let code = VerificationCode::generate();
    let code_hash = code.hash_for_email_change(&user.id);
    let code_email =
        notices::email_change_code(new_email.as_str(), code.expose(), state.config.code_ttl);
    let notice =
        notices::email_change_requested(&state.config.app_url, &user.email, new_email.as_str());
    let change = NewEmailChange {
        new_email: new_email.as_str(),
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
pub async fn confirm(state: &AppState, principal: &Principal, code: &str) -> ApiResult<User> {
    let invalid = || ApiError::new(ErrorCode::InvalidCode, "Invalid or expired code");
    let code = VerificationCode::parse(code).ok_or_else(invalid)?;
    let presented = code.hash_for_email_change(principal.user_id());
    let key = budget_key(&current_address(&principal.user)?);
    let outcome = state
        .store
        .attempt_email_change(
            principal.user_id(),
            &principal.session_id,
            &code_budget(state, &key, CodeKind::EmailChange),
            MAX_CODE_ATTEMPTS,
            |stored| hashes_equal(stored, &presented),
        )
        .await?;
    match outcome {
        EmailChangeAttempt::Changed => current_user(state, principal).await,
        EmailChangeAttempt::EmailTaken => Err(email_in_use()),
        EmailChangeAttempt::Rejected => Err(invalid()),
    }
}

fn email_in_use() -> ApiError {
    ApiError::new(ErrorCode::EmailInUse, "Email is already in use")
}

/// The account's address as stored (normalized when it was set).
fn current_address(user: &User) -> ApiResult<EmailAddress> {
    EmailAddress::parse(&user.email)
        .map_err(|_| ApiError::internal(anyhow::anyhow!("stored email does not parse")))
}
