//! What a signed-in user changes about their own account: name, password,
//! email address (with its confirmation code), and deleting it.

use std::time::Duration;

use super::Ts;
use super::db::Uid;
use super::db::{self, Tx};
use chrono::{DateTime, Utc};

use super::code_budget::CodeBudget;
use super::email_reverts::{self, NewEmailRevert};
use super::{Store, is_unique_violation, outbox, parse_ts, ts};
use crate::domain::email::EmailAddress;
use crate::mail::OutgoingEmail;

/// A pending email change to store: the code (hash only) and where it moves to.
pub struct NewEmailChange<'a> {
    pub new_email: &'a EmailAddress,
    pub code_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
}

/// The outcome of presenting an email change code.
#[derive(Debug, PartialEq, Eq)]
pub enum EmailChangeAttempt {
    /// Right code: the account now has the new address.
    Changed,
    /// Right code, but another account took the address first.
    EmailTaken,
    /// Wrong, expired, used up, or no pending change.
    Rejected,
}

/// A pending email change as stored.
#[derive(sqlx::FromRow)]
struct PendingChange {
    id: Uid,
    code_hash: Vec<u8>,
    new_email: Option<String>,
    failed_attempts: i64,
    expires_at: Ts,
}

impl Store {
    /// Sets or clears a user's display name; `false` if there is no such user.
    pub async fn update_name(&self, user_id: &str, name: Option<&str>) -> anyhow::Result<bool> {
        self.writing(async {
            let changed = db::query("UPDATE users SET name = ?, updated_at = ? WHERE id = ?")
                .bind(name)
                .bind(ts(Utc::now()))
                .bind(db::id(user_id))
                .execute(&self.write)
                .await?
                .rows_affected();
            Ok(changed > 0)
        })
        .await
    }

    /// Stores a new password hash, revokes every session of the user but
    /// `keep_session`, voids pending reset tokens and email change codes
    /// (secrets sent while the old password was the key), and queues the
    /// notice, atomically.
    pub async fn change_password(
        &self,
        user_id: &str,
        keep_session: &str,
        new_hash: &str,
        notice: &OutgoingEmail,
    ) -> anyhow::Result<()> {
        self.writing(async {
            let mut tx = self.write.begin().await?;
            let now = ts(Utc::now());
            db::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
                .bind(new_hash)
                .bind(now)
                .bind(db::id(user_id))
                .execute(&mut tx)
                .await?;
            db::query(
                "UPDATE sessions SET revoked_at = ? \
                 WHERE user_id = ? AND id <> ? AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(db::id(user_id))
            .bind(db::id(keep_session))
            .execute(&mut tx)
            .await?;
            void_codes(&mut tx, user_id, &["password_reset", "email_change"]).await?;
            outbox::enqueue(&mut tx, Some(user_id), notice).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Deletes a user. Its sessions, refresh tokens, codes and queued emails
    /// go with it (`ON DELETE CASCADE`); accounts it referred stay, with
    /// `referred_by` set to NULL. `false` if there was no such user.
    pub async fn delete_user(&self, user_id: &str) -> anyhow::Result<bool> {
        self.writing(async {
            let deleted = db::query("DELETE FROM users WHERE id = ?")
                .bind(db::id(user_id))
                .execute(&self.write)
                .await?
                .rows_affected();
            Ok(deleted > 0)
        })
        .await
    }

    /// Replaces the user's pending email change (a newer code voids the
    /// older one) and queues the code email and the notice, atomically;
    /// unless a code email went to the new address less than `min_interval`
    /// ago: then nothing changes (a pending code stays valid). Returns
    /// whether the change was issued.
    pub async fn issue_email_change(
        &self,
        user_id: &str,
        change: &NewEmailChange<'_>,
        code_email: &OutgoingEmail,
        notice: &OutgoingEmail,
        min_interval: Duration,
    ) -> anyhow::Result<bool> {
        self.writing(async {
            let mut tx = self.write.begin().await?;
            if outbox::sent_recently(&mut tx, code_email, min_interval).await? {
                return Ok(false);
            }
            let now = ts(Utc::now());
            db::query("DELETE FROM one_time_codes WHERE user_id = ? AND purpose = 'email_change'")
                .bind(db::id(user_id))
                .execute(&mut tx)
                .await?;
            db::query(
                "INSERT INTO one_time_codes \
             (id, user_id, purpose, code_hash, new_email, expires_at, created_at) \
             VALUES (?, ?, 'email_change', ?, ?, ?, ?)",
            )
            .bind(db::id(&uuid::Uuid::now_v7().to_string()))
            .bind(db::id(user_id))
            .bind(change.code_hash)
            .bind(change.new_email.as_str())
            .bind(ts(change.expires_at))
            .bind(now)
            .execute(&mut tx)
            .await?;
            outbox::enqueue(&mut tx, Some(user_id), code_email).await?;
            outbox::enqueue(&mut tx, Some(user_id), notice).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Presents an email change code; `matches` compares the stored hash in
    /// constant time. A wrong try is counted in the same transaction that
    /// checks the limits (`max_attempts` per code, `budget` per address and
    /// day), so parallel guesses cannot exceed them; while the budget is
    /// spent every code is refused, the right one too. On the right
    /// code the unique index on `users.email` decides a race for the
    /// address: the loser's transaction is rolled back and its code stays.
    /// The move ends every session of the user but `keep_session`, voids
    /// pending reset tokens, and stores `revert` with its notice to the old
    /// address. An address a live revert of another account reserves is
    /// refused like a taken one, in the same transaction.
    pub async fn attempt_email_change(
        &self,
        user_id: &str,
        keep_session: &str,
        revert: &NewEmailRevert<'_>,
        budget: &CodeBudget<'_>,
        max_attempts: u32,
        matches: impl Fn(&[u8]) -> bool,
    ) -> anyhow::Result<EmailChangeAttempt> {
        self.writing(async {
            let mut tx = self.begin_immediate().await?;
            if budget.spent(&mut tx).await? {
                return Ok(EmailChangeAttempt::Rejected);
            }
            let pending: Option<PendingChange> = db::query_as(
                "SELECT id, code_hash, new_email, failed_attempts, expires_at FROM one_time_codes \
                 WHERE user_id = ? AND purpose = 'email_change' AND used_at IS NULL",
            )
            .bind(db::id(user_id))
            .fetch_optional(&mut tx)
            .await?;
            let now = Utc::now();
            let live = match &pending {
                Some(code) => {
                    code.new_email.is_some()
                        && code.failed_attempts < i64::from(max_attempts)
                        && parse_ts(&code.expires_at)? > now
                }
                None => false,
            };
            let Some((pending, new_email)) = pending
                .filter(|code| live && matches(&code.code_hash))
                .and_then(|code| code.new_email.clone().map(|email| (code, email)))
            else {
                if live {
                    db::query(
                        "UPDATE one_time_codes SET failed_attempts = failed_attempts + 1 \
                         WHERE user_id = ? AND purpose = 'email_change'",
                    )
                    .bind(db::id(user_id))
                    .execute(&mut tx)
                    .await?;
                }
                budget.count_failure(&mut tx).await?;
                tx.commit().await?;
                return Ok(EmailChangeAttempt::Rejected);
            };
            // An address another account may still take back is as taken
            // as one another account has.
            if email_reverts::reserved(&mut tx, &new_email, user_id).await? {
                return Ok(EmailChangeAttempt::EmailTaken);
            }
            let moved =
                db::query("UPDATE users SET email = ?, updated_at = ? WHERE id = ? AND email = ?")
                    .bind(&new_email)
                    .bind(ts(now))
                    .bind(db::id(user_id))
                    .bind(revert.old_email.as_str())
                    .execute(&mut tx)
                    .await;
            match moved {
                // The notice and the revert were made for the address the
                // account had when the request began; it has no other while
                // a code is pending (a move or a revert spends the code).
                Ok(done) if done.rows_affected() == 0 => {
                    return Ok(EmailChangeAttempt::Rejected);
                }
                Ok(_) => {}
                // Only the address is set here, so only its unique index can refuse.
                Err(e) if is_unique_violation(&e) => {
                    return Ok(EmailChangeAttempt::EmailTaken);
                }
                Err(e) => return Err(e.into()),
            }
            db::query("DELETE FROM one_time_codes WHERE id = ?")
                .bind(db::id(&pending.id))
                .execute(&mut tx)
                .await?;
            // Whoever holds another session or a reset link sent to the old
            // address loses it with the address.
            db::query(
                "UPDATE sessions SET revoked_at = ? \
                 WHERE user_id = ? AND id <> ? AND revoked_at IS NULL",
            )
            .bind(ts(now))
            .bind(db::id(user_id))
            .bind(db::id(keep_session))
            .execute(&mut tx)
            .await?;
            void_codes(&mut tx, user_id, &["password_reset"]).await?;
            let new_email = EmailAddress::parse(&new_email)
                .map_err(|problem| anyhow::anyhow!("a stored new address {problem}"))?;
            email_reverts::insert(&mut tx, user_id, &new_email, revert).await?;
            tx.commit().await?;
            Ok(EmailChangeAttempt::Changed)
        })
        .await
    }
}

/// Deletes the user's pending one-time secrets of these purposes.
pub(super) async fn void_codes(
    conn: &mut Tx,
    user_id: &str,
    purposes: &[&str],
) -> sqlx::Result<()> {
    for purpose in purposes {
        db::query("DELETE FROM one_time_codes WHERE user_id = ? AND purpose = ?")
            .bind(db::id(user_id))
            .bind(purpose)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
