//! The transactional outbox.

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::{Store, parse_ts, ts};
use crate::mail::OutgoingEmail;

/// A queued email awaiting delivery.
pub struct QueuedEmail {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub attempts: u32,
}

/// Queues an email inside the caller's transaction.
pub(super) async fn enqueue(
    conn: &mut SqliteConnection,
    user_id: Option<&str>,
    email: &OutgoingEmail,
) -> anyhow::Result<()> {
    let now = ts(Utc::now());
    sqlx::query(
        "INSERT INTO outbox (user_id, recipient, kind, subject, text_body, html_body, next_attempt_at, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(user_id)
    .bind(&email.recipient)
    .bind(email.kind)
    .bind(&email.subject)
    .bind(&email.text_body)
    .bind(&email.html_body)
    .bind(&now)
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Queues an email that goes with no other change.
    pub async fn queue_email(
        &self,
        user_id: Option<&str>,
        email: &OutgoingEmail,
    ) -> anyhow::Result<()> {
        let mut conn = self.write.acquire().await?;
        enqueue(&mut conn, user_id, email).await
    }

    /// Emails due for delivery, oldest first.
    pub async fn due_emails(&self, limit: u32) -> anyhow::Result<Vec<QueuedEmail>> {
        let rows: Vec<(i64, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT id, recipient, subject, text_body, html_body, attempts FROM outbox \
             WHERE sent_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT ?",
        )
        .bind(ts(Utc::now()))
        .bind(limit)
        .fetch_all(&self.write)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, recipient, subject, text_body, html_body, attempts)| QueuedEmail {
                    id,
                    recipient,
                    subject,
                    text_body,
                    html_body,
                    attempts: attempts.try_into().unwrap_or(u32::MAX),
                },
            )
            .collect())
    }

    /// When the next undelivered email is due, if any.
    pub async fn next_email_due_at(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let next: Option<String> =
            sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox WHERE sent_at IS NULL")
                .fetch_one(&self.write)
                .await?;
        next.as_deref().map(parse_ts).transpose()
    }

    /// Records a delivery.
    pub async fn mark_email_sent(&self, id: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?")
            .bind(ts(Utc::now()))
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub async fn mark_email_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?")
            .bind(error)
            .bind(ts(retry_at))
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
