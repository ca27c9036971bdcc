//! Faults under the database, and what sesame does about them.
//!
//! Two rules keep an answer of success honest:
//!
//! - **No connection goes back to a pool inside a transaction.** sqlx counts
//!   transactions itself and does not ask SQLite. When a `COMMIT` fails with
//!   `SQLITE_FULL` or `SQLITE_IOERR`, SQLite has already rolled the
//!   transaction back, but sqlx's count stays at 1; the `ROLLBACK` sqlx
//!   sends when the `Transaction` is dropped then fails ("no transaction is
//!   active") and the count stays wrong. The next `begin()` becomes
//!   `SAVEPOINT`; when its `RELEASE` also fails to commit, SQLite is left
//!   with an open transaction, and from then on every `begin()`/`commit()`
//!   is a savepoint released inside a transaction that never commits: each
//!   write is answered as done and none is. [`release_clean`] runs on every
//!   connection that goes back to a pool and closes it (the pool opens a
//!   fresh one) when either SQLite or sqlx thinks a transaction is open.
//! - **A fault answers `503`, never a success and never a bare `500`.**
//!   [`fault_of`] names the kind of fault from SQLite's result code (not
//!   from the message); the HTTP layer answers `503 STORAGE_UNAVAILABLE`
//!   with `Retry-After`. [`WriteHealth`] logs the first fault once, keeps
//!   `/health/ready` at `503` while it lasts, and probes in the background
//!   until a real write commits again, then logs the recovery once.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

use super::db::{self, Pool};

/// How often a store in fault tries a write to see whether it passed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What a client is told to wait before trying again, in seconds.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Why the database cannot take writes (or answer) right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `SQLITE_FULL`: the disk (or a file size limit) is full.
    DiskFull,
    /// `SQLITE_IOERR` and its extended codes: reading or writing failed.
    Io,
    /// `SQLITE_READONLY`: the file or its file system cannot be written.
    ReadOnly,
    /// `SQLITE_BUSY`/`SQLITE_LOCKED`: another process held the lock past the
    /// busy timeout, or the single writer stayed taken past its queue timeout.
    Locked,
    /// `SQLITE_CANTOPEN`/`SQLITE_PROTOCOL`/`SQLITE_NOTADB`: the file (or its
    /// `-wal`/`-shm`) cannot be opened or locked.
    CantOpen,
}

impl Fault {
    /// What an operator reads in the log.
    pub fn describe(self) -> &'static str {
        match self {
            Fault::DiskFull => "the disk is full (SQLITE_FULL)",
            Fault::Io => "reading or writing the database file failed (SQLITE_IOERR)",
            Fault::ReadOnly => "the database file cannot be written (SQLITE_READONLY)",
            Fault::Locked => {
                "the database stayed locked past the busy timeout (SQLITE_BUSY/SQLITE_LOCKED)"
            }
            Fault::CantOpen => {
                "the database cannot be opened or reached (SQLITE_CANTOPEN, or PostgreSQL \
                 refused or lost the connection)"
            }
        }
    }

    /// The fault a sqlx error stands for, by SQLite's result code; `None`
    /// for errors that are not a fault of the storage (a unique index, bad
    /// SQL, a row that does not decode).
    pub fn of_sqlx(err: &sqlx::Error) -> Option<Fault> {
        match err {
            sqlx::Error::Database(db) => {
                if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    return Fault::of_sqlstate(pg.code());
                }
                let code: i32 = db.code()?.parse().ok()?;
                Fault::of_code(code)
            }
            // The writer stayed taken past the pool's acquire timeout:
            // writes queue behind a lock nobody releases.
            sqlx::Error::PoolTimedOut => Some(Fault::Locked),
            sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => Some(Fault::Io),
            // PostgreSQL: the connection was refused or lost.
            sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => Some(Fault::CantOpen),
            _ => None,
        }
    }

    /// The fault a PostgreSQL error stands for, by its SQLSTATE: the
    /// server's disk is full, its storage failed, it is a read-only
    /// standby, it is shutting down or not yet up, or a lock wait or
    /// deadlock gave up. Constraint and syntax errors are not faults.
    pub fn of_sqlstate(state: &str) -> Option<Fault> {
        match state {
            "53100" => Some(Fault::DiskFull),
            "25006" => Some(Fault::ReadOnly),
            "55P03" | "40P01" | "57014" => Some(Fault::Locked),
            s if s.starts_with("58") || s.starts_with("XX") => Some(Fault::Io),
            // Out of memory or connections, a shutdown, a server not yet
            // accepting connections, a lost connection.
            s if s.starts_with("53") || s.starts_with("57P") || s.starts_with("08") => {
                Some(Fault::CantOpen)
            }
            _ => None,
        }
    }

    /// The fault of a rusqlite error (the on-thread readers).
    pub fn of_rusqlite(err: &rusqlite::Error) -> Option<Fault> {
        match err {
            rusqlite::Error::SqliteFailure(e, _) => Fault::of_code(e.extended_code),
            _ => None,
        }
    }

    /// The fault of a (primary or extended) SQLite result code.
    pub fn of_code(code: i32) -> Option<Fault> {
        use rusqlite::ffi;
        match code & 0xff {
            ffi::SQLITE_FULL => Some(Fault::DiskFull),
            ffi::SQLITE_IOERR => Some(Fault::Io),
            ffi::SQLITE_READONLY => Some(Fault::ReadOnly),
            ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => Some(Fault::Locked),
            ffi::SQLITE_CANTOPEN | ffi::SQLITE_PROTOCOL | ffi::SQLITE_NOTADB => {
                Some(Fault::CantOpen)
            }
            _ => None,
        }
    }
}

/// The storage fault anywhere in an error's chain of causes, if any.
pub fn fault_of(err: &anyhow::Error) -> Option<Fault> {
    err.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
            Fault::of_sqlx(e)
        } else if let Some(e) = cause.downcast_ref::<rusqlite::Error>() {
            Fault::of_rusqlite(e)
        } else if let Some(e) = cause.downcast_ref::<sqlx::migrate::MigrateError>() {
            match e {
                sqlx::migrate::MigrateError::Execute(e) => Fault::of_sqlx(e),
                _ => None,
            }
        } else {
            None
        }
    })
}

/// Errors the store's writes return: each can say whether it is a fault.
pub trait StorageError {
    /// The storage fault behind this error, if it is one.
    fn fault(&self) -> Option<Fault>;
}

impl StorageError for anyhow::Error {
    fn fault(&self) -> Option<Fault> {
        fault_of(self)
    }
}

impl StorageError for sqlx::Error {
    fn fault(&self) -> Option<Fault> {
        Fault::of_sqlx(self)
    }
}

/// The `after_release` check of both pools: `Ok(true)` keeps the
/// connection, `Ok(false)` has the pool close it and open a fresh one.
///
/// Asking for the handle goes through the connection's command queue, so
/// the `ROLLBACK` that a dropped `Transaction` queued has run by then.
pub(super) async fn release_clean(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    let sqlite_open = {
        let mut handle = conn.lock_handle().await?;
        // SAFETY: the handle is a live connection, locked for this thread
        // while `handle` lives; the call only reads its autocommit flag.
        unsafe { rusqlite::ffi::sqlite3_get_autocommit(handle.as_raw_handle().as_ptr()) == 0 }
    };
    let sqlx_open = conn.is_in_transaction();
    if sqlite_open || sqlx_open {
        // Debug: the fault behind it is logged once by [`WriteHealth`].
        tracing::debug!(
            sqlite_in_transaction = sqlite_open,
            sqlx_in_transaction = sqlx_open,
            "a database connection came back inside a transaction after a failure; \
             it is closed and replaced"
        );
        return Ok(false);
    }
    Ok(true)
}

/// Whether the database takes writes, as the last writes and probes found.
/// Shared by every clone of a store.
pub struct WriteHealth {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The fault, since when, and how many writes it refused.
    fault: Option<(Fault, Instant, u64)>,
    /// A background probe is running.
    probing: bool,
}

impl WriteHealth {
    pub fn new() -> Arc<WriteHealth> {
        Arc::new(WriteHealth {
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The fault the database is in, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.state().fault.map(|(fault, _, _)| fault)
    }

    /// Notes a write that failed with `fault`: the first one is logged,
    /// later ones only counted until a write commits again. Starts the probe that
    /// notices when writes work again.
    pub fn failed(self: &Arc<Self>, fault: Fault, err: &str, writer: &Pool) {
        let mut state = self.state();
        match &mut state.fault {
            // Logged when it began; the kind may change on the way (an
            // I/O error, then a reopened file that is read-only).
            Some((known, _, refused)) => {
                *known = fault;
                *refused += 1;
            }
            None => {
                tracing::error!(
                    fault = ?fault,
                    error = %err,
                    "the database cannot take writes: {}; writes answer 503 STORAGE_UNAVAILABLE \
                     and /health/ready answers 503 until a write succeeds again",
                    fault.describe()
                );
                state.fault = Some((fault, Instant::now(), 1));
            }
        }
        if !state.probing {
            state.probing = true;
            tokio::spawn(probe_until_recovered(self.clone(), writer.clone()));
        }
    }

    /// Notes that a write committed: a fault is over (logged once).
    fn recovered(&self) {
        let mut state = self.state();
        if let Some((fault, since, refused)) = state.fault.take() {
            tracing::warn!(
                fault = ?fault,
                lasted_ms = since.elapsed().as_millis() as u64,
                writes_refused = refused,
                "the database takes writes again"
            );
        }
    }
}

/// Every [`PROBE_INTERVAL`], commits one small write through the writer;
/// ends once one commits (the fault is over) or the store is closed.
async fn probe_until_recovered(health: Arc<WriteHealth>, writer: Pool) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        if writer.is_closed() {
            break;
        }
        match probe(&writer).await {
            Ok(()) => {
                health.recovered();
                break;
            }
            Err(e) => {
                tracing::debug!(error = %e, "the database still cannot take writes");
                if let Some(fault) = e.fault() {
                    let mut state = health.state();
                    if let Some(known) = &mut state.fault {
                        known.0 = fault;
                    }
                }
            }
        }
    }
    health.state().probing = false;
}

/// How much the probe writes. A one-row probe fits in the space the
/// write-ahead log already has, even on a full disk, and called the fault
/// over while signups still failed (six fault/recovery pairs in one
/// full-disk run); with 64 KiB there was one. A heuristic: a large WAL
/// can still hold it, and then the fault is logged again when it returns.
const PROBE_BYTES: usize = 64 * 1024;

/// One real write of [`PROBE_BYTES`], committed: it fails as any write
/// would while the disk is full, the file read-only or the lock taken.
pub(super) async fn probe(writer: &Pool) -> Result<(), sqlx::Error> {
    // Random bytes: PostgreSQL would compress a run of zeros to nothing.
    let mut ballast = vec![0u8; PROBE_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut ballast);
    db::query(
        "INSERT INTO storage_probe (id, written_at, ballast) VALUES (1, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, \
         ballast = excluded.ballast",
    )
    .bind(super::time::ts(chrono::Utc::now()))
    .bind(ballast)
    .execute(writer)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_told_by_their_result_code_extended_or_not() {
        use rusqlite::ffi;
        assert_eq!(Fault::of_code(ffi::SQLITE_FULL), Some(Fault::DiskFull));
        assert_eq!(Fault::of_code(ffi::SQLITE_IOERR_WRITE), Some(Fault::Io));
        assert_eq!(Fault::of_code(ffi::SQLITE_IOERR_FSYNC), Some(Fault::Io));
        assert_eq!(
            Fault::of_code(ffi::SQLITE_READONLY_DBMOVED),
            Some(Fault::ReadOnly)
        );
        assert_eq!(
            Fault::of_code(ffi::SQLITE_BUSY_SNAPSHOT),
            Some(Fault::Locked)
        );
        assert_eq!(Fault::of_code(ffi::SQLITE_LOCKED), Some(Fault::Locked));
        assert_eq!(Fault::of_code(ffi::SQLITE_CANTOPEN), Some(Fault::CantOpen));
        assert_eq!(Fault::of_code(ffi::SQLITE_CONSTRAINT_UNIQUE), None);
        assert_eq!(Fault::of_code(ffi::SQLITE_ERROR), None);
    }
}
