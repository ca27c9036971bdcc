//! The transactional outbox.

use std::time::Duration;

use super::db::{self, Tx};
use chrono::Utc;

use super::{Store, ts};
use crate::mail::OutgoingEmail;

/// The assignments that take an email's secret out of its bodies once it
/// is delivered or given up (every copy, `[redacted]` in its place: the code
/// itself, the link that carries it) and forget it. Codes and
/// tokens are digits and base64url, which HTML escaping and URL encoding
/// leave as they are, so each copy in the bodies is the literal secret.
const REDACT: &str = "\
    text_body = CASE WHEN secret IS NULL OR secret = '' THEN text_body \
                ELSE replace(text_body, secret, '[redacted]') END, \
    html_body = CASE WHEN secret IS NULL OR secret = '' THEN html_body \
                ELSE replace(html_body, secret, '[redacted]') END, \
    secret = NULL";

/// A queued email awaiting delivery.
pub struct QueuedEmail {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
}

/// Queues an email inside the caller's transaction.
pub(super) async fn enqueue(
    conn: &mut Tx,
    user_id: Option<&str>,
    email: &OutgoingEmail,
) -> anyhow::Result<()> {
    db::query(
        "INSERT INTO outbox \
         (user_id, recipient, kind, subject, text_body, html_body, secret, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(db::opt_id(user_id))
    .bind(&email.recipient)
    .bind(email.kind)
    .bind(&email.subject)
    .bind(&email.text_body)
    .bind(&email.html_body)
    .bind(&email.secret)
    .bind(ts(Utc::now()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether an email of this kind went to this address less than
/// `min_interval` ago (the throttle: a sooner request sends nothing).
pub(super) async fn sent_recently(
    conn: &mut Tx,
    email: &OutgoingEmail,
    min_interval: Duration,
) -> anyhow::Result<bool> {
    if min_interval.is_zero() {
        return Ok(false);
    }
    let since = Utc::now() - chrono::Duration::from_std(min_interval)?;
    let recent: Option<bool> = db::query_scalar(
        "SELECT TRUE FROM outbox WHERE recipient = ? AND kind = ? AND created_at > ? LIMIT 1",
    )
    .bind(&email.recipient)
    .bind(email.kind)
    .bind(ts(since))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(recent.is_some())
}

impl Store {
    /// Queues an email that goes with no other change, unless one of its
    /// kind went to the address less than `min_interval` ago. Returns
    /// whether it was queued.
    pub async fn queue_email(
        &self,
        user_id: Option<&str>,
        email: &OutgoingEmail,
        min_interval: Duration,
    ) -> anyhow::Result<bool> {
        self.writing(async {
            let mut tx = self.write.begin().await?;
            if sent_recently(&mut tx, email, min_interval).await? {
                return Ok(false);
            }
            enqueue(&mut tx, user_id, email).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// The oldest emails still to deliver, in queue order.
    pub async fn pending_emails(&self, limit: u32) -> anyhow::Result<Vec<QueuedEmail>> {
        let rows: Vec<(i64, String, String, String, String)> = db::query_as(
            "SELECT id, recipient, subject, text_body, html_body FROM outbox \
             WHERE sent_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, recipient, subject, text_body, html_body)| QueuedEmail {
                    id,
                    recipient,
                    subject,
                    text_body,
                    html_body,
                },
            )
            .collect())
    }

    /// Records a delivery, and removes the email's secret from its bodies.
    pub async fn mark_email_sent(&self, id: i64) -> anyhow::Result<()> {
        self.writing(async {
            let sql = format!(
                "UPDATE outbox SET sent_at = ?, attempts = attempts + 1, {REDACT} WHERE id = ?"
            );
            db::query(&sql)
                .bind(ts(Utc::now()))
                .bind(id)
                .execute(&self.write)
                .await?;
            Ok(())
        })
        .await
    }

    /// Records a failed attempt; with `permanent`, the email is given up
    /// and its secret removed from its bodies.
    pub async fn mark_email_failed(
        &self,
        id: i64,
        error: &str,
        permanent: bool,
    ) -> anyhow::Result<()> {
        self.writing(async {
            let failed_at = permanent.then(|| ts(Utc::now()));
            let sql = if permanent {
                format!(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, failed_at = ?, \
                     {REDACT} WHERE id = ?"
                )
            } else {
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, failed_at = ? WHERE id = ?"
                    .to_owned()
            };
            db::query(&sql)
                .bind(error)
                .bind(failed_at)
                .bind(id)
                .execute(&self.write)
                .await?;
            Ok(())
        })
        .await
    }

    /// Takes or renews the delivery lease for `holder` until `ttl` from
    /// now; `false` if another holder has it and it has not expired.
    pub async fn take_outbox_lease(&self, holder: &str, ttl: Duration) -> anyhow::Result<bool> {
        self.writing(async {
            let now = Utc::now();
            let done = db::query(
                "INSERT INTO outbox_lease (id, holder, expires_at) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE outbox_lease.holder = excluded.holder OR outbox_lease.expires_at < ?3",
            )
            .bind(holder)
            .bind(ts(now + ttl))
            .bind(ts(now))
            .execute(&self.write)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    /// Gives the delivery lease up, if `holder` has it.
    pub async fn release_outbox_lease(&self, holder: &str) -> anyhow::Result<()> {
        self.writing(async {
            db::query("DELETE FROM outbox_lease WHERE holder = ?")
                .bind(holder)
                .execute(&self.write)
                .await?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn email_with(secret: &str) -> OutgoingEmail {
        OutgoingEmail {
            recipient: "a@example.com".into(),
            kind: "password_reset",
            subject: "Reset".into(),
            text_body: format!("token {secret}, link https://x/?token={secret}"),
            html_body: format!("<code>{secret}</code>"),
            secret: Some(secret.into()),
        }
    }

    #[tokio::test]
    async fn delivered_and_given_up_emails_lose_their_secret_and_retried_ones_keep_it() {
        let (_dir, store) = crate::store::temp_store().await;
        for secret in ["sent-secret", "retried-secret", "given-up-secret"] {
            assert!(
                store
                    .queue_email(None, &email_with(secret), Duration::ZERO)
                    .await
                    .unwrap()
            );
        }
        store.mark_email_sent(1).await.unwrap();
        store
            .mark_email_failed(2, "421 later", false)
            .await
            .unwrap();
        store.mark_email_failed(3, "550 no", true).await.unwrap();

        let rows: Vec<(String, String, Option<String>)> =
            db::query_as("SELECT text_body, html_body, secret FROM outbox ORDER BY id")
                .fetch_all(&store.write)
                .await
                .unwrap();
        let redacted = (
            "token [redacted], link https://x/?token=[redacted]".to_owned(),
            "<code>[redacted]</code>".to_owned(),
            None,
        );
        assert_eq!(rows[0], redacted);
        assert_eq!(rows[1], {
            let mail = email_with("retried-secret");
            (mail.text_body, mail.html_body, mail.secret)
        });
        assert_eq!(rows[2], redacted);
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_it_gives_up_or_its_lease_expires() {
        let (_dir, store) = crate::store::temp_store().await;

        assert!(store.take_outbox_lease("a", TTL).await.unwrap());
        assert!(!store.take_outbox_lease("b", TTL).await.unwrap());
        assert!(store.take_outbox_lease("a", TTL).await.unwrap(), "renewed");
        store.release_outbox_lease("b").await.unwrap();
        assert!(
            !store.take_outbox_lease("b", TTL).await.unwrap(),
            "only a gives it up"
        );
        store.release_outbox_lease("a").await.unwrap();
        assert!(store.take_outbox_lease("b", TTL).await.unwrap());

        // b dies holding it: once it expires, a takes it.
        db::query("UPDATE outbox_lease SET expires_at = ?")
            .bind(ts(Utc::now() - chrono::Duration::seconds(1)))
            .execute(&store.write)
            .await
            .unwrap();
        assert!(store.take_outbox_lease("a", TTL).await.unwrap());
        assert!(!store.take_outbox_lease("b", TTL).await.unwrap());
    }
}
