//! All SQL lives here, behind named functions, one file per table family.
//! Transactions live here too: a domain function asks for one change and the
//! store makes it atomic (including the outbox email that goes with it).
//!
//! SQLite runs in WAL mode with one writer connection and a pool of readers:
//! writers queue in the pool instead of failing with "database is locked",
//! and reads never wait for writes. The lookup every authenticated request
//! makes (its session and user) runs on the calling thread instead, see
//! [`inline`].
//!
//! A failure never leaves a connection inside a transaction, and a fault
//! of the storage (disk full, I/O error, read-only file, a lock held too
//! long) is answered `503` and logged once: see [`fault`].
//!
//! Connections are not tested before each use (sqlx's default): a
//! connection to a local file cannot go stale like a network one, and the
//! test is one more round trip to the connection's thread, which cost about
//! as much as the query itself on the authentication path.

pub mod account;
pub mod address_requests;
pub mod admin;
pub mod backup;
pub mod code_budget;
pub mod copy;
pub mod db;
pub mod email_reverts;
pub mod fault;
pub mod files;
pub mod inline;
pub mod keys;
pub mod lockout;
pub mod mfa;
pub mod outbox;
pub mod passkeys;
pub mod rate_limits;
pub mod retention;
mod session_reads;
pub mod sessions;
pub mod stats;
mod time;
mod user_rows;
pub mod users;
pub use time::{Ts, parse_ts, stored_text, ts};

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use db::{Backend, Pool, Tx};
use fault::{StorageError, WriteHealth};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// The embedded SQLite migrations (`migrations/sqlite/`), applied at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The embedded PostgreSQL migrations (`migrations/postgres/`): the same
/// schema in PostgreSQL's types, applied at start-up on a `postgres://` URL.
pub static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Handles to the database.
#[derive(Clone)]
pub struct Store {
    /// Where writes go: SQLite's single writer connection, or PostgreSQL's pool.
    write: Pool,
    /// Readers (on PostgreSQL, the same pool as [`Store::write`]).
    read: Pool,
    /// Readers for the per-request lookup, on the calling thread (none for
    /// an in-memory database, which other connections cannot see).
    inline: Option<Arc<inline::InlineReaders>>,
    /// On PostgreSQL, the per-request lookup's batches (see [`session_reads`]).
    session_reads: Option<Arc<session_reads::SessionReads>>,
    /// Whether writes work (shared by every clone).
    health: Arc<WriteHealth>,
}

/// How long a statement waits for a lock another connection holds before
/// it fails with `SQLITE_BUSY` (`SESAME_DB_BUSY_TIMEOUT_MS`).
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens (creating if needed) the database and applies migrations.
    pub async fn open(database_url: &str) -> anyhow::Result<Store> {
        Store::open_with(database_url, DEFAULT_BUSY_TIMEOUT).await
    }

    /// [`Store::open`] with another busy timeout (SQLite's; PostgreSQL
    /// waits for its locks).
    pub async fn open_with(database_url: &str, busy_timeout: Duration) -> anyhow::Result<Store> {
        if is_postgres_url(database_url) {
            return Store::open_postgres(database_url).await;
        }
        let options = connect_options(database_url)?;
        let file = options.get_filename().display().to_string();
        check_directory(options.get_filename())?;
        // Before SQLite opens it: its -wal and -shm files take its mode.
        files::create_private_database(options.get_filename())?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a write that was answered survives power loss, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(busy_timeout)
            // sqlx warns about every statement slower than a second: while
            // another process holds the lock that is every write, and the
            // fault is logged once already (see [`fault`]). Each request's
            // latency is in its own log line.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            // Writers queue for the one connection; a long wait is a fault
            // the store logs once, not once per request.
            .acquire_slow_level(log::LevelFilter::Debug)
            .test_before_acquire(false)
            .after_release(|conn, _| Box::pin(fault::release_clean(conn)))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .with_context(|| {
                format!("SESAME_DATABASE_URL: cannot open or create the database file {file}")
            })?;
        apply_migrations(&MIGRATOR, &Pool::Sqlite(write.clone()))
            .await
            .with_context(|| format!("SESAME_DATABASE_URL ({file})"))?;
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let readers = (cpus * 2) as u32;
        let read = SqlitePoolOptions::new()
            .max_connections(readers)
            .test_before_acquire(false)
            .after_release(|conn, _| Box::pin(fault::release_clean(conn)))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().read_only(true))
            .await
            .with_context(|| format!("SESAME_DATABASE_URL: cannot open {file} for reading"))?;
        let path = options.get_filename();
        let inline = if path.is_file() {
            // One per thread that can run requests at once: more could
            // never be in use.
            Some(Arc::new(inline::InlineReaders::open(path, cpus)?))
        } else {
            None
        };
        Ok(Store {
            write: Pool::Sqlite(write),
            read: Pool::Sqlite(read),
            inline,
            session_reads: None,
            health: WriteHealth::new(),
        })
    }

    /// Connects to PostgreSQL and applies its migrations.
    async fn open_postgres(database_url: &str) -> anyhow::Result<Store> {
        let options = PgConnectOptions::from_str(database_url)
            .map_err(|_| {
                anyhow::anyhow!(
                    "SESAME_DATABASE_URL is not a valid PostgreSQL URL (expected e.g. \
                     postgres://sesame:password@localhost:5432/sesame)"
                )
            })?
            .application_name("sesame")
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = PgPoolOptions::new()
            // Requests that wait on the database wait for a connection
            // here rather than opening more than the server should carry
            // per instance.
            .max_connections((cpus * 4).max(8) as u32)
            .acquire_slow_level(log::LevelFilter::Debug)
            // Not pinged as it is taken (a round trip on every request's
            // path): sqlx pings each connection as it goes back to the
            // pool and drops a broken one there, so after a restart of
            // the server only connections that sat idle through it fail,
            // once each, answered 503 with Retry-After like any fault.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .context("SESAME_DATABASE_URL: cannot connect to PostgreSQL")?;
        let session_reads = Arc::new(session_reads::SessionReads::start(pool.clone()));
        let pool = Pool::Postgres(pool);
        apply_migrations(&PG_MIGRATOR, &pool)
            .await
            .context("SESAME_DATABASE_URL (PostgreSQL)")?;
        Ok(Store {
            write: pool.clone(),
            read: pool,
            inline: None,
            session_reads: Some(session_reads),
            health: WriteHealth::new(),
        })
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.write.backend()
    }

    /// Runs a read on the calling thread (see [`inline`]); `None` means
    /// "read through the pool instead".
    fn read_inline<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        self.inline.as_ref()?.read(read)
    }

    /// Checks that the database answers and takes writes (for
    /// `/health/ready`): a read, and no write fault since the last write
    /// that committed.
    pub async fn ping(&self) -> anyhow::Result<()> {
        db::query("SELECT 1").execute(&self.read).await?;
        if let Some(fault) = self.health.fault() {
            anyhow::bail!("the database cannot take writes: {}", fault.describe());
        }
        Ok(())
    }

    /// The fault the database is in, if any (the last write failed with it
    /// and no write has committed since).
    pub fn fault(&self) -> Option<fault::Fault> {
        self.health.fault()
    }

    /// Runs one write (a transaction or a statement on the writer): a
    /// storage fault it fails with is noted, so that it is logged once and
    /// readiness answers `503` until writes commit again.
    async fn writing<T, E: StorageError + std::fmt::Display>(
        &self,
        write: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let result = write.await;
        if let Err(e) = &result {
            if let Some(fault) = e.fault() {
                self.health.failed(fault, &format!("{e:#}"), &self.write);
            }
        }
        result
    }

    /// Runs housekeeping's `DELETE … WHERE <time column> < ?` with `cutoff`
    /// as its one parameter; returns how many rows went.
    pub(crate) async fn delete_older(
        &self,
        sql: &'static str,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<u64> {
        self.writing(async {
            let done = db::query(sql).bind(ts(cutoff)).execute(&self.write).await?;
            Ok(done.rows_affected())
        })
        .await
    }

    /// Starts a write transaction that takes the write lock at once (see
    /// [`Pool::begin_immediate`]). For transactions that read, then write
    /// based on what they read.
    pub(crate) async fn begin_immediate(&self) -> sqlx::Result<Tx> {
        self.write.begin_immediate().await
    }

    /// Closes both pools, waiting for connections to be returned. Before
    /// the writer goes, the write-ahead log is folded into the database
    /// file, so the file alone holds every answered write (a copy of it is
    /// complete, and the next start has no log to replay).
    pub async fn close(&self) {
        if let Some(inline) = &self.inline {
            inline.close();
        }
        self.read.close().await;
        let Pool::Sqlite(writer) = &self.write else {
            self.write.close().await;
            return;
        };
        let checkpoint: Result<(i64, i64, i64), _> =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(writer)
                .await;
        match checkpoint {
            Ok((0, _, _)) => {}
            Ok(_) => tracing::warn!("the final WAL checkpoint was blocked by a reader"),
            Err(e) => tracing::warn!(error = %e, "the final WAL checkpoint failed"),
        }
        self.write.close().await;
    }
}

/// Parses `SESAME_DATABASE_URL`.
fn connect_options(database_url: &str) -> anyhow::Result<SqliteConnectOptions> {
    SqliteConnectOptions::from_str(database_url).map_err(|_| {
        anyhow::anyhow!(
            "SESAME_DATABASE_URL is not a valid SQLite URL (expected e.g. sqlite://sesame.db \
             or sqlite:///var/lib/sesame/sesame.db)"
        )
    })
}

/// Fails with a message naming the setting when the database's directory
/// is missing: SQLite's own answer is a bare "unable to open database file".
fn check_directory(file: &Path) -> anyhow::Result<()> {
    let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(()); // in the working directory, or in memory
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "SESAME_DATABASE_URL: cannot create the database file {}: {} is not a directory",
            file.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Whether `SESAME_DATABASE_URL` names a PostgreSQL server.
pub fn is_postgres_url(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

async fn apply_migrations(migrator: &sqlx::migrate::Migrator, pool: &Pool) -> anyhow::Result<()> {
    let result = match pool {
        Pool::Sqlite(pool) => migrator.run(pool).await,
        Pool::Postgres(pool) => migrator.run(pool).await,
    };
    match result {
        Ok(()) => Ok(()),
        Err(sqlx::migrate::MigrateError::VersionMissing(v)) => anyhow::bail!(
            "the database was written by a newer sesame (migration {v} is unknown to this \
             version); upgrade sesame or restore a backup"
        ),
        Err(e) => Err(e).context("applying database migrations failed"),
    }
}

/// Whether a statement failed because a unique index refused it. Known by
/// the error's kind, which every sqlx backend reports, never by its text
/// (SQLite's "UNIQUE constraint failed: …" is SQLite's alone).
fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// A store on a new file in a temporary directory (kept while the
/// directory lives), for the store's own unit tests.
#[cfg(test)]
pub(crate) async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("sesame.db").display());
    let store = Store::open(&url).await.expect("store");
    (dir, store)
}

#[cfg(test)]
impl Store {
    /// The SQLite pool behind `pool` (unit tests of SQLite's behaviour).
    pub(crate) fn sqlite_pool<'a>(&self, pool: &'a Pool) -> &'a sqlx::SqlitePool {
        match pool {
            Pool::Sqlite(pool) => pool,
            Pool::Postgres(_) => panic!("a SQLite store"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    #[tokio::test]
    async fn a_writer_left_inside_a_transaction_is_replaced_and_later_writes_commit() {
        let (_dir, store) = temp_store().await;
        // SQLite opens a transaction that sqlx does not count; the
        // connection goes back to the pool with it.
        sqlx::query("BEGIN")
            .execute(store.sqlite_pool(&store.write))
            .await
            .unwrap();
        store
            .take_outbox_lease("a", Duration::from_secs(60))
            .await
            .unwrap();
        let holder: Option<String> = sqlx::query_scalar("SELECT holder FROM outbox_lease")
            .fetch_optional(store.sqlite_pool(&store.read))
            .await
            .unwrap();
        assert_eq!(
            holder.as_deref(),
            Some("a"),
            "other connections see the write"
        );
    }

    #[tokio::test]
    async fn a_writer_whose_transaction_count_is_wrong_is_replaced() {
        let (_dir, store) = temp_store().await;
        // SQLite ends the transaction behind sqlx's back, as it does when a
        // COMMIT fails with SQLITE_FULL: sqlx's own ROLLBACK on drop then
        // fails and its count stays at one.
        let mut tx = store.sqlite_pool(&store.write).begin().await.unwrap();
        sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
        drop(tx);
        let conn = store.sqlite_pool(&store.write).acquire().await.unwrap();
        assert!(
            !conn.is_in_transaction(),
            "a fresh connection, not the counted one"
        );
    }
}
