//! Reads answered on the calling thread, for the lookup every
//! authenticated request makes.
//!
//! sqlx runs each SQLite connection on a thread of its own: a query is a
//! round trip between threads, and a pooled connection is pinged when it
//! goes back to the pool, a second round trip. With the server on one core
//! those thread switches cost several times the read itself (a primary-key
//! lookup of a hot row takes a few microseconds). This read runs with
//! rusqlite on the calling thread instead, in its own transaction, so it
//! sees every committed write at once, from this process or another.
//!
//! They never wait for a lock: the connections have no busy timeout, so a
//! read that would have to wait (`SQLITE_BUSY`), a failed read, or a moment
//! when every connection here is in use answers `None`, and the caller
//! reads through the pool as before. A connection that a failed read left
//! inside a transaction (which would pin an old snapshot: a revoked session
//! would still look live) is closed and opened afresh. (A read of a page that is in neither
//! SQLite's nor the OS's cache does wait for the disk, as every read does.)

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};

/// A few read-only connections, each used by one thread at a time.
pub struct InlineReaders {
    /// `None` once closed.
    connections: Vec<Mutex<Option<Connection>>>,
    /// The database file, to open a connection again.
    path: std::path::PathBuf,
}

/// How every connection here is opened.
fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(Duration::ZERO)?;
    Ok(connection)
}

impl InlineReaders {
    /// Opens `count` read-only connections to the database file at `path`
    /// (one per thread that runs requests: more could never be in use).
    pub fn open(path: &Path, count: usize) -> anyhow::Result<InlineReaders> {
        let connections = (0..count.max(1))
            .map(|_| Ok(Mutex::new(Some(open_reader(path)?))))
            .collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| format!("cannot open {} for reading", path.display()))?;
        Ok(InlineReaders {
            connections,
            path: path.to_owned(),
        })
    }

    /// Runs `read` on a free connection; `None` if none is free or the read
    /// failed (the caller then reads through the pool).
    pub fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let mut guard = self.connections.iter().find_map(|c| c.try_lock().ok())?;
        let connection = guard.as_ref()?;
        let result = read(connection);
        if !connection.is_autocommit() {
            // Whatever happened, this connection must not keep a snapshot.
            tracing::warn!("an inline reader was left inside a transaction; it is replaced");
            *guard = open_reader(&self.path)
                .inspect_err(|e| tracing::warn!(error = %e, "reopening an inline reader failed"))
                .ok();
            return None;
        }
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::debug!(error = %e, "inline read failed; reading through the pool");
                None
            }
        }
    }

    /// Closes the connections (waiting for reads in progress); later reads
    /// answer `None`.
    pub fn close(&self) {
        for connection in &self.connections {
            let mut guard: MutexGuard<'_, Option<Connection>> = connection
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (tempfile::TempDir, Connection, InlineReaders) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inline.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT); \
                 INSERT INTO t VALUES ('a', 'one');",
            )
            .unwrap();
        let readers = InlineReaders::open(&path, 1).unwrap();
        (dir, writer, readers)
    }

    fn value(readers: &InlineReaders) -> Option<String> {
        readers.read(|c| {
            c.prepare_cached("SELECT v FROM t WHERE k = 'a'")?
                .query_row([], |r| r.get(0))
        })
    }

    #[test]
    fn every_read_sees_the_latest_commit() {
        let (_dir, writer, readers) = database();
        assert_eq!(value(&readers).as_deref(), Some("one"));
        writer.execute("UPDATE t SET v = 'two'", []).unwrap();
        assert_eq!(value(&readers).as_deref(), Some("two"));
    }

    #[test]
    fn a_read_never_waits_for_a_connection_in_use() {
        let (_dir, _writer, readers) = database();
        let held = readers.connections[0].lock().unwrap();
        assert_eq!(value(&readers), None);
        drop(held);
        assert!(value(&readers).is_some());
    }

    #[test]
    fn a_read_that_would_wait_for_a_lock_answers_none_at_once() {
        let (_dir, writer, readers) = database();
        // A connection in exclusive locking mode keeps every reader out.
        writer
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
            .unwrap();
        let started = std::time::Instant::now();
        assert_eq!(value(&readers), None);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_reader_left_inside_a_transaction_is_replaced() {
        let (_dir, writer, readers) = database();
        assert_eq!(value(&readers).as_deref(), Some("one"));
        // A read that opens a transaction and fails before ending it.
        let failed: Option<i64> = readers.read(|c| {
            c.execute_batch("BEGIN; SELECT v FROM t;")?;
            c.query_row("SELECT nope FROM t", [], |r| r.get(0))
        });
        assert_eq!(failed, None);
        writer.execute("UPDATE t SET v = 'two'", []).unwrap();
        assert_eq!(
            value(&readers).as_deref(),
            Some("two"),
            "the next read sees the latest commit, not an old snapshot"
        );
    }

    #[test]
    fn a_failed_read_or_a_closed_reader_answers_none() {
        let (_dir, _writer, readers) = database();
        let missing: Option<i64> =
            readers.read(|c| c.query_row("SELECT nope FROM t", [], |r| r.get(0)));
        assert_eq!(missing, None);
        readers.close();
        assert_eq!(value(&readers), None);
    }
}
