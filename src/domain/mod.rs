//! The rules of sesame, free of HTTP and SQL: valid-by-construction types
//! (emails, passwords, codes, referral codes, tokens) and the account and
//! session flows built from them.

pub mod claims;
pub mod codes;
pub mod email;
pub mod hashing;
pub mod password;
pub mod referral;
pub mod secret;
pub mod token_cache;
pub mod tokens;
pub mod user;

/// Wrong tries allowed on one verification code before it is void.
pub const MAX_CODE_ATTEMPTS: u32 = 5;

/// How long a budget of wrong codes per address lasts from its first wrong
/// code (`SESAME_CODE_MAX_FAILURES_PER_DAY` is spent per window).
pub const CODE_BUDGET_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
