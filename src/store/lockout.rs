//! Consecutive failed logins and account locks, kept in the database so a
//! restart does not reset an attacker's count.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Store, outbox, parse_ts, ts};
use crate::mail::OutgoingEmail;

impl Store {
    /// Until when the account is locked, if it is locked now.
    pub async fn locked_until(&self, user_id: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        let until: Option<String> =
            sqlx::query_scalar("SELECT locked_until FROM users WHERE id = ?")
                .bind(user_id)
                .fetch_optional(&self.read)
                .await?
                .flatten();
        let now = Utc::now();
        Ok(until
            .as_deref()
            .map(parse_ts)
            .transpose()?
            .filter(|until| *until > now))
    }

    /// Counts a failed login. The failure that reaches `max_failures` locks
    /// the account for `lockout` and queues `notice` to its owner (once per
    /// lock); the answer is then the end of the lock. A lapsed lock starts a
    /// new count. One transaction on the single writer, so parallel guesses
    /// cannot slip past the limit.
    pub async fn record_failed_login(
        &self,
        user_id: &str,
        max_failures: u32,
        lockout: Duration,
        notice: &OutgoingEmail,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let mut tx = self.write.begin().await?;
        let now = Utc::now();
        let row: Option<(i64, Option<String>)> =
            sqlx::query_as("SELECT failed_logins, locked_until FROM users WHERE id = ?")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((failures, locked_until)) = row else {
            return Ok(None);
        };
        let lapsed = locked_until
            .as_deref()
            .map(parse_ts)
            .transpose()?
            .is_some_and(|until| until <= now);
        let failures = if lapsed { 1 } else { failures + 1 };
        let lock = (failures >= i64::from(max_failures) && (locked_until.is_none() || lapsed))
            .then(|| now + lockout);
        sqlx::query(
            "UPDATE users SET failed_logins = ?, \
             locked_until = CASE WHEN ? THEN NULL ELSE locked_until END \
             WHERE id = ?",
        )
        .bind(failures)
        .bind(lapsed)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if let Some(until) = lock {
            sqlx::query("UPDATE users SET locked_until = ? WHERE id = ?")
                .bind(ts(until))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            outbox::enqueue(&mut tx, Some(user_id), notice).await?;
        }
        tx.commit().await?;
        Ok(lock)
    }
}
