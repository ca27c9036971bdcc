//! How a user is read: the columns every query that reads a whole user
//! selects, and their mapping to the domain's [`User`].

use anyhow::Context;

use super::Ts;
use super::db::Uid;
use super::parse_ts;
use crate::domain::email::EmailAddress;
use crate::domain::user::{MfaSummary, Role, User};

/// A user as selected with [`USER_FIELDS`] from [`USER_TABLES`].
#[derive(sqlx::FromRow, Clone)]
pub(super) struct UserRow {
    id: Uid,
    email: String,
    password_hash: String,
    name: Option<String>,
    active: bool,
    disabled: bool,
    role: String,
    referral_code: String,
    referred_by_code: Option<String>,
    created_at: Ts,
    updated_at: Ts,
    totp_enabled: bool,
    recovery_codes_left: i64,
    passkeys: i64,
}

/// The columns of a [`UserRow`]: `u` is the user, `r` their referrer. The
/// second factor's state and the passkeys are three lookups by the user's key (no commas inside:
/// [`UserRow::COLUMNS`] counts them).
pub(super) const USER_FIELDS: &str = "u.id, u.email, u.password_hash, u.name, u.active, \
     u.disabled, u.role, u.referral_code, r.referral_code AS referred_by_code, u.created_at, \
     u.updated_at, EXISTS (SELECT 1 FROM totp_credentials t WHERE t.user_id = u.id \
     AND t.confirmed_at IS NOT NULL) AS totp_enabled, (SELECT COUNT(*) FROM recovery_codes c \
     WHERE c.user_id = u.id AND c.used_at IS NULL) AS recovery_codes_left, \
     (SELECT COUNT(*) FROM passkeys p WHERE p.user_id = u.id) AS passkeys";

/// The tables [`USER_FIELDS`] come from.
pub(super) const USER_TABLES: &str = "users u LEFT JOIN users r ON r.id = u.referred_by";

impl UserRow {
    /// The same columns, read by rusqlite (see [`super::inline`]) by
    /// position, in the order of [`USER_FIELDS`], which must come first in
    /// the query (by name costs a scan of the column names per field).
    pub(super) fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
        Ok(UserRow {
            id: row.get(0)?,
            email: row.get(1)?,
            password_hash: row.get(2)?,
            name: row.get(3)?,
            active: row.get(4)?,
            disabled: row.get(5)?,
            role: row.get(6)?,
            referral_code: row.get(7)?,
            referred_by_code: row.get(8)?,
            created_at: row.get(9)?,
            updated_at: row.get(10)?,
            totp_enabled: row.get(11)?,
            recovery_codes_left: row.get(12)?,
            passkeys: row.get(13)?,
        })
    }

    /// How many columns [`USER_FIELDS`] has (counted, so it cannot drift).
    pub(super) const COLUMNS: usize = {
        let fields = USER_FIELDS.as_bytes();
        let (mut i, mut commas) = (0, 0);
        while i < fields.len() {
            if fields[i] == b',' {
                commas += 1;
            }
            i += 1;
        }
        commas + 1
    };

    pub(super) fn into_user(self) -> anyhow::Result<User> {
        Ok(User {
            id: self.id.into(),
            // Only parsed addresses are written, so this only fails on a
            // database edited by hand.
            email: EmailAddress::parse(&self.email)
                .map_err(|problem| anyhow::anyhow!("a stored email address {problem}"))?,
            password_hash: self.password_hash,
            name: self.name,
            active: self.active,
            disabled: self.disabled,
            role: Role::parse(&self.role)
                .with_context(|| format!("unknown role in the database: {}", self.role))?,
            referral_code: self.referral_code,
            referred_by_code: self.referred_by_code,
            created_at: parse_ts(&self.created_at)?,
            updated_at: parse_ts(&self.updated_at)?,
            mfa: MfaSummary {
                totp: self.totp_enabled,
                recovery_codes_left: u32::try_from(self.recovery_codes_left).unwrap_or(0),
                passkeys: u32::try_from(self.passkeys).unwrap_or(0),
            },
        })
    }
}
