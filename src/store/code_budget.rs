//! The daily budget of wrong codes per address (`code_failures`): five
//! wrong tries void one code, but a resend brings a fresh one, so without
//! this a guesser's chances grew with every resend. Counted for addresses
//! with and without an account alike, so the budget tells nothing about
//! which addresses exist.

use std::time::Duration;

use super::db::{self, Tx};
use chrono::Utc;

use super::{Store, ts};

/// Which emailed codes a budget is for: each kind has its own per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    /// Verification codes of a new account.
    Activation,
    /// Codes that confirm a move to a new address (counted against the
    /// account's current address).
    EmailChange,
    /// Second-factor codes (TOTP and recovery codes) of an account.
    SecondFactor,
}

impl CodeKind {
    fn as_str(self) -> &'static str {
        match self {
            CodeKind::Activation => "activation",
            CodeKind::EmailChange => "email_change",
            CodeKind::SecondFactor => "second_factor",
        }
    }
}

/// One address's budget of wrong codes of one kind.
#[derive(Debug, Clone, Copy)]
pub struct CodeBudget<'a> {
    /// The SHA-256 of the address ([`crate::domain::codes::budget_key`]).
    pub address_key: &'a [u8],
    pub kind: CodeKind,
    /// Wrong codes allowed per window (`SESAME_CODE_MAX_FAILURES_PER_DAY`).
    pub max_failures: u32,
    /// How long a window lasts from its first wrong code (a day).
    pub window: Duration,
}

impl CodeBudget<'_> {
    /// The start of the oldest window still running.
    fn cutoff(&self) -> anyhow::Result<super::Ts> {
        Ok(ts(Utc::now() - chrono::Duration::from_std(self.window)?))
    }

    /// Whether this window's wrong codes reached the budget.
    pub(super) async fn spent(&self, ex: impl Into<db::Ex<'_>>) -> anyhow::Result<bool> {
        let failures: Option<i64> = db::query_scalar(
            "SELECT failures FROM code_failures \
             WHERE email_hash = ? AND kind = ? AND window_start > ?",
        )
        .bind(self.address_key)
        .bind(self.kind.as_str())
        .bind(self.cutoff()?)
        .fetch_optional(ex)
        .await?;
        Ok(failures.is_some_and(|n| n >= i64::from(self.max_failures)))
    }

    /// Counts a wrong code; the first one after a window ended starts a new one.
    pub(super) async fn count_failure(&self, conn: &mut Tx) -> anyhow::Result<()> {
        db::query(
            "INSERT INTO code_failures (email_hash, kind, failures, window_start) \
             VALUES (?1, ?2, 1, ?3) \
             ON CONFLICT (email_hash, kind) DO UPDATE SET \
             failures = CASE WHEN code_failures.window_start <= ?4 THEN 1 \
             ELSE code_failures.failures + 1 END, \
             window_start = CASE WHEN code_failures.window_start <= ?4 \
             THEN excluded.window_start ELSE code_failures.window_start END",
        )
        .bind(self.address_key)
        .bind(self.kind.as_str())
        .bind(ts(Utc::now()))
        .bind(self.cutoff()?)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

impl Store {
    /// Whether `budget` is spent: its codes are refused and no new one is sent.
    pub async fn code_budget_spent(&self, budget: &CodeBudget<'_>) -> anyhow::Result<bool> {
        budget.spent(&self.read).await
    }

    /// Counts a code presented for an address that has no code to compare
    /// it with (no account): the same write a wrong code for an account
    /// costs, unless the budget is already spent (then, as there, none).
    pub async fn reject_code(&self, budget: &CodeBudget<'_>) -> anyhow::Result<()> {
        self.writing(async {
            let mut tx = self.begin_immediate().await?;
            if !budget.spent(&mut tx).await? {
                budget.count_failure(&mut tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Forgets budgets whose window (of length `window`) has ended.
    pub async fn prune_code_failures(&self, window: Duration) -> anyhow::Result<u64> {
        let cutoff = Utc::now() - chrono::Duration::from_std(window)?;
        self.delete_older("DELETE FROM code_failures WHERE window_start < ?", cutoff)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[tokio::test]
    async fn a_budget_is_spent_at_its_limit_and_refills_when_its_window_ends() {
        let (_dir, store) = crate::store::temp_store().await;
        let budget = CodeBudget {
            address_key: b"key",
            kind: CodeKind::Activation,
            max_failures: 3,
            window: DAY,
        };
        let other_kind = CodeBudget {
            kind: CodeKind::EmailChange,
            ..budget
        };
        for _ in 0..3 {
            assert!(!store.code_budget_spent(&budget).await.unwrap());
            store.reject_code(&budget).await.unwrap();
        }
        assert!(store.code_budget_spent(&budget).await.unwrap());
        assert!(!store.code_budget_spent(&other_kind).await.unwrap());

        // The window started a day ago: the budget is whole again, and the
        // next wrong code starts a new window.
        db::query("UPDATE code_failures SET window_start = ?")
            .bind(ts(Utc::now() - chrono::Duration::hours(25)))
            .execute(&store.write)
            .await
            .unwrap();
        assert!(!store.code_budget_spent(&budget).await.unwrap());
        store.reject_code(&budget).await.unwrap();
        let failures: i64 = db::query_scalar("SELECT failures FROM code_failures")
            .fetch_one(&store.write)
            .await
            .unwrap();
        assert_eq!(failures, 1);
        assert_eq!(store.prune_code_failures(DAY).await.unwrap(), 0);
    }
}
