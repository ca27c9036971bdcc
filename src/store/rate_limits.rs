//! Rate-limit budgets kept in the database, so that every instance on one
//! PostgreSQL database counts against the same budget (GCRA, as the
//! in-memory limiter on SQLite; see `migrations/postgres/0002_rate_limits.sql`).

use std::time::Duration;

use chrono::Utc;

use super::Store;
use super::db;

/// A budget: one request per `emission` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub emission: Duration,
    pub burst: u32,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Store {
    /// Counts one request under `key`: `None` when admitted, else how long
    /// until the next one would be. One upsert when admitted (a second
    /// read only to tell a refused client how long to wait), atomic on
    /// the row: two instances counting the same key at once both count.
    pub async fn count_request(
        &self,
        key: &str,
        budget: Budget,
    ) -> anyhow::Result<Option<Duration>> {
        let now = Utc::now().timestamp_micros();
        let emission = micros(budget.emission).max(1);
        let tolerance = emission.saturating_mul(i64::from(budget.burst));
        let admitted: Option<i64> = db::query_scalar(
            "INSERT INTO rate_limits AS r (key, tat) VALUES (?1, ?2 + ?3) \
             ON CONFLICT (key) DO UPDATE SET tat = GREATEST(r.tat, ?2) + ?3 \
             WHERE GREATEST(r.tat, ?2) + ?3 - ?2 <= ?4 \
             RETURNING tat",
        )
        .bind(key)
        .bind(now)
        .bind(emission)
        .bind(tolerance)
        .fetch_optional(&self.write)
        .await?;
        if admitted.is_some() {
            return Ok(None);
        }
        let tat: Option<i64> = db::query_scalar("SELECT tat FROM rate_limits WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.read)
            .await?;
        let wait = tat.map_or(0, |tat| tat.max(now) + emission - tolerance - now);
        Ok(Some(Duration::from_micros(
            u64::try_from(wait).unwrap_or(0).max(1),
        )))
    }

    /// Forgets budgets that are full again (their row holds nothing a
    /// fresh one would not).
    pub async fn prune_rate_limits(&self) -> anyhow::Result<u64> {
        let done = db::query("DELETE FROM rate_limits WHERE tat < ?")
            .bind(Utc::now().timestamp_micros())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }
}
