//! The account: who a user is and what they may do.

use chrono::{DateTime, Utc};

use super::email::EmailAddress;

/// A role a user can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    /// As stored and as carried in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// The role named by [`Role::as_str`]'s text; `None` for any other.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A user account. `Debug` leaves the password hash out, so a user
/// that reaches a log line does not take the hash with it.
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub email: EmailAddress,
    pub password_hash: String,
    pub name: Option<String>,
    pub active: bool,
    pub disabled: bool,
    pub role: Role,
    pub referral_code: String,
    /// The referrer's referral code (joined), if any.
    pub referred_by_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The account's second factors.
    pub mfa: MfaSummary,
}

/// Which second factors an account has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MfaSummary {
    /// Whether a TOTP authenticator is confirmed (logins need a code).
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("password_hash", &"<redacted>")
            .field("name", &self.name)
            .field("active", &self.active)
            .field("disabled", &self.disabled)
            .field("role", &self.role)
            .field("referral_code", &self.referral_code)
            .field("referred_by_code", &self.referred_by_code)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("mfa", &self.mfa)
            .finish()
    }
}

/// A user with what only administrators see.
pub struct AdminUserRecord {
    pub user: User,
    /// The end of the current lockout, if the account is locked now.
    pub locked_until: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn debug_output_leaves_the_password_hash_out() {
        let user = User {
            id: "u".into(),
            email: EmailAddress::parse("u@example.com").expect("valid"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            name: None,
            active: true,
            disabled: false,
            role: Role::User,
            referral_code: "ABCDEFGH".into(),
            referred_by_code: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            mfa: MfaSummary::default(),
        };
        let shown = format!("{user:?}");
        assert!(!shown.contains("argon2id"), "{shown}");
        assert!(shown.contains("u@example.com"), "{shown}");
    }
}
