//! Consecutive failed logins and locks, kept in the database so a restart
//! does not reset an attacker's count. Addresses without an account are
//! counted and locked exactly like accounts (in their own table), so the
//! lockout answers, and the work a failed login does, are the same whether
//! or not the address exists.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::{Store, outbox, parse_ts, ts};
use crate::mail::OutgoingEmail;

/// Whose failed logins are counted.
#[derive(Debug, Clone, Copy)]
pub enum LoginSubject<'a> {
    /// An account, by user id.
    Account(&'a str),
    /// An address with no account, by hash.
    Unknown(&'a [u8]),
}

/// How long an idle count for an unknown address is kept.
const UNKNOWN_RETENTION: chrono::Duration = chrono::Duration::days(1);

impl Store {
    /// Until when logins are locked for this subject, if they are locked now.
    pub async fn locked_until(
        &self,
        subject: LoginSubject<'_>,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let until: Option<String> = match subject {
            LoginSubject::Account(id) => {
                sqlx::query_scalar("SELECT locked_until FROM users WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?
                    .flatten()
            }
            LoginSubject::Unknown(hash) => sqlx::query_scalar(
                "SELECT locked_until FROM unknown_login_failures WHERE email_hash = ?",
            )
            .bind(hash)
            .fetch_optional(&self.read)
            .await?
            .flatten(),
        };
        let now = Utc::now();
        Ok(until
            .as_deref()
            .map(parse_ts)
            .transpose()?
            .filter(|until| *until > now))
    }

    /// Counts a failed login. The failure that reaches `max_failures` locks
    /// the subject for `lockout` and, for an account, queues `notice` to its
    /// owner (once per lock); the answer is then the end of the lock. A
    /// lapsed lock starts a new count. One transaction on the single writer,
    /// so parallel guesses cannot slip past the limit.
    pub async fn record_failed_login(
        &self,
        subject: LoginSubject<'_>,
        max_failures: u32,
        lockout: Duration,
        notice: Option<&OutgoingEmail>,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        self.writing(async {
        let mut tx = self.write.begin().await?;
        let now = Utc::now();
        let (failures, locked_until) = read_count(&mut tx, subject).await?;
        let lapsed = locked_until.is_some_and(|until| until <= now);
        let failures = if lapsed { 1 } else { failures + 1 };
        let still_locked = locked_until.filter(|_| !lapsed);
        let lock =
            (failures >= i64::from(max_failures) && still_locked.is_none()).then(|| now + lockout);
        let locked_until = lock.or(still_locked).map(ts);
        match subject {
            LoginSubject::Account(id) => {
                sqlx::query("UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?")
                    .bind(failures)
                    .bind(&locked_until)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if let (Some(_), Some(notice)) = (lock, notice) {
                    outbox::enqueue(&mut tx, Some(id), notice).await?;
                }
            }
            LoginSubject::Unknown(hash) => {
                sqlx::query(
                    "INSERT INTO unknown_login_failures (email_hash, failed_logins, locked_until, updated_at) \
                     VALUES (?, ?, ?, ?) ON CONFLICT (email_hash) DO UPDATE SET \
                     failed_logins = excluded.failed_logins, locked_until = excluded.locked_until, \
                     updated_at = excluded.updated_at",
                )
                .bind(hash)
                .bind(failures)
                .bind(&locked_until)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(lock)
        }).await
    }

    /// Forgets counts of unknown addresses idle for a day.
    pub async fn prune_unknown_login_failures(&self) -> anyhow::Result<u64> {
        self.writing(async {
            let cutoff = ts(Utc::now() - UNKNOWN_RETENTION);
            let done = sqlx::query("DELETE FROM unknown_login_failures WHERE updated_at < ?")
                .bind(cutoff)
                .execute(&self.write)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }
}

async fn read_count(
    conn: &mut SqliteConnection,
    subject: LoginSubject<'_>,
) -> anyhow::Result<(i64, Option<DateTime<Utc>>)> {
    let row: Option<(i64, Option<String>)> = match subject {
        LoginSubject::Account(id) => {
            sqlx::query_as("SELECT failed_logins, locked_until FROM users WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
        }
        LoginSubject::Unknown(hash) => sqlx::query_as(
            "SELECT failed_logins, locked_until FROM unknown_login_failures WHERE email_hash = ?",
        )
        .bind(hash)
        .fetch_optional(&mut *conn)
        .await?,
    };
    let (failures, until) = row.unwrap_or((0, None));
    Ok((failures, until.as_deref().map(parse_ts).transpose()?))
}
