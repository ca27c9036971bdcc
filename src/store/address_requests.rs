//! Requests that name an address from outside (`address_requests`): forgot
//! password and resend a verification code commit one write whether or not
//! the address has an account, so their time tells a stranger nothing.
//! With a real account the same transaction also stores the code and
//! queues its email ([`super::Store::issue_code`]); without one, or when
//! nothing is to be sent, [`super::Store::note_address_request`] commits the
//! count alone.

use std::time::Duration;

use super::db::{self, Tx};
use chrono::Utc;

use super::users::CodePurpose;
use super::{Store, ts};

/// One request naming an address: the hash of the address
/// ([`crate::domain::codes::budget_key`]) and what was asked for it.
#[derive(Debug, Clone, Copy)]
pub struct AddressRequest<'a> {
    pub address_key: &'a [u8],
    pub purpose: CodePurpose,
}

impl AddressRequest<'_> {
    /// Counts the request: the one write every request of its kind makes.
    pub(super) async fn count(&self, conn: &mut Tx) -> anyhow::Result<()> {
        db::query(
            "INSERT INTO address_requests (address_key, kind, requests, last_at) \
             VALUES (?1, ?2, 1, ?3) \
             ON CONFLICT (address_key, kind) DO UPDATE SET \
             requests = address_requests.requests + 1, last_at = excluded.last_at",
        )
        .bind(self.address_key)
        .bind(self.purpose.as_str())
        .bind(ts(Utc::now()))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

impl Store {
    /// Commits the count of a request that sends nothing: the same one
    /// write (and fsync) a request for a real account makes.
    pub async fn note_address_request(&self, request: &AddressRequest<'_>) -> anyhow::Result<()> {
        self.writing(async {
            let mut tx = self.begin_immediate().await?;
            request.count(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Forgets counts idle for longer than `idle`.
    pub async fn prune_address_requests(&self, idle: Duration) -> anyhow::Result<u64> {
        let cutoff = Utc::now() - chrono::Duration::from_std(idle)?;
        self.delete_older("DELETE FROM address_requests WHERE last_at < ?", cutoff)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_request_commits_one_count_and_idle_counts_are_pruned() {
        let (_dir, store) = crate::store::temp_store().await;
        let request = AddressRequest {
            address_key: b"key",
            purpose: CodePurpose::PasswordReset,
        };
        for _ in 0..3 {
            store.note_address_request(&request).await.unwrap();
        }
        let requests: i64 = db::query_scalar("SELECT requests FROM address_requests")
            .fetch_one(&store.write)
            .await
            .unwrap();
        assert_eq!(requests, 3);
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(store.prune_address_requests(day).await.unwrap(), 0);
        db::query("UPDATE address_requests SET last_at = ?")
            .bind(ts(Utc::now() - chrono::Duration::hours(25)))
            .execute(&store.write)
            .await
            .unwrap();
        assert_eq!(store.prune_address_requests(day).await.unwrap(), 1);
    }
}
