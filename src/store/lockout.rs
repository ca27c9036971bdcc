//! Failed password checks and the locks they lead to, kept in the database
//! so a restart does not reset an attacker's count.
//!
//! Two counts per subject (an account, or an address without one): one per
//! client network, which locks the subject for that network only, and one
//! across all networks (stored under the network `*`), which counts every
//! failure within a lockout window and, at a higher threshold, locks the
//! subject everywhere. Addresses without an account are counted in the same
//! table, by the same statements, so the answers and the work of a failed
//! login are the same whether or not the address exists.
//!
//! An attempt is counted *before* its password is hashed
//! ([`Store::begin_password_check`]): parallel guesses are admitted one by
//! one in the single writer's transactions, and those beyond the limit are
//! refused without hashing. The hash then settles the attempt
//! ([`Store::settle_password_check`]): a right password takes its count back.

use std::time::Duration;

use super::Ts;
use super::db::{self, Tx};
use chrono::{DateTime, Utc};

use super::{Store, outbox, parse_ts, ts};
use crate::mail::OutgoingEmail;

/// The network name of the count across all networks.
const ALL_NETWORKS: &str = "*";

/// How long an idle count is kept.
const RETENTION: chrono::Duration = chrono::Duration::days(1);

/// Whose password checks are counted.
#[derive(Debug, Clone, Copy)]
pub enum LoginSubject<'a> {
    /// An account, by user id.
    Account(&'a str),
    /// An address with no account, by a hash of it (hex).
    Unknown(&'a str),
}

impl LoginSubject<'_> {
    fn key(&self) -> &str {
        match self {
            LoginSubject::Account(id) => id,
            LoginSubject::Unknown(hash) => hash,
        }
    }
}

/// How many failures lock, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Consecutive failures from one network that lock the subject for it.
    pub per_network: u32,
    /// Failures from all networks within one lockout window that lock the
    /// subject everywhere.
    pub all_networks: u32,
    /// How long a lock lasts; also the window of the all-networks count.
    pub lockout: Duration,
}

/// The outcome of counting an attempt before its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckAdmission {
    /// Locked (for this network or everywhere) until then: do not hash.
    Locked(DateTime<Utc>),
    /// Counted: hash, then settle with [`Store::settle_password_check`].
    Counted(Counted),
}

/// An attempt that was counted, and the locks its count set (which hold
/// unless its password turns out right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// This attempt's failure locks the subject for its network.
    pub locks_network: bool,
    /// This attempt's failure locks the subject everywhere.
    pub locks_everywhere: bool,
}

/// What the hash said of a counted attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The right password: the network's count is cleared, this attempt is
    /// taken back from the all-networks count.
    Right,
    /// A wrong password: the counts stay.
    Wrong,
    /// Not checked (the hashing queue was full): this attempt is taken back
    /// from both counts, with any lock it set.
    NotChecked,
}

/// One stored count.
#[derive(Debug, Default)]
struct Count {
    failures: i64,
    window_start: Option<DateTime<Utc>>,
    locked_until: Option<DateTime<Utc>>,
}

impl Store {
    /// Counts a password check on `subject` from `network` before its hash
    /// runs, in one transaction on the single writer: `Locked` if the
    /// subject is locked for that network or everywhere (nothing counted),
    /// else the attempt counts as a failure on both counts, and the count
    /// that reaches its limit sets the lock.
    pub async fn begin_password_check(
        &self,
        subject: LoginSubject<'_>,
        network: &str,
        limits: LoginLimits,
    ) -> anyhow::Result<CheckAdmission> {
        // A lock is first looked for on a reader: a flood on a locked
        // subject is answered without queueing for the single writer (where
        // it would hold up everyone's logins).
        let until: Option<Ts> = db::query_scalar(
            "SELECT MAX(locked_until) FROM login_failures \
             WHERE subject = ? AND network IN (?, ?)",
        )
        .bind(subject.key())
        .bind(network)
        .bind(ALL_NETWORKS)
        .fetch_one(&self.read)
        .await?;
        let now = Utc::now();
        if let Some(until) = until.map(Ts::time).filter(|u| *u > now) {
            return Ok(CheckAdmission::Locked(until));
        }
        self.writing(self.count_attempt(subject, network, limits))
            .await
    }

    /// The write of [`Store::begin_password_check`].
    async fn count_attempt(
        &self,
        subject: LoginSubject<'_>,
        network: &str,
        limits: LoginLimits,
    ) -> anyhow::Result<CheckAdmission> {
        let mut tx = self.begin_immediate().await?;
        let now = Utc::now();
        let lockout = chrono::Duration::from_std(limits.lockout)?;
        let mut here = read_count(&mut tx, subject.key(), network).await?;
        let mut all = read_count(&mut tx, subject.key(), ALL_NETWORKS).await?;
        let locks = [here.locked_until, all.locked_until];
        if let Some(until) = locks.into_iter().flatten().filter(|u| *u > now).max() {
            return Ok(CheckAdmission::Locked(until));
        }
        // A lapsed lock starts a new count; the all-networks count also
        // starts anew once its window has passed.
        if here.locked_until.is_some() {
            here = Count::default();
        }
        let window_over = all.window_start.is_none_or(|start| start + lockout <= now);
        if all.locked_until.is_some() || window_over {
            all = Count {
                window_start: Some(now),
                ..Count::default()
            };
        }
        here.failures += 1;
        all.failures += 1;
        let counted = Counted {
            locks_network: here.failures >= i64::from(limits.per_network),
            locks_everywhere: all.failures >= i64::from(limits.all_networks),
        };
        if counted.locks_network {
            here.locked_until = Some(now + lockout);
        }
        if counted.locks_everywhere {
            all.locked_until = Some(now + lockout);
        }
        here.window_start.get_or_insert(now);
        write_count(&mut tx, subject.key(), network, &here, now).await?;
        write_count(&mut tx, subject.key(), ALL_NETWORKS, &all, now).await?;
        tx.commit().await?;
        Ok(CheckAdmission::Counted(counted))
    }

    /// Settles a counted attempt once its hash has run (see [`Settled`]).
    /// A wrong password that locked the subject everywhere queues `notice`
    /// (for an account) to the owner. Writes only when something changes,
    /// and as much for an unknown address as for an account.
    pub async fn settle_password_check(
        &self,
        subject: LoginSubject<'_>,
        network: &str,
        counted: Counted,
        settled: Settled,
        notice: Option<&OutgoingEmail>,
    ) -> anyhow::Result<()> {
        if settled == Settled::Wrong && !counted.locks_everywhere {
            return Ok(());
        }
        self.writing(async {
            let mut tx = self.write.begin().await?;
            let now = ts(Utc::now());
            match settled {
                Settled::Right => take_back_right(&mut tx, subject, network, counted, &now).await?,
                Settled::NotChecked => {
                    take_back(&mut tx, subject, network, counted.locks_network, &now).await?;
                    take_back(
                        &mut tx,
                        subject,
                        ALL_NETWORKS,
                        counted.locks_everywhere,
                        &now,
                    )
                    .await?;
                }
                Settled::Wrong => {
                    // The same write for an unknown address as for an account.
                    db::query(
                        "UPDATE login_failures SET updated_at = ? WHERE subject = ? AND network = ?",
                    )
                    .bind(now)
                    .bind(subject.key())
                    .bind(ALL_NETWORKS)
                    .execute(&mut tx)
                    .await?;
                    if let (LoginSubject::Account(id), Some(notice)) = (subject, notice) {
                        outbox::enqueue(&mut tx, Some(id), notice).await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Forgets counts idle for a day (lapsed locks included).
    pub async fn prune_login_failures(&self) -> anyhow::Result<u64> {
        self.writing(async {
            let cutoff = ts(Utc::now() - RETENTION);
            let done = db::query(
                "DELETE FROM login_failures WHERE updated_at < ? \
                 AND (locked_until IS NULL OR locked_until < ?)",
            )
            .bind(cutoff)
            .bind(cutoff)
            .execute(&self.write)
            .await?;
            Ok(done.rows_affected())
        })
        .await
    }
}

/// A right password's attempt on an account, still counted as a failure:
/// a login takes it back in the transaction that opens its session
/// ([`Store::create_session_with_amr`]), one commit instead of two; any
/// other end of the login takes it back with [`Settled::Right`].
#[derive(Debug, Clone, Copy)]
pub struct RightAttempt<'a> {
    pub user_id: &'a str,
    /// The client's network, as counted.
    pub network: &'a str,
    pub counted: Counted,
}

/// [`Settled::Right`] inside the caller's transaction: the network's count
/// is cleared, and this attempt is taken back from the all-networks count.
pub(super) async fn take_back_right(
    conn: &mut Tx,
    subject: LoginSubject<'_>,
    network: &str,
    counted: Counted,
    now: &Ts,
) -> anyhow::Result<()> {
    db::query("DELETE FROM login_failures WHERE subject = ? AND network = ?")
        .bind(subject.key())
        .bind(network)
        .execute(&mut *conn)
        .await?;
    take_back(conn, subject, ALL_NETWORKS, counted.locks_everywhere, now).await
}

/// Takes one counted attempt back from a count, and the lock it set.
async fn take_back(
    conn: &mut Tx,
    subject: LoginSubject<'_>,
    network: &str,
    unlock: bool,
    now: &Ts,
) -> anyhow::Result<()> {
    db::query(
        "UPDATE login_failures SET failures = CASE WHEN failures > 1 THEN failures - 1 ELSE 0 END, \
         locked_until = CASE WHEN ? THEN NULL ELSE locked_until END, updated_at = ? \
         WHERE subject = ? AND network = ?",
    )
    .bind(unlock)
    .bind(now)
    .bind(subject.key())
    .bind(network)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forgets every count and lock of an account (a password reset, or an
/// administrator's `locked: false`), inside the caller's transaction.
pub(super) async fn clear(conn: &mut Tx, user_id: &str) -> anyhow::Result<()> {
    db::query("DELETE FROM login_failures WHERE subject = ?")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn read_count(conn: &mut Tx, subject: &str, network: &str) -> anyhow::Result<Count> {
    let row: Option<(i64, Ts, Option<Ts>)> = db::query_as(
        "SELECT failures, window_start, locked_until FROM login_failures \
         WHERE subject = ? AND network = ?",
    )
    .bind(subject)
    .bind(network)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((failures, window_start, locked_until)) = row else {
        return Ok(Count::default());
    };
    Ok(Count {
        failures,
        window_start: Some(parse_ts(&window_start)?),
        locked_until: locked_until.map(Ts::time),
    })
}

async fn write_count(
    conn: &mut Tx,
    subject: &str,
    network: &str,
    count: &Count,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    db::query(
        "INSERT INTO login_failures \
         (subject, network, failures, window_start, locked_until, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (subject, network) DO UPDATE SET \
         failures = excluded.failures, window_start = excluded.window_start, \
         locked_until = excluded.locked_until, updated_at = excluded.updated_at",
    )
    .bind(subject)
    .bind(network)
    .bind(count.failures)
    .bind(ts(count.window_start.unwrap_or(now)))
    .bind(count.locked_until.map(ts))
    .bind(ts(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
