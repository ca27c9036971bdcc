//! Account flows: signup, activation, password reset, profile reads.

use std::collections::BTreeMap;

use chrono::Utc;

use crate::domain::codes::{OpaqueToken, VerificationCode, budget_key, hashes_equal};
use crate::domain::email::EmailAddress;
use crate::domain::password::NewPassword;
use crate::domain::referral::ReferralCode;
use crate::domain::{CODE_BUDGET_WINDOW, MAX_CODE_ATTEMPTS};
use crate::http::error::{ApiError, ApiResult, ErrorCode};
use crate::mail::{OutgoingEmail, notices, templates};
use crate::state::AppState;
use crate::store::code_budget::{CodeBudget, CodeKind};
use crate::store::users::{CodeAttempt, CodePurpose, InsertUserError, NewCode, NewUser, Referred};

/// Longest display name, in characters, after sanitizing.
pub const MAX_NAME_LEN: usize = 100;

/// A signup request as received.
pub struct SignupRequest<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub confirm_password: &'a str,
    pub referrer: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// What a signup did.
pub enum SignupOutcome {
    Created {
        user_id: String,
        referral_code: String,
    },
    /// The configuration conceals whether the address was taken: the same
    /// answer for a new account and for an existing address.
    Concealed,
}

/// Creates an inactive account and emails its verification code.
pub async fn signup(state: &AppState, req: SignupRequest<'_>) -> ApiResult<SignupOutcome> {
    let mut problems = BTreeMap::new();
    let email = EmailAddress::parse(req.email)
        .map_err(|p| problems.insert("email".into(), p.to_owned()))
        .ok();
    let password = email.as_ref().and_then(|email| {
        NewPassword::parse(req.password, email)
            .map_err(|p| problems.insert("password".into(), p))
            .ok()
    });
    if req.password != req.confirm_password {
        problems.insert("confirmPassword".into(), "must match password".into());
    }
    let name = req.name.map(sanitize_name).filter(|n| !n.is_empty());
    if name
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NAME_LEN)
    {
        problems.insert(
            "name".into(),
            format!("must be at most {MAX_NAME_LEN} characters"),
        );
    }
    let (Some(email), Some(password), true) = (email, password, problems.is_empty()) else {
        return Err(ApiError::validation(problems));
    };
    let referred_by = match req.referrer.map(str::trim).filter(|r| !r.is_empty()) {
        None => None,
        Some(raw) => {
            let code = ReferralCode::parse(raw).ok_or_else(invalid_referrer)?;
            Some(
                state
                    .store
                    .user_id_by_referral_code(code.as_str())
                    .await?
                    .ok_or_else(invalid_referrer)?,
            )
        }
    };
    let password_hash = state.hasher.hash(&password).await?;
    let user_id = uuid::Uuid::now_v7().to_string();
    let code = VerificationCode::generate();
    let mail = templates::verification(
        &state.config.app_url,
        email.as_str(),
        code.expose(),
        state.config.code_ttl,
    );
    let code_hash = code.hash_for(&user_id);
    let new_code = NewCode {
        purpose: CodePurpose::Activation,
        hash: &code_hash,
        expires_at: Utc::now() + state.config.code_ttl,
    };
    // A referral code collision is astronomically rare; retry a few times.
    for _ in 0..5 {
        let referral_code = ReferralCode::generate();
        let user = NewUser {
            id: &user_id,
            email: email.as_str(),
            password_hash: &password_hash,
            name: name.as_deref(),
            referral_code: referral_code.as_str(),
            referred_by: referred_by.as_deref(),
        };
        match state.store.insert_user(&user, &new_code, &mail).await {
            Ok(()) if state.config.signup_conceals_existing => {
                state.metrics.signup();
                state.wake_mailer();
                return Ok(SignupOutcome::Concealed);
            }
            Ok(()) => {
                state.metrics.signup();
                state.wake_mailer();
                return Ok(SignupOutcome::Created {
                    user_id,
                    referral_code: referral_code.as_str().to_owned(),
                });
            }
            Err(InsertUserError::EmailTaken) if state.config.signup_conceals_existing => {
                tell_owner_of_signup_attempt(state, &email).await?;
                return Ok(SignupOutcome::Concealed);
            }
            Err(InsertUserError::EmailTaken) => {
                return Err(ApiError::new(
                    ErrorCode::EmailInUse,
                    "Email is already in use",
                ));
            }
            Err(InsertUserError::ReferralCodeTaken) => continue,
            Err(InsertUserError::Other(e)) => return Err(e.into()),
        }
    }
    Err(ApiError::internal(anyhow::anyhow!(
        "could not find a free referral code"
    )))
}

/// Activates an account with the emailed code.
///
/// Unknown addresses, wrong, expired and used-up codes all answer the same
/// `INVALID_CODE`. `ALREADY_ACTIVE` is only answered to someone who presents
/// the very code that activated the account, so it reveals nothing to a
/// guesser about which addresses exist. Every refused code counts in the
/// address's daily budget, with or without an account; once it is spent,
/// every code is refused until the budget refills.
pub async fn activate(state: &AppState, email: &str, code: &str) -> ApiResult<()> {
    let invalid = || ApiError::new(ErrorCode::InvalidCode, "Invalid or expired code");
    let (Ok(email), Some(code)) = (EmailAddress::parse(email), VerificationCode::parse(code))
    else {
        return Err(invalid());
    };
    let key = budget_key(&email);
    let budget = code_budget(state, &key, CodeKind::Activation);
    let Some(user) = state.store.user_by_email(email.as_str()).await? else {
        state.store.reject_code(&budget).await?;
        return Err(invalid());
    };
    let presented = code.hash_for(&user.id);
    let outcome = state
        .store
        .attempt_activation(&user.id, &budget, MAX_CODE_ATTEMPTS, |stored| {
            hashes_equal(stored, &presented)
        })
        .await?;
    match outcome {
        CodeAttempt::Accepted => Ok(()),
        CodeAttempt::AlreadyUsed if user.active => Err(ApiError::new(
            ErrorCode::AlreadyActive,
            "Account is already active",
        )),
        CodeAttempt::AlreadyUsed | CodeAttempt::Rejected => Err(invalid()),
    }
}

/// The budget of wrong codes of `kind` for the address behind `key`.
pub(super) fn code_budget<'a>(state: &AppState, key: &'a [u8], kind: CodeKind) -> CodeBudget<'a> {
    CodeBudget {
        address_key: key,
        kind,
        max_failures: state.config.code_max_failures_per_day,
        window: CODE_BUDGET_WINDOW,
    }
}

/// Sends a new verification code to an inactive account; silent otherwise.
/// Nothing is sent while the address's budget of wrong codes is spent (a
/// new code would be refused anyway); the answer is the same.
pub async fn resend_activation(state: &AppState, email: &str) -> ApiResult<()> {
    let email = EmailAddress::parse(email).map_err(|p| ApiError::invalid_field("email", p))?;
    let Some(user) = state.store.user_by_email(email.as_str()).await? else {
        return Ok(());
    };
    if user.active || user.disabled {
        return Ok(());
    }
    let key = budget_key(&email);
    if state
        .store
        .code_budget_spent(&code_budget(state, &key, CodeKind::Activation))
        .await?
    {
        return Ok(());
    }
    let code = VerificationCode::generate();
    let mail = templates::verification(
        &state.config.app_url,
        &user.email,
        code.expose(),
        state.config.code_ttl,
    );
    let hash = code.hash_for(&user.id);
    send_code(state, &user.id, CodePurpose::Activation, &hash, &mail).await
}

/// Emails a password reset token if the account exists; silent otherwise.
pub async fn forgot_password(state: &AppState, email: &str) -> ApiResult<()> {
    let email = EmailAddress::parse(email).map_err(|p| ApiError::invalid_field("email", p))?;
    let Some(user) = state.store.user_by_email(email.as_str()).await? else {
        return Ok(());
    };
    if user.disabled {
        return Ok(());
    }
    let token = OpaqueToken::generate();
    let mail = templates::password_reset(
        &state.config.app_url,
        &user.email,
        token.expose(),
        state.config.code_ttl,
    );
    send_code(
        state,
        &user.id,
        CodePurpose::PasswordReset,
        &token.hash(),
        &mail,
    )
    .await
}

/// Replaces the user's code of `purpose` with `hash` and queues `mail`,
/// unless the email throttle holds it back. Throttled or not, the caller
/// answers the same: throttling must not reveal which addresses have accounts.
async fn send_code(
    state: &AppState,
    user_id: &str,
    purpose: CodePurpose,
    hash: &[u8],
    mail: &OutgoingEmail,
) -> ApiResult<()> {
    let new_code = NewCode {
        purpose,
        hash,
        expires_at: Utc::now() + state.config.code_ttl,
    };
    let min_interval = state.config.email_min_interval;
    if state
        .store
        .issue_code(user_id, &new_code, mail, min_interval)
        .await?
    {
        state.wake_mailer();
    }
    Ok(())
}

/// Sets a new password with a reset token; revokes every session of the user.
pub async fn reset_password(
    state: &AppState,
    token: &str,
    new_password: &str,
    confirm: &str,
) -> ApiResult<()> {
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidToken,
            "Password reset token is invalid or has expired",
        )
    };
    let token = OpaqueToken::parse(token).ok_or_else(invalid)?;
    if new_password != confirm {
        return Err(ApiError::invalid_field(
            "confirmPassword",
            "must match newPassword",
        ));
    }
    // The policy's "not your email" rule needs the account; find it without
    // spending the token, then spend it atomically with the new hash.
    let owner = state
        .store
        .user_by_reset_token(&token.hash())
        .await?
        .ok_or_else(invalid)?;
    let email = EmailAddress::parse(&owner.email).map_err(|_| invalid())?;
    let password = NewPassword::parse(new_password, &email)
        .map_err(|p| ApiError::invalid_field("newPassword", p))?;
    let hash = state.hasher.hash(&password).await?;
    state
        .store
        .reset_password(
            &token.hash(),
            &hash,
            &notices::password_changed(&state.config.app_url, &owner.email),
        )
        .await?
        .ok_or_else(invalid)?;
    state.wake_mailer();
    Ok(())
}

/// A page of the accounts a user referred, with their total.
pub async fn referred(
    state: &AppState,
    user_id: &str,
    limit: u32,
    offset: u32,
) -> ApiResult<(Vec<Referred>, u64)> {
    Ok(state.store.referred_by(user_id, limit, offset).await?)
}

/// Strips every HTML tag and collapses whitespace in a display name.
pub fn sanitize_name(raw: &str) -> String {
    let stripped = ammonia::Builder::empty().clean(raw).to_string();
    // ammonia escapes what it keeps; names are plain text, so undo that and
    // drop angle brackets outright: no stored name can ever look like a tag.
    // Control characters (NUL, BEL, ESC, DEL...) are dropped too; whitespace
    // runs become one space.
    let text = stripped
        .replace("&lt;", "")
        .replace("&gt;", "")
        .replace("&amp;", "&");
    text.split_whitespace()
        .map(|word| word.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Emails the owner of a taken address instead of telling the requester.
async fn tell_owner_of_signup_attempt(state: &AppState, email: &EmailAddress) -> ApiResult<()> {
    if let Some(owner) = state.store.user_by_email(email.as_str()).await? {
        let mail = templates::signup_attempt(&state.config.app_url, &owner.email);
        let min_interval = state.config.email_min_interval;
        if state
            .store
            .queue_email(Some(&owner.id), &mail, min_interval)
            .await?
        {
            state.wake_mailer();
        }
    }
    Ok(())
}

fn invalid_referrer() -> ApiError {
    ApiError::new(ErrorCode::InvalidReferralCode, "Unknown referral code")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_markup() {
        assert_eq!(
            sanitize_name("  <b>Sam</b>  <script>alert(1)</script>Doe "),
            "Sam Doe"
        );
        assert_eq!(sanitize_name("Tom & Jerry"), "Tom & Jerry");
        assert_eq!(sanitize_name("&lt;script&gt;x"), "scriptx");
    }
}
