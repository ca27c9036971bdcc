//! What a verified access token says, and why a token is refused: shared
//! by the keyring that verifies tokens and the cache that remembers them.

use serde::{Deserialize, Serialize};

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id; revoking the session revokes the token.
    pub sid: String,
    pub role: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// How the session's user signed in (RFC 8176): `pwd`, plus `otp` and
    /// `mfa` after a TOTP code, or `mfa` after a recovery code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
    /// Signed with a key this keyring does not hold (yet): after a rotation
    /// made elsewhere, reloading the keys may find it.
    UnknownKey,
}
