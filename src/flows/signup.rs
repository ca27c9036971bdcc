//! Signing up: the new account, its activation code, and sending a new one.

use std::collections::BTreeMap;

use chrono::Utc;

use super::refusal::{FlowResult, Refusal};
use crate::domain::codes::{VerificationCode, budget_key, hashes_equal};
use crate::domain::email::EmailAddress;
use crate::domain::name::{MAX_NAME_LEN, sanitize_name};
use crate::domain::password::NewPassword;
use crate::domain::referral::ReferralCode;
use crate::domain::user::User;
use crate::domain::{CODE_BUDGET_WINDOW, MAX_CODE_ATTEMPTS};
use crate::mail::{OutgoingEmail, templates};
use crate::state::AppState;
use crate::store::address_requests::AddressRequest;
use crate::store::code_budget::{CodeBudget, CodeKind};
use crate::store::users::{CodeAttempt, CodePurpose, InsertUserError, NewCode, NewUser};

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
pub async fn signup(state: &AppState, req: SignupRequest<'_>) -> FlowResult<SignupOutcome> {
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
        return Err(Refusal::Invalid(problems));
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
        &email,
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
            email: &email,
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
                return Err(Refusal::EmailInUse);
            }
            Err(InsertUserError::ReferralCodeTaken) => continue,
            Err(InsertUserError::Other(e)) => return Err(e.into()),
        }
    }
    Err(Refusal::Internal(anyhow::anyhow!(
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
pub async fn activate(state: &AppState, email: &str, code: &str) -> FlowResult<()> {
    let (Ok(email), Some(code)) = (EmailAddress::parse(email), VerificationCode::parse(code))
    else {
        return Err(Refusal::InvalidCode);
    };
    let key = budget_key(&email);
    let budget = code_budget(state, &key, CodeKind::Activation);
    let Some(user) = state.store.user_by_email(&email).await? else {
        state.store.reject_code(&budget).await?;
        return Err(Refusal::InvalidCode);
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
        CodeAttempt::AlreadyUsed if user.active => Err(Refusal::AlreadyActive),
        CodeAttempt::AlreadyUsed | CodeAttempt::Rejected => Err(Refusal::InvalidCode),
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
pub async fn resend_activation(state: &AppState, email: &str) -> FlowResult<()> {
    let email = EmailAddress::parse(email).map_err(|p| Refusal::invalid_field("email", p))?;
    match state.store.user_by_email(&email).await? {
        Some(user) => resend_code(state, &user).await,
        None => note_request(state, &email, CodePurpose::Activation).await,
    }
}

/// Sends a new verification code to `user` unless the account is active or
/// disabled, the address's budget of wrong codes is spent, or a code went
/// out moments ago (the email throttle). Sent or not, the request costs
/// one write, as one for an address without an account does.
pub(super) async fn resend_code(state: &AppState, user: &User) -> FlowResult<()> {
    let key = budget_key(&user.email);
    if user.active
        || user.disabled
        || state
            .store
            .code_budget_spent(&code_budget(state, &key, CodeKind::Activation))
            .await?
    {
        return note_request(state, &user.email, CodePurpose::Activation).await;
    }
    let code = VerificationCode::generate();
    let mail = templates::verification(
        &state.config.app_url,
        &user.email,
        code.expose(),
        state.config.code_ttl,
    );
    let hash = code.hash_for(&user.id);
    send_code(state, user, CodePurpose::Activation, &hash, &mail).await
}

/// Counts a request for `email` that sends nothing: the one write a request
/// that sends a code makes too, so the time of the answer tells nothing.
pub(super) async fn note_request(
    state: &AppState,
    email: &EmailAddress,
    purpose: CodePurpose,
) -> FlowResult<()> {
    let key = budget_key(email);
    let request = AddressRequest {
        address_key: &key,
        purpose,
    };
    state.store.note_address_request(&request).await?;
    Ok(())
}

/// Replaces the user's code of `purpose` with `hash` and queues `mail`,
/// unless the email throttle holds it back. Throttled or not, the caller
/// answers the same: throttling must not reveal which addresses have accounts.
pub(super) async fn send_code(
    state: &AppState,
    user: &User,
    purpose: CodePurpose,
    hash: &[u8],
    mail: &OutgoingEmail,
) -> FlowResult<()> {
    let new_code = NewCode {
        purpose,
        hash,
        expires_at: Utc::now() + state.config.code_ttl,
    };
    let key = budget_key(&user.email);
    let request = AddressRequest {
        address_key: &key,
        purpose,
    };
    let min_interval = state.config.email_min_interval;
    if state
        .store
        .issue_code(&user.id, &new_code, mail, min_interval, &request)
        .await?
    {
        state.wake_mailer();
    }
    Ok(())
}

/// Emails the owner of a taken address instead of telling the requester.
async fn tell_owner_of_signup_attempt(state: &AppState, email: &EmailAddress) -> FlowResult<()> {
    if let Some(owner) = state.store.user_by_email(email).await? {
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

fn invalid_referrer() -> Refusal {
    Refusal::UnknownReferralCode
}
