//! Users and their one-time codes.

use super::Ts;
use super::db::Uid;
use super::db::{self, Tx};
use chrono::{DateTime, Utc};

use super::address_requests::AddressRequest;
use super::code_budget::CodeBudget;
use super::user_rows::{USER_FIELDS, USER_TABLES, UserRow};
use super::{Store, is_unique_violation, outbox, parse_ts, ts};
use crate::domain::email::EmailAddress;
use crate::domain::referral::Referred;
use crate::domain::user::User;
use crate::mail::OutgoingEmail;

/// What a signup writes.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a EmailAddress,
    pub password_hash: &'a str,
    pub name: Option<&'a str>,
    pub referral_code: &'a str,
    pub referred_by: Option<&'a str>,
}

/// A one-time secret to store (hash only).
pub struct NewCode<'a> {
    pub purpose: CodePurpose,
    pub hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
}

/// What a one-time secret is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    Activation,
    PasswordReset,
}

impl CodePurpose {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CodePurpose::Activation => "activation",
            CodePurpose::PasswordReset => "password_reset",
        }
    }
}

/// Why a user insert failed.
#[derive(Debug)]
pub enum InsertUserError {
    EmailTaken,
    ReferralCodeTaken,
    Other(anyhow::Error),
}

impl Store {
    /// What the insert of `user` came to: a failure is a refusal by a
    /// unique index or not. A unique violation is known by its kind; which
    /// index refused is known by the row that holds the value now (SQLite
    /// names no constraint in its errors): the address, else the referral
    /// code.
    pub(super) async fn inserted(
        &self,
        user: &NewUser<'_>,
        result: anyhow::Result<()>,
    ) -> Result<(), InsertUserError> {
        let Err(e) = result else {
            return Ok(());
        };
        if e.downcast_ref::<AddressReserved>().is_some() {
            return Err(InsertUserError::EmailTaken);
        }
        if !e
            .downcast_ref::<sqlx::Error>()
            .is_some_and(is_unique_violation)
        {
            return Err(InsertUserError::Other(e));
        }
        let holder = |sql| db::query_scalar::<bool>(sql);
        let email_taken = holder("SELECT EXISTS (SELECT 1 FROM users WHERE email = ?)")
            .bind(user.email.as_str())
            .fetch_one(&self.read)
            .await;
        let code_taken = holder("SELECT EXISTS (SELECT 1 FROM users WHERE referral_code = ?)")
            .bind(user.referral_code)
            .fetch_one(&self.read)
            .await;
        Err(match (email_taken, code_taken) {
            (Ok(true), _) => InsertUserError::EmailTaken,
            (Ok(false), Ok(true)) => InsertUserError::ReferralCodeTaken,
            _ => InsertUserError::Other(e),
        })
    }
}

/// Why an address that no account has cannot be taken: a live email revert
/// reserves it for the account it was moved away from.
#[derive(Debug)]
pub(super) struct AddressReserved;

impl std::fmt::Display for AddressReserved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the address is reserved by an email revert")
    }
}

impl std::error::Error for AddressReserved {}

/// Inserts the `users` row of `user`: an inactive user who signed up, or
/// with `admin` an active administrator. Run it in a transaction that took
/// the write lock at its start ([`Store::begin_immediate`]): it checks that
/// no email revert reserves the address, then inserts.
pub(super) async fn insert_user_row(
    conn: &mut Tx,
    user: &NewUser<'_>,
    admin: bool,
) -> anyhow::Result<()> {
    if super::email_reverts::reserved(&mut *conn, user.email.as_str(), user.id).await? {
        return Err(AddressReserved.into());
    }
    let now = ts(Utc::now());
    db::query(
        "INSERT INTO users (id, email, password_hash, name, active, role, referral_code, \
         referred_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(db::id(user.id))
    .bind(user.email.as_str())
    .bind(user.password_hash)
    .bind(user.name)
    .bind(admin)
    .bind(if admin { "admin" } else { "user" })
    .bind(user.referral_code)
    .bind(db::opt_id(user.referred_by))
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The outcome of presenting an activation code.
#[derive(Debug, PartialEq, Eq)]
pub enum CodeAttempt {
    /// Right code: the account is now active.
    Accepted,
    /// Right code, already used: the account was activated by it before.
    AlreadyUsed,
    /// Wrong, expired, used up, or no code at all.
    Rejected,
}

/// A one-time code as stored.
#[derive(sqlx::FromRow)]
struct StoredCode {
    id: Uid,
    code_hash: Vec<u8>,
    failed_attempts: i64,
    expires_at: Ts,
    used_at: Option<Ts>,
}

impl Store {
    /// Inserts a user, its activation code and the verification email, atomically.
    /// The unique index decides duplicate signups; an address an email
    /// revert reserves is refused in the same transaction (as taken).
    pub async fn insert_user(
        &self,
        user: &NewUser<'_>,
        code: &NewCode<'_>,
        email: &OutgoingEmail,
    ) -> Result<(), InsertUserError> {
        let result: anyhow::Result<()> = self
            .writing(async {
                let mut tx = self.begin_immediate().await?;
                insert_user_row(&mut tx, user, false).await?;
                replace_code(&mut tx, user.id, code).await?;
                outbox::enqueue(&mut tx, Some(user.id), email).await?;
                tx.commit().await?;
                Ok(())
            })
            .await;
        self.inserted(user, result).await
    }

    /// Finds a user by normalized email.
    pub async fn user_by_email(&self, email: &EmailAddress) -> anyhow::Result<Option<User>> {
        let sql = format!("SELECT {USER_FIELDS} FROM {USER_TABLES} WHERE u.email = ?");
        let row: Option<UserRow> = db::query_as(&sql)
            .bind(email.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.map(UserRow::into_user).transpose()
    }

    /// Finds a user by id.
    pub async fn user_by_id(&self, id: &str) -> anyhow::Result<Option<User>> {
        let sql = format!("SELECT {USER_FIELDS} FROM {USER_TABLES} WHERE u.id = ?");
        let row: Option<UserRow> = db::query_as(&sql)
            .bind(db::id(id))
            .fetch_optional(&self.read)
            .await?;
        row.map(UserRow::into_user).transpose()
    }

    /// The id of the user who owns a referral code (canonical form).
    pub async fn user_id_by_referral_code(&self, code: &str) -> anyhow::Result<Option<String>> {
        let id: Option<db::Uid> = db::query_scalar("SELECT id FROM users WHERE referral_code = ?")
            .bind(code)
            .fetch_optional(&self.read)
            .await?;
        Ok(id.map(String::from))
    }

    /// A page of the accounts a user referred, oldest first, and their total.
    pub async fn referred_by(
        &self,
        user_id: &str,
        limit: u32,
        offset: u32,
    ) -> anyhow::Result<(Vec<Referred>, u64)> {
        let rows: Vec<(String, bool, Ts)> = db::query_as(
            "SELECT email, active, created_at FROM users WHERE referred_by = ? \
             ORDER BY created_at, id LIMIT ? OFFSET ?",
        )
        .bind(db::id(user_id))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.read)
        .await?;
        let total: i64 = db::query_scalar("SELECT COUNT(*) FROM users WHERE referred_by = ?")
            .bind(db::id(user_id))
            .fetch_one(&self.read)
            .await?;
        let accounts = rows
            .into_iter()
            .map(|(email, active, created)| {
                Ok(Referred {
                    email,
                    active,
                    joined_at: parse_ts(&created)?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok((accounts, total as u64))
    }

    /// Replaces a user's live code of one purpose with a new one and queues
    /// its email, unless an email of that kind went to the user less than
    /// `min_interval` ago: then the old code stays valid. Either way the
    /// `request` is counted in the same transaction, so a throttled request
    /// commits one write like every other (see [`super::address_requests`]).
    /// Returns whether the code was issued.
    pub async fn issue_code(
        &self,
        user_id: &str,
        code: &NewCode<'_>,
        email: &OutgoingEmail,
        min_interval: std::time::Duration,
        request: &AddressRequest<'_>,
    ) -> anyhow::Result<bool> {
        self.writing(async {
            let mut tx = self.begin_immediate().await?;
            request.count(&mut tx).await?;
            let send = !outbox::sent_recently(&mut tx, email, min_interval).await?;
            if send {
                replace_code(&mut tx, user_id, code).await?;
                outbox::enqueue(&mut tx, Some(user_id), email).await?;
            }
            tx.commit().await?;
            Ok(send)
        })
        .await
    }

    /// Presents an activation code. `matches` compares a stored hash with the
    /// presented code in constant time. Counting a wrong try and checking the
    /// code happen in one transaction, so parallel guesses cannot exceed the
    /// limits: `max_attempts` per code, and `budget` per address and day.
    /// While the budget is spent every code is refused, the right one too.
    /// Every refused code but those counts against the budget (and costs the
    /// same one write), whatever the state of the account.
    pub async fn attempt_activation(
        &self,
        user_id: &str,
        budget: &CodeBudget<'_>,
        max_attempts: u32,
        matches: impl Fn(&[u8]) -> bool,
    ) -> anyhow::Result<CodeAttempt> {
        self.writing(async {
            let mut tx = self.begin_immediate().await?;
            if budget.spent(&mut tx).await? {
                return Ok(CodeAttempt::Rejected);
            }
            let row: Option<StoredCode> = db::query_as(
                "SELECT id, code_hash, failed_attempts, expires_at, used_at FROM one_time_codes \
                 WHERE user_id = ? AND purpose = 'activation'",
            )
            .bind(db::id(user_id))
            .fetch_optional(&mut tx)
            .await?;
            let now = Utc::now();
            let live = match &row {
                Some(code) if code.used_at.is_some() && matches(&code.code_hash) => {
                    return Ok(CodeAttempt::AlreadyUsed);
                }
                Some(code) => {
                    code.used_at.is_none()
                        && code.failed_attempts < i64::from(max_attempts)
                        && parse_ts(&code.expires_at)? > now
                }
                None => false,
            };
            let Some(code) = row.filter(|code| live && matches(&code.code_hash)) else {
                if live {
                    db::query(
                        "UPDATE one_time_codes SET failed_attempts = failed_attempts + 1 \
                         WHERE user_id = ? AND purpose = 'activation'",
                    )
                    .bind(db::id(user_id))
                    .execute(&mut tx)
                    .await?;
                }
                budget.count_failure(&mut tx).await?;
                tx.commit().await?;
                return Ok(CodeAttempt::Rejected);
            };
            db::query("UPDATE one_time_codes SET used_at = ? WHERE id = ?")
                .bind(ts(now))
                .bind(db::id(&code.id))
                .execute(&mut tx)
                .await?;
            db::query("UPDATE users SET active = TRUE, updated_at = ? WHERE id = ?")
                .bind(ts(now))
                .bind(db::id(user_id))
                .execute(&mut tx)
                .await?;
            tx.commit().await?;
            Ok(CodeAttempt::Accepted)
        })
        .await
    }

    /// Spends a password reset token: sets the new hash, activates the
    /// account if it was not, revokes every session of the user, voids a
    /// pending email change code and queues `notice` (the "password
    /// changed" email). The spent token was the user's only reset token.
    /// Returns the user id, or `None` if the token is unknown, used or
    /// expired.
    pub async fn reset_password(
        &self,
        token_hash: &[u8],
        new_hash: &str,
        notice: &OutgoingEmail,
    ) -> anyhow::Result<Option<String>> {
        self.writing(async {
            let mut tx = self.write.begin().await?;
            let now = ts(Utc::now());
            let user_id: Option<db::Uid> = db::query_scalar(
                "UPDATE one_time_codes SET used_at = ? \
                 WHERE code_hash = ? AND purpose = 'password_reset' AND used_at IS NULL AND expires_at > ? \
                 RETURNING user_id",
            )
            .bind(now)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut tx)
            .await?;
            let Some(user_id) = user_id else {
                return Ok(None);
            };
            // The link reached the address's mailbox: that proves the address
            // like an activation code does, so an account never verified (its
            // codes refused after too many wrong guesses) is active now.
            db::query(
                "UPDATE users SET password_hash = ?, active = TRUE, updated_at = ? WHERE id = ?",
            )
            .bind(new_hash)
            .bind(now)
            .bind(db::id(&user_id))
            .execute(&mut tx)
            .await?;
            // A reset unlocks: the owner has proven control of the address.
            super::lockout::clear(&mut tx, &user_id).await?;
            super::sessions::revoke_all(&mut tx, &user_id, &now).await?;
            super::account::void_codes(&mut tx, &user_id, &["email_change"]).await?;
            outbox::enqueue(&mut tx, Some(&user_id), notice).await?;
            tx.commit().await?;
            Ok(Some(user_id.into()))
        })
        .await
    }

    /// The owner of a live (unused, unexpired) password reset token.
    pub async fn user_by_reset_token(&self, token_hash: &[u8]) -> anyhow::Result<Option<User>> {
        let user_id: Option<db::Uid> = db::query_scalar(
            "SELECT user_id FROM one_time_codes \
             WHERE code_hash = ? AND purpose = 'password_reset' AND used_at IS NULL AND expires_at > ?",
        )
        .bind(token_hash)
        .bind(ts(Utc::now()))
        .fetch_optional(&self.read)
        .await?;
        match user_id {
            Some(id) => self.user_by_id(&id).await,
            None => Ok(None),
        }
    }

    /// Stores a re-computed hash (argon2 parameters changed since it was made).
    pub async fn update_password_hash(&self, user_id: &str, new_hash: &str) -> anyhow::Result<()> {
        self.writing(async {
            db::query("UPDATE users SET password_hash = ? WHERE id = ?")
                .bind(new_hash)
                .bind(db::id(user_id))
                .execute(&self.write)
                .await?;
            Ok(())
        })
        .await
    }
}

/// Deletes the user's code of this purpose and inserts the new one.
pub(super) async fn replace_code(
    tx: &mut Tx,
    user_id: &str,
    code: &NewCode<'_>,
) -> anyhow::Result<()> {
    let conn: &mut Tx = tx;
    db::query("DELETE FROM one_time_codes WHERE user_id = ? AND purpose = ?")
        .bind(db::id(user_id))
        .bind(code.purpose.as_str())
        .execute(&mut *conn)
        .await?;
    db::query(
        "INSERT INTO one_time_codes (id, user_id, purpose, code_hash, expires_at, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(db::id(&uuid::Uuid::now_v7().to_string()))
    .bind(db::id(user_id))
    .bind(code.purpose.as_str())
    .bind(code.hash)
    .bind(ts(code.expires_at))
    .bind(ts(Utc::now()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts an admin; what the insert answered, as text.
    async fn insert(store: &Store, id: &str, email: &str, referral_code: &str) -> String {
        let email = EmailAddress::parse(email).expect("a valid address");
        let user = NewUser {
            id,
            email: &email,
            password_hash: "h",
            name: None,
            referral_code,
            referred_by: None,
        };
        match store.insert_admin(&user).await {
            Ok(()) => "inserted".to_owned(),
            Err(InsertUserError::Other(_)) => "other".to_owned(),
            Err(refused) => format!("{refused:?}"),
        }
    }

    #[tokio::test]
    async fn a_taken_address_and_a_taken_referral_code_are_told_apart() {
        let (_dir, store) = crate::store::temp_store().await;
        for (id, email, code, answer) in [
            ("a", "a@example.com", "CODE0001", "inserted"),
            ("b", "a@example.com", "CODE0002", "EmailTaken"),
            ("c", "c@example.com", "CODE0001", "ReferralCodeTaken"),
            // A unique index that is neither (the primary key) is no refusal.
            ("a", "d@example.com", "CODE0004", "other"),
        ] {
            assert_eq!(
                insert(&store, id, email, code).await,
                answer,
                "{id} {email} {code}"
            );
        }
    }
}
