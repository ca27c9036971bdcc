//! What every resource of the API shares: its groups in Swagger UI, the
//! plain success body, and the handle to the application.

use std::sync::Arc;

use poem_openapi::{Object, Tags};

use crate::state::AppState;

/// Groups of operations in Swagger UI.
#[derive(Tags)]
pub enum ApiTags {
    /// Sign up, activate, log in, refresh, reset a password.
    Auth,
    /// The signed-in user: profile, password, email address, sessions, referrals, logout.
    Me,
    /// Two-factor authentication of the signed-in user: an authenticator app (TOTP) and recovery codes.
    Mfa,
    /// Managing every account; needs `role: admin`.
    Admin,
    /// Liveness, readiness and signing keys.
    System,
}

/// A success without data.
#[derive(Object)]
pub struct MessageResponse {
    /// Always `true`.
    pub success: bool,
    /// What happened, for people.
    pub message: String,
}

impl MessageResponse {
    /// `{success: true, message}`.
    pub fn new(message: impl Into<String>) -> MessageResponse {
        MessageResponse {
            success: true,
            message: message.into(),
        }
    }
}

/// The request data every handler reads the application from.
pub type State<'a> = poem::web::Data<&'a Arc<AppState>>;
