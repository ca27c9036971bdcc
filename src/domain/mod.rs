//! The rules of sesame, free of HTTP and SQL: valid-by-construction types
//! (users and roles, email addresses, passwords, codes, referral codes,
//! tokens) and the pure rules on them. The workflows that use them, with
//! the store and the mail, are in [`crate::flows`]. Nothing here imports
//! poem, sqlx or `store/`.

pub mod claims;
pub mod codes;
pub mod email;
pub mod hashing;
pub mod mfa;
pub mod name;
pub mod password;
pub mod referral;
pub mod secret;
pub mod session;
pub mod token_cache;
pub mod tokens;
pub mod user;

/// Wrong tries allowed on one verification code before it is void.
pub const MAX_CODE_ATTEMPTS: u32 = 5;

/// How long a budget of wrong codes per address lasts from its first wrong
/// code (`SESAME_CODE_MAX_FAILURES_PER_DAY` is spent per window).
pub const CODE_BUDGET_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
