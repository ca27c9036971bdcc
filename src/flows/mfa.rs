//! The second factor: enrolling a TOTP authenticator, the second step of a
//! login, recovery codes, and turning it off (by the owner, an
//! administrator or the operator). Every code is checked by
//! [`super::second_factor`], which the step-up of credential changes uses too.

use ipnet::IpNet;

use super::profile::confirm_password;
use super::refusal::{FlowResult, Refusal};
use super::second_factor::{mfa_key, now_unix, verify_code};
use super::sessions::{ClientInfo, Principal, TokenPair, open_session};
use crate::domain::codes::OpaqueToken;
use crate::domain::mfa::{
    MAX_MFA_ATTEMPTS, MfaKey, RECOVERY_CODE_COUNT, RecoveryCode, SecondFactorCode, SignInMethod,
    TotpSecret,
};
use crate::domain::user::User;
use crate::mail::mfa_notices::{MfaChange, mfa_changed};
use crate::state::AppState;
use crate::store::Store;
use crate::store::mfa::Confirmation;

/// A pending authenticator, as shown to its owner once.
pub struct Enrolment {
    /// The secret in base32, for typing into an app.
    pub secret: String,
    /// The `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
}

/// Starts enrolling a TOTP authenticator (after checking the password):
/// a new secret, pending until a code from it confirms it. Asking again
/// replaces a pending secret.
pub async fn start_totp(
    state: &AppState,
    principal: &Principal,
    network: IpNet,
    password: &str,
) -> FlowResult<Enrolment> {
    let user = &principal.user;
    if user.mfa.totp {
        return Err(Refusal::MfaAlreadyEnabled);
    }
    confirm_password(state, user, network, password).await?;
    let secret = TotpSecret::generate();
    let sealed = mfa_key(&state.store).await?.seal(&secret, &user.id)?;
    if !state.store.set_pending_totp(&user.id, &sealed).await? {
        return Err(Refusal::MfaAlreadyEnabled);
    }
    Ok(Enrolment {
        secret: secret.base32(),
        otpauth_uri: secret.otpauth_uri(&state.config.totp_issuer, user.email.as_str()),
    })
}

/// Confirms the pending authenticator with a code from it: TOTP is on,
/// every other session ends, the owner is told, and the recovery codes
/// are returned (the only time they are shown).
pub async fn confirm_totp(
    state: &AppState,
    principal: &Principal,
    code: &str,
) -> FlowResult<Vec<String>> {
    let user = &principal.user;
    let stored = match state.store.totp_credential(&user.id).await? {
        Some(stored) if stored.confirmed => return Err(Refusal::MfaAlreadyEnabled),
        Some(stored) => stored,
        None => return Err(Refusal::MfaNotPending),
    };
    // The caller was just shown the secret: there is nothing to guess here,
    // so a wrong code is not counted (it is refused all the same).
    let Some(SecondFactorCode::Totp(code)) = SecondFactorCode::parse(code) else {
        return Err(Refusal::InvalidCode);
    };
    let key = mfa_key(&state.store).await?;
    let secret = key.open(&stored.sealed, &user.id)?;
    let step = secret
        .accepted_step(&code, now_unix(), stored.last_step)
        .ok_or(Refusal::InvalidCode)?;
    let (codes, hashes) = new_recovery_codes(&key, &user.id);
    let notice = mfa_changed(&state.config.app_url, &user.email, MfaChange::Enabled);
    let confirmation = Confirmation {
        step,
        recovery_hashes: &hashes,
        keep_session: &principal.session_id,
        notice: &notice,
    };
    if !state.store.confirm_totp(&user.id, &confirmation).await? {
        // Confirmed or replaced by a parallel request meanwhile.
        return Err(Refusal::InvalidCode);
    }
    state.wake_mailer();
    Ok(codes)
}

/// Turns the caller's second factor off, with the password and a code.
pub async fn turn_off(
    state: &AppState,
    principal: &Principal,
    network: IpNet,
    password: &str,
    code: &str,
) -> FlowResult<()> {
    let user = &principal.user;
    if !user.mfa.totp {
        return Err(Refusal::MfaNotEnabled);
    }
    confirm_password(state, user, network, password).await?;
    verify_code(state, user, network, code).await?;
    let notice = mfa_changed(&state.config.app_url, &user.email, MfaChange::Disabled);
    if state.store.turn_off_mfa(&user.id, &notice).await? {
        state.wake_mailer();
    }
    Ok(())
}

/// New recovery codes for the caller (the old ones stop working), with the
/// password and a code.
pub async fn replace_recovery_codes(
    state: &AppState,
    principal: &Principal,
    network: IpNet,
    password: &str,
    code: &str,
) -> FlowResult<Vec<String>> {
    let user = &principal.user;
    if !user.mfa.totp {
        return Err(Refusal::MfaNotEnabled);
    }
    confirm_password(state, user, network, password).await?;
    verify_code(state, user, network, code).await?;
    let key = mfa_key(&state.store).await?;
    let (codes, hashes) = new_recovery_codes(&key, &user.id);
    let notice = mfa_changed(
        &state.config.app_url,
        &user.email,
        MfaChange::RecoveryCodesReplaced,
    );
    if !state
        .store
        .replace_recovery_codes(&user.id, &hashes, &notice)
        .await?
    {
        return Err(Refusal::MfaNotEnabled);
    }
    state.wake_mailer();
    Ok(codes)
}

/// The second step of a login: the token from the `403 MFA_REQUIRED` and a
/// code. Five wrong codes void the token; each also counts in the lockout
/// and the daily budget, like a wrong password.
pub async fn finish_login(
    state: &AppState,
    mfa_token: &str,
    code: &str,
    client: ClientInfo,
) -> FlowResult<TokenPair> {
    let (token_hash, user) = second_step_of(state, mfa_token).await?;
    if !user.mfa.totp {
        return Err(Refusal::InvalidMfaToken);
    }
    if user.disabled {
        return Err(Refusal::AccountDisabled);
    }
    let checked = verify_code(state, &user, client.network, code).await;
    let method = settle_second_step(state, &token_hash, checked).await?;
    tracing::debug!("second step of a login passed");
    if method == SignInMethod::PasswordAndRecoveryCode {
        let notice = mfa_changed(
            &state.config.app_url,
            &user.email,
            MfaChange::RecoveryCodeUsed,
        );
        if state
            .store
            .queue_email(Some(&user.id), &notice, std::time::Duration::ZERO)
            .await?
        {
            state.wake_mailer();
        }
    }
    open_session(state, &user, &client, method).await
}

/// The live second step an `mfaToken` names: its hash and the account.
pub(super) async fn second_step_of(
    state: &AppState,
    mfa_token: &str,
) -> FlowResult<(Vec<u8>, User)> {
    let token = OpaqueToken::parse(mfa_token).ok_or(Refusal::InvalidMfaToken)?;
    let token_hash = token.hash();
    let challenge = state
        .store
        .live_mfa_challenge(&token_hash, MAX_MFA_ATTEMPTS)
        .await?
        .ok_or(Refusal::InvalidMfaToken)?;
    let user = state
        .store
        .user_by_id(&challenge.user_id)
        .await?
        .ok_or(Refusal::InvalidMfaToken)?;
    Ok((token_hash.to_vec(), user))
}

/// Settles what a second step was given (a code or a passkey's
/// assertion): a refused proof (`INVALID_CODE`) counts against the step,
/// five void it; an accepted one spends the step, which must still be live
/// (a parallel request may have spent or voided it meanwhile).
pub(super) async fn settle_second_step<T>(
    state: &AppState,
    token_hash: &[u8],
    proof: FlowResult<T>,
) -> FlowResult<T> {
    match proof {
        Err(Refusal::InvalidCode) => {
            state.store.fail_mfa_challenge(token_hash).await?;
            Err(Refusal::InvalidCode)
        }
        Err(refusal) => Err(refusal),
        Ok(proved) => {
            if state
                .store
                .spend_mfa_challenge(token_hash, MAX_MFA_ATTEMPTS)
                .await?
            {
                Ok(proved)
            } else {
                Err(Refusal::InvalidMfaToken)
            }
        }
    }
}

/// Turns an account's second factor off without a code (an administrator
/// or the operator, for a lost device) and queues the notice; `false` if
/// it was not on. The caller wakes the mailer, if it has one.
pub async fn reset(store: &Store, app_url: &str, user: &User) -> anyhow::Result<bool> {
    let notice = mfa_changed(app_url, &user.email, MfaChange::ResetByAdmin);
    store.turn_off_mfa(&user.id, &notice).await
}

/// Ten fresh recovery codes, as shown and as stored.
fn new_recovery_codes(key: &MfaKey, user_id: &str) -> (Vec<String>, Vec<Vec<u8>>) {
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let code = RecoveryCode::generate();
            (code.display(), key.recovery_code_hash(user_id, &code))
        })
        .unzip()
}
