//! Undoing an email change from the old address. Whoever moved the account
//! knew its password, so the way back takes the password away too: the
//! link mailed to the old address at the move puts that address back, ends
//! every session, replaces the password with one nobody knows, and mails a
//! reset link to the old address, where the owner chooses a new one.

use chrono::Utc;

use super::refusal::{FlowResult, Refusal};
use crate::domain::codes::OpaqueToken;
use crate::domain::email::EmailAddress;
use crate::domain::password::NewPassword;
use crate::mail::notices;
use crate::state::AppState;
use crate::store::email_reverts::RevertCredentials;
use crate::store::users::{CodePurpose, NewCode};

/// Spends a revert token (see [`crate::store::Store::revert_email`] for
/// everything that changes with it).
pub async fn revert(state: &AppState, token: &str) -> FlowResult<()> {
    let invalid = || Refusal::InvalidRevertToken;
    let token = OpaqueToken::parse(token).ok_or_else(invalid)?;
    // Find it without spending it, so that the hash below is only computed
    // for a live token; the store spends it atomically with the rest.
    let live = state
        .store
        .live_email_revert(&token.hash())
        .await?
        .ok_or_else(invalid)?;
    let old_email = EmailAddress::parse(&live.old_email)
        .map_err(|problem| anyhow::anyhow!("a stored old address {problem}"))?;
    // A real argon2 hash of 256 random bits nobody keeps: every password is
    // wrong for it, and a login costs what any wrong password costs.
    let unknowable = NewPassword::unchecked(OpaqueToken::generate().expose());
    let unusable_hash = state.hasher.hash(&unknowable).await?;
    let reset = OpaqueToken::generate();
    let reset_hash = reset.hash();
    let reset_code = NewCode {
        purpose: CodePurpose::PasswordReset,
        hash: &reset_hash,
        expires_at: Utc::now() + state.config.code_ttl,
    };
    let reset_email = notices::email_reverted(
        &state.config.app_url,
        &old_email,
        reset.expose(),
        state.config.code_ttl,
    );
    let credentials = RevertCredentials {
        unusable_hash: &unusable_hash,
        reset_code: &reset_code,
        reset_email: &reset_email,
    };
    state
        .store
        .revert_email(&token.hash(), &credentials)
        .await?
        .ok_or_else(invalid)?;
    state.wake_mailer();
    Ok(())
}
