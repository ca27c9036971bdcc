//! A passkey as the second step of a login: after a right password on an
//! account with a second factor on (`403 MFA_REQUIRED` and its `mfaToken`),
//! `POST /users/login/mfa/passkey/start {mfaToken}` offers the account's
//! passkeys and `POST /users/login/mfa {mfaToken, credential}` finishes.
//!
//! The ceremony is kept like any other (see [`super::passkeys`]), under an
//! id made from the `mfaToken`'s hash: the finish needs only the token.
//! A refused assertion counts as a wrong code against the `mfaToken` (five
//! void it).

use serde_json::Value;

use super::mfa::{second_step_of, settle_second_step};
use super::passkeys::{
    Started, check_assertion, keep_as, passkeys_of, relying_party, started, take,
};
use super::refusal::{FlowResult, Refusal};
use super::sessions::{ClientInfo, TokenPair, open_session};
use crate::domain::mfa::SignInMethod;
use crate::domain::passkey::Ceremony;
use crate::state::AppState;

/// The purpose a second-step ceremony is kept for.
const SECOND_STEP: &str = "mfa";

/// Starts the passkey ceremony of a login's second step; asking again
/// replaces the one started before. `404` when the account has no passkey.
pub async fn start(state: &AppState, mfa_token: &str) -> FlowResult<Started> {
    let rp = relying_party(state)?;
    let (token_hash, user) = second_step_of(state, mfa_token).await?;
    let passkeys = passkeys_of(state, &user.id).await?;
    if passkeys.is_empty() {
        return Err(Refusal::NotFound("This account has no passkey"));
    }
    let offered = passkeys.iter().map(|(_, p)| p.cred_id().clone()).collect();
    let (options, login) = rp.start_login(Some(offered))?;
    let id = ceremony_id(&token_hash);
    take(state, &id, SECOND_STEP).await?;
    keep_as(
        state,
        &id,
        Some(&user.id),
        SECOND_STEP,
        &Ceremony::Login(login),
    )
    .await?;
    started(id, &options.public_key)
}

/// Finishes a login's second step with a passkey: the assertion must
/// answer the ceremony started for this `mfaToken`, with one of the
/// account's passkeys. `400 INVALID_CODE` otherwise (counted against the
/// token), `401 INVALID_TOKEN` for a token that is unknown, spent,
/// expired or void.
pub async fn finish(
    state: &AppState,
    mfa_token: &str,
    credential: Value,
    client: ClientInfo,
) -> FlowResult<TokenPair> {
    let (token_hash, user) = second_step_of(state, mfa_token).await?;
    if user.disabled {
        return Err(Refusal::AccountDisabled);
    }
    let asserted = match take(state, &ceremony_id(&token_hash), SECOND_STEP).await? {
        Some(taken) => check_assertion(state, &taken, credential, || Refusal::InvalidCode).await,
        None => Err(Refusal::InvalidCode),
    };
    settle_second_step(state, &token_hash, asserted).await?;
    open_session(state, &user, &client, SignInMethod::PasswordAndPasskey).await
}

/// The id the ceremony of a second step is kept under.
fn ceremony_id(token_hash: &[u8]) -> String {
    let hex: String = token_hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("mfa-{hex}")
}
