//! Forgetting a password: a reset token by email, and spending it on a new
//! password.

use super::refusal::{FlowResult, Refusal};
use super::signup::{note_request, send_code};
use crate::domain::codes::OpaqueToken;
use crate::domain::email::EmailAddress;
use crate::domain::password::NewPassword;
use crate::mail::{notices, templates};
use crate::state::AppState;
use crate::store::users::CodePurpose;

/// Emails a password reset token if the account exists; silent otherwise,
/// at the cost of the same one write.
pub async fn forgot_password(state: &AppState, email: &str) -> FlowResult<()> {
    let email = EmailAddress::parse(email).map_err(|p| Refusal::invalid_field("email", p))?;
    let user = match state.store.user_by_email(&email).await? {
        Some(user) if !user.disabled => user,
        _ => return note_request(state, &email, CodePurpose::PasswordReset).await,
    };
    let token = OpaqueToken::generate();
    let mail = templates::password_reset(
        &state.config.app_url,
        &user.email,
        token.expose(),
        state.config.code_ttl,
    );
    send_code(
        state,
        &user,
        CodePurpose::PasswordReset,
        &token.hash(),
        &mail,
    )
    .await
}

/// Sets a new password with a reset token; revokes every session of the user.
pub async fn reset_password(
    state: &AppState,
    token: &str,
    new_password: &str,
    confirm: &str,
) -> FlowResult<()> {
    let invalid = || Refusal::InvalidResetToken;
    let token = OpaqueToken::parse(token).ok_or_else(invalid)?;
    if new_password != confirm {
        return Err(Refusal::invalid_field(
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
    let password = NewPassword::parse(new_password, &owner.email)
        .map_err(|p| Refusal::invalid_field("newPassword", p))?;
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
