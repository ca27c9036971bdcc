//! Checking a second-factor code, for every endpoint that takes one: the
//! second step of a login, turning TOTP off, new recovery codes, and the
//! step-up that credential changes need while TOTP is on.
//!
//! One gate, [`verify_code`]: the account's daily budget of wrong
//! second-factor codes, then the lockout that counts wrong passwords (see
//! [`check_code`]), then the code itself. A TOTP code is spent by moving the
//! account's last accepted step forward (in one conditional update), so it
//! works once; a recovery code is marked used.

use chrono::Utc;
use ipnet::IpNet;

use super::password_check::check_code;
use super::refusal::{FlowResult, Refusal};
use super::signup::code_budget;
use crate::domain::codes::budget_key;
use crate::domain::mfa::{MfaKey, SecondFactorCode, SignInMethod};
use crate::domain::user::User;
use crate::mail::mfa_notices::{MfaChange, mfa_changed};
use crate::state::AppState;
use crate::store::Store;
use crate::store::code_budget::CodeKind;
use crate::store::lockout::LoginSubject;

/// Step-up, part one: with a second factor on, a change of credentials
/// needs `code` ([`Refusal::MfaCodeRequired`] without one). Checked before
/// the password, so a request without a code costs no hash.
pub fn require_code<'a>(user: &User, code: Option<&'a str>) -> FlowResult<Option<&'a str>> {
    match code {
        _ if !user.mfa.totp => Ok(None),
        Some(code) => Ok(Some(code)),
        None => Err(Refusal::MfaCodeRequired),
    }
}

/// Step-up, part two (after the password): the code, if one is needed.
pub async fn check_step_up(
    state: &AppState,
    user: &User,
    network: IpNet,
    code: Option<&str>,
) -> FlowResult<()> {
    if let Some(code) = code {
        verify_code(state, user, network, code).await?;
    }
    Ok(())
}

/// Checks a second-factor code of an account with TOTP on and spends it;
/// the method it proves. [`Refusal::InvalidCode`] when it is wrong, used,
/// or the account's budget of wrong codes is spent;
/// [`Refusal::AccountLocked`] while the caller's network is locked out.
pub(super) async fn verify_code(
    state: &AppState,
    user: &User,
    network: IpNet,
    raw: &str,
) -> FlowResult<SignInMethod> {
    let key = budget_key(&user.email);
    let budget = code_budget(state, &key, CodeKind::SecondFactor);
    if state.store.code_budget_spent(&budget).await? {
        return Err(Refusal::InvalidCode);
    }
    let code = SecondFactorCode::parse(raw);
    let mut spent = Spent::Wrong;
    let right = check_code(
        state,
        LoginSubject::Account(&user.id),
        network,
        Some(&user.email),
        async {
            spent = spend_code(&state.store, user, code).await?;
            Ok(matches!(spent, Spent::Right(_)))
        },
    )
    .await?;
    match spent {
        Spent::Right(method) if right => Ok(method),
        refused => {
            state.store.reject_code(&budget).await?;
            if refused == Spent::Replayed {
                tell_of_replay(state, user).await?;
            }
            Err(Refusal::InvalidCode)
        }
    }
}

/// What presenting a code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spent {
    /// It was right, and is spent now.
    Right(SignInMethod),
    /// It is not a code of this account (now).
    Wrong,
    /// A TOTP code that was accepted before: someone saw or intercepted it.
    Replayed,
}

/// Tells the owner that a used code came back (ASVS 2.8.5): logged, and
/// emailed at most once per `SESAME_EMAIL_MIN_INTERVAL_SECS`.
async fn tell_of_replay(state: &AppState, user: &User) -> FlowResult<()> {
    tracing::warn!(user_id = %user.id, "a TOTP code was presented again; refused");
    let notice = mfa_changed(&state.config.app_url, &user.email, MfaChange::CodeReplayed);
    if state
        .store
        .queue_email(Some(&user.id), &notice, state.config.email_min_interval)
        .await?
    {
        state.wake_mailer();
    }
    Ok(())
}

/// Spends `code` if it is right: a TOTP code moves the last accepted step
/// forward, a recovery code is marked used.
async fn spend_code(
    store: &Store,
    user: &User,
    code: Option<SecondFactorCode>,
) -> FlowResult<Spent> {
    let Some(code) = code else {
        return Ok(Spent::Wrong);
    };
    let key = mfa_key(store).await?;
    match code {
        SecondFactorCode::Totp(code) => {
            let Some(stored) = store.totp_credential(&user.id).await? else {
                return Ok(Spent::Wrong);
            };
            let secret = key.open(&stored.sealed, &user.id)?;
            let now = now_unix();
            let Some(step) = secret.accepted_step(&code, now, stored.last_step) else {
                // Right for its time, but its step (or a later one) was used.
                let replayed = secret.accepted_step(&code, now, None).is_some();
                return Ok(if replayed {
                    Spent::Replayed
                } else {
                    Spent::Wrong
                });
            };
            if store.accept_totp_step(&user.id, step).await? {
                Ok(Spent::Right(SignInMethod::PasswordAndTotp))
            } else {
                // A parallel request with the same code won (a double submit).
                tracing::warn!(user_id = %user.id, "a TOTP code was spent by a parallel request; refused");
                Ok(Spent::Wrong)
            }
        }
        SecondFactorCode::Recovery(code) => {
            let hash = key.recovery_code_hash(&user.id, &code);
            Ok(if store.spend_recovery_code(&user.id, &hash).await? {
                Spent::Right(SignInMethod::PasswordAndRecoveryCode)
            } else {
                Spent::Wrong
            })
        }
    }
}

/// The key that seals secrets and keys recovery-code hashes (made on first use).
pub(super) async fn mfa_key(store: &Store) -> anyhow::Result<MfaKey> {
    let material = store.mfa_key(&MfaKey::generate()).await?;
    MfaKey::from_bytes(material)
        .ok_or_else(|| anyhow::anyhow!("the key in mfa_keys is not 32 bytes long"))
}

pub(super) fn now_unix() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}
