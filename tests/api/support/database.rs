//! Direct reads (and the odd write) of a test's SQLite file, for what the
//! API does not show: rows counted, a hash stored, a lease planted. Every
//! test goes through [`TestDb`], which opens the file for one statement and
//! closes it again, so no test holds a connection the server could trip on.
// Not every test uses every helper.
#![allow(dead_code)]

use std::path::Path;

use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, Sqlite, SqliteConnection};

use super::app::{POLL, WAIT};

/// The database of one test.
#[derive(Clone, Debug)]
pub struct TestDb {
    url: String,
}

/// Text bound to the `?` placeholders of a statement, in order.
type Binds<'a> = &'a [&'a str];

impl TestDb {
    /// The database at a `sqlite://` URL.
    pub fn at(url: &str) -> TestDb {
        TestDb {
            url: url.to_owned(),
        }
    }

    /// The `sesame.db` in a test directory.
    pub fn in_dir(dir: &Path) -> TestDb {
        TestDb::at(&format!("sqlite://{}", dir.join("sesame.db").display()))
    }

    async fn open(&self) -> SqliteConnection {
        SqliteConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open the test database {}: {e}", self.url))
    }

    /// The single value a query selects.
    pub async fn scalar<T>(&self, sql: &str, binds: Binds<'_>) -> T
    where
        T: for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> + Send + Unpin,
        (T,): for<'r> sqlx::FromRow<'r, SqliteRow>,
    {
        let mut rows = self.column(sql, binds).await;
        assert_eq!(rows.len(), 1, "{sql} selects one row");
        rows.remove(0)
    }

    /// The first column of every row a query selects.
    pub async fn column<T>(&self, sql: &str, binds: Binds<'_>) -> Vec<T>
    where
        T: for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> + Send + Unpin,
        (T,): for<'r> sqlx::FromRow<'r, SqliteRow>,
    {
        let mut conn = self.open().await;
        let mut query = sqlx::query_scalar(sql);
        for value in binds {
            query = query.bind(*value);
        }
        let values = query.fetch_all(&mut conn).await;
        conn.close().await.expect("close the test database");
        values.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs a `SELECT COUNT(*) ...`.
    pub async fn count(&self, sql: &str, binds: Binds<'_>) -> i64 {
        self.scalar(sql, binds).await
    }

    /// How many rows of `table` have `column = value`.
    pub async fn count_rows(&self, table: &str, column: &str, value: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?");
        self.count(&sql, &[value]).await
    }

    /// Waits until a `SELECT COUNT(*) ...` counts `expected`.
    pub async fn wait_for_count(&self, sql: &str, binds: Binds<'_>, expected: i64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let n = self.count(sql, binds).await;
            if n == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for `{sql}` to be {expected}; it is {n}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs a statement that changes rows; how many it changed.
    pub async fn execute(&self, sql: &str, binds: Binds<'_>) -> u64 {
        let mut conn = self.open().await;
        let mut query = sqlx::query(sql);
        for value in binds {
            query = query.bind(*value);
        }
        let done = query
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.close().await.expect("close the test database");
        done.rows_affected()
    }
}
