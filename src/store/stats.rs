//! Counts for the metrics page.

use super::db;
use chrono::Utc;

use super::{Store, ts};

impl Store {
    /// Emails waiting for delivery (neither sent nor given up).
    pub async fn outbox_depth(&self) -> anyhow::Result<i64> {
        let n = db::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(n)
    }

    /// Sessions that are neither revoked nor expired.
    pub async fn active_sessions(&self) -> anyhow::Result<i64> {
        let n = db::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?",
        )
        .bind(ts(Utc::now()))
        .fetch_one(&self.read)
        .await?;
        Ok(n)
    }
}
