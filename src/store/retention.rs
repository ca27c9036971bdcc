//! Forgetting what is over: sessions that ended, emails that were sent or
//! given up, and email reverts that were spent or expired, once they are
//! older than `SESAME_RETENTION_SECS`.
//!
//! Nothing reads them after that: a session's refresh tokens go with it
//! (`ON DELETE CASCADE`), and the email throttle looks back only
//! `SESAME_EMAIL_MIN_INTERVAL_SECS`, which the configuration keeps shorter
//! than the retention. Deletes run in small batches so that no request
//! waits long for the single writer.

use super::Ts;
use super::db;
use chrono::{DateTime, Utc};

use super::{Store, ts};

/// Rows deleted per statement.
const BATCH: u32 = 500;

/// What one pruning deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Sessions revoked or expired before the cutoff (with their refresh tokens).
    pub sessions: u64,
    /// Emails delivered or given up before the cutoff.
    pub emails: u64,
    /// Email reverts spent or expired before the cutoff (nothing reads them:
    /// they no longer reserve an address, and only live ones are voided).
    pub reverts: u64,
}

impl Store {
    /// Deletes sessions, emails and email reverts that ended before `cutoff`.
    pub async fn prune_ended(&self, cutoff: DateTime<Utc>) -> anyhow::Result<Pruned> {
        let cutoff = ts(cutoff);
        let mut pruned = Pruned::default();
        for sql in [
            "DELETE FROM sessions WHERE id IN \
             (SELECT id FROM sessions WHERE expires_at < ?1 LIMIT ?2)",
            "DELETE FROM sessions WHERE id IN \
             (SELECT id FROM sessions WHERE revoked_at IS NOT NULL AND revoked_at < ?1 LIMIT ?2)",
        ] {
            pruned.sessions += self.delete_in_batches(sql, &cutoff).await?;
        }
        for sql in [
            "DELETE FROM outbox WHERE id IN \
             (SELECT id FROM outbox WHERE sent_at < ?1 LIMIT ?2)",
            "DELETE FROM outbox WHERE id IN \
             (SELECT id FROM outbox WHERE sent_at IS NULL AND failed_at < ?1 LIMIT ?2)",
        ] {
            pruned.emails += self.delete_in_batches(sql, &cutoff).await?;
        }
        for sql in [
            "DELETE FROM email_reverts WHERE id IN \
             (SELECT id FROM email_reverts WHERE expires_at < ?1 LIMIT ?2)",
            "DELETE FROM email_reverts WHERE id IN \
             (SELECT id FROM email_reverts WHERE used_at < ?1 LIMIT ?2)",
        ] {
            pruned.reverts += self.delete_in_batches(sql, &cutoff).await?;
        }
        Ok(pruned)
    }

    /// Runs `sql` (binding the cutoff and [`BATCH`]) until it deletes less
    /// than a batch; each run is its own short write.
    async fn delete_in_batches(&self, sql: &str, cutoff: &Ts) -> anyhow::Result<u64> {
        self.writing(async {
            let mut total = 0;
            loop {
                let done = db::query(sql)
                    .bind(cutoff)
                    .bind(BATCH)
                    .execute(&self.write)
                    .await?
                    .rows_affected();
                total += done;
                if done < u64::from(BATCH) {
                    return Ok(total);
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    async fn count(store: &Store, sql: &str) -> i64 {
        db::query_scalar(sql)
            .fetch_one(&store.write)
            .await
            .expect(sql)
    }

    #[tokio::test]
    async fn only_what_ended_before_the_cutoff_is_deleted() {
        let (_dir, store) = crate::store::temp_store().await;
        let now = Utc::now();
        let (old, recent, future) = (
            ts(now - Duration::days(40)),
            ts(now - Duration::days(1)),
            ts(now + Duration::days(1)),
        );
        let seed = [
            "INSERT INTO users (id, email, password_hash, referral_code, created_at, updated_at) \
             VALUES ('u', 'u@example.com', 'h', 'UCODE123', ?1, ?1)",
            // Sessions: live, revoked long ago, revoked lately, expired long ago.
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, revoked_at) \
             VALUES ('live', 'u', ?1, ?1, ?3, NULL), ('revoked-old', 'u', ?1, ?1, ?3, ?1), \
             ('revoked-recent', 'u', ?1, ?1, ?3, ?2), ('expired-old', 'u', ?1, ?1, ?1, NULL)",
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at) \
             VALUES (x'01', 'live', ?1), (x'02', 'revoked-old', ?1)",
            // Emails: pending, sent long ago, sent lately, given up long ago.
            "INSERT INTO outbox (recipient, kind, subject, text_body, html_body, sent_at, \
             failed_at, created_at) VALUES \
             ('pending', 'k', 's', 't', 'h', NULL, NULL, ?1), \
             ('sent-old', 'k', 's', 't', 'h', ?1, NULL, ?1), \
             ('sent-recent', 'k', 's', 't', 'h', ?2, NULL, ?1), \
             ('failed-old', 'k', 's', 't', 'h', NULL, ?1, ?1)",
            // Reverts: live, expired long ago, spent long ago, spent lately.
            "INSERT INTO email_reverts (id, user_id, old_email, token_hash, expires_at, used_at, \
             created_at) VALUES \
             ('live', 'u', 'a@example.com', x'01', ?3, NULL, ?1), \
             ('expired-old', 'u', 'b@example.com', x'02', ?1, NULL, ?1), \
             ('spent-old', 'u', 'c@example.com', x'03', ?3, ?1, ?1), \
             ('spent-recent', 'u', 'd@example.com', x'04', ?3, ?2, ?1)",
        ];
        for sql in seed {
            db::query(sql)
                .bind(old)
                .bind(recent)
                .bind(future)
                .execute(&store.write)
                .await
                .expect(sql);
        }

        let pruned = store.prune_ended(now - Duration::days(30)).await.unwrap();

        assert_eq!(
            pruned,
            Pruned {
                sessions: 2,
                emails: 2,
                reverts: 2,
            }
        );
        let reverts: Vec<String> = db::query_scalar("SELECT id FROM email_reverts ORDER BY id")
            .fetch_all(&store.write)
            .await
            .unwrap();
        assert_eq!(reverts, ["live", "spent-recent"]);
        let sessions: Vec<String> = db::query_scalar("SELECT id FROM sessions ORDER BY id")
            .fetch_all(&store.write)
            .await
            .unwrap();
        assert_eq!(sessions, ["live", "revoked-recent"]);
        let emails: Vec<String> = db::query_scalar("SELECT recipient FROM outbox ORDER BY id")
            .fetch_all(&store.write)
            .await
            .unwrap();
        assert_eq!(emails, ["pending", "sent-recent"]);
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM refresh_tokens").await,
            1,
            "the pruned session's refresh tokens went with it"
        );
        assert_eq!(
            store.prune_ended(now - Duration::days(30)).await.unwrap(),
            Pruned::default()
        );
    }

    #[tokio::test]
    async fn more_than_a_batch_is_deleted_in_one_pruning() {
        let (_dir, store) = crate::store::temp_store().await;
        let old = ts(Utc::now() - Duration::days(40));
        db::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1234) \
             INSERT INTO outbox (recipient, kind, subject, text_body, html_body, sent_at, \
             created_at) SELECT 'r' || i, 'k', 's', 't', 'h', ?1, ?1 FROM n",
        )
        .bind(old)
        .execute(&store.write)
        .await
        .unwrap();
        let pruned = store.prune_ended(Utc::now()).await.unwrap();
        assert_eq!(pruned.emails, 1234);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM outbox").await, 0);
    }
}
