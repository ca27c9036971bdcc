//! How a workflow says no: which rule refused, in the workflows' own terms.
//! `api/` (and the pages) decide how each is answered; nothing here knows
//! HTTP.

use std::collections::BTreeMap;

/// Why a workflow did not do what was asked.
#[derive(Debug)]
pub enum Refusal {
    /// Input that breaks a rule: field name → what is wrong with it.
    Invalid(BTreeMap<String, String>),
    /// The referral code names no account.
    UnknownReferralCode,
    /// Another account has this email address.
    EmailInUse,
    /// A verification code that is wrong, expired, used up or unknown.
    InvalidCode,
    /// The account was already activated (with this very code).
    AlreadyActive,
    /// Unknown email address or wrong password, at login (one answer for both).
    InvalidCredentials,
    /// The password given to confirm a change is not the account's.
    WrongPassword,
    /// The password was right, but the email address is not verified yet.
    EmailNotVerified,
    /// The account is disabled.
    AccountDisabled,
    /// Too many failed logins: locked for this many more seconds (at least 1).
    AccountLocked { retry_after_secs: u64 },
    /// A password reset token that is unknown, expired or used.
    InvalidResetToken,
    /// A token to undo an email change that is unknown, expired, used, or
    /// void (a revert of an earlier move was spent).
    InvalidRevertToken,
    /// A refresh token that is unknown, expired, spent or revoked.
    InvalidRefreshToken,
    /// No valid access token (missing, malformed, or its account is gone).
    NotAuthenticated,
    /// The access token has expired.
    AccessTokenExpired,
    /// The access token's session has ended.
    SessionEnded,
    /// The caller may not do this; the sentence says why.
    Forbidden(&'static str),
    /// There is no such thing; the sentence says which.
    NotFound(&'static str),
    /// The password was right, and the account has a second factor: the
    /// login goes on with this token (shown once) and one of `methods`.
    MfaRequired {
        mfa_token: String,
        methods: Vec<&'static str>,
    },
    /// The token of a login's second step is unknown, expired, used or void.
    InvalidMfaToken,
    /// The account's second factor is already on.
    MfaAlreadyEnabled,
    /// No second factor waits for its confirming code.
    MfaNotPending,
    /// The account has no second factor.
    MfaNotEnabled,
    /// The account has a second factor, and this change needs its code.
    MfaCodeRequired,
    /// A failure the caller cannot fix (database, hashing, keys); the cause
    /// is for the log only.
    Internal(anyhow::Error),
}

/// Shorthand for what a workflow answers.
pub type FlowResult<T> = Result<T, Refusal>;

impl Refusal {
    /// One field that breaks a rule.
    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Refusal {
        Refusal::Invalid(BTreeMap::from([(field.to_owned(), problem.into())]))
    }
}

impl From<anyhow::Error> for Refusal {
    fn from(cause: anyhow::Error) -> Self {
        Refusal::Internal(cause)
    }
}
