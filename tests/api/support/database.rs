//! Direct reads (and the odd write) of a test's database, for what the API
//! does not show: rows counted, a hash stored, a lease planted. Every test
//! goes through [`TestDb`], which connects for one statement and closes
//! again, so no test holds a connection the server could trip on.
//!
//! Statements are written once, in SQL both backends take, with SQLite's
//! `?` / `?N` placeholders and text binds. On PostgreSQL the binds are
//! inlined as quoted literals, which PostgreSQL types from their context
//! like any untyped literal (so `id = ?` works on a `uuid` column and
//! `expires_at = ?` on a `timestamptz` one), and the statement runs over the
//! simple protocol, where every value comes back as text: [`DbValue`]
//! parses it into the type the test asks for, and prints timestamps the way
//! sesame stores them on SQLite (`2026-01-02T03:04:05.000006Z`).
// Not every test uses every helper.
#![allow(dead_code)]

use std::path::Path;

use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, Connection, PgConnection, Row, Sqlite, SqliteConnection, TypeInfo, ValueRef};

use super::app::{POLL, WAIT};
use super::backend;

/// The database of one test.
#[derive(Clone, Debug)]
pub struct TestDb {
    url: String,
}

/// Text bound to the `?` placeholders of a statement, in order.
type Binds<'a> = &'a [&'a str];

impl TestDb {
    /// The database at a `sqlite://` or `postgres://` URL.
    pub fn at(url: &str) -> TestDb {
        TestDb {
            url: url.to_owned(),
        }
    }

    /// The database of a test directory (see [`backend::database_url`]).
    pub fn in_dir(dir: &Path) -> TestDb {
        TestDb::at(&backend::database_url(dir))
    }

    fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")
    }

    async fn open_sqlite(&self) -> SqliteConnection {
        SqliteConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open the test database {}: {e}", self.url))
    }

    async fn open_postgres(&self) -> PgConnection {
        let options: PgConnectOptions = self
            .url
            .parse()
            .unwrap_or_else(|e| panic!("a PostgreSQL URL: {e}"));
        // What the text of timestamps and literals depends on, pinned.
        let options = options.options([
            ("TimeZone", "UTC"),
            ("DateStyle", "ISO"),
            ("standard_conforming_strings", "on"),
            ("bytea_output", "hex"),
        ]);
        PgConnection::connect_with(&options)
            .await
            .unwrap_or_else(|e| panic!("open the test database: {e}"))
    }

    /// The single value a query selects.
    pub async fn scalar<T>(&self, sql: &str, binds: Binds<'_>) -> T
    where
        T: DbValue + for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> + Send + Unpin,
        (T,): for<'r> sqlx::FromRow<'r, SqliteRow>,
    {
        let mut rows = self.column(sql, binds).await;
        assert_eq!(rows.len(), 1, "{sql} selects one row");
        rows.remove(0)
    }

    /// The first column of every row a query selects.
    pub async fn column<T>(&self, sql: &str, binds: Binds<'_>) -> Vec<T>
    where
        T: DbValue + for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> + Send + Unpin,
        (T,): for<'r> sqlx::FromRow<'r, SqliteRow>,
    {
        if self.is_postgres() {
            let sql = inline_binds(sql, binds);
            let mut conn = self.open_postgres().await;
            let rows = sqlx::raw_sql(&sql).fetch_all(&mut conn).await;
            let _ = conn.close().await;
            let rows = rows.unwrap_or_else(|e| panic!("{sql}: {e}"));
            return rows.iter().map(|row| first_value(row, &sql)).collect();
        }
        let mut conn = self.open_sqlite().await;
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
        if self.is_postgres() {
            let sql = inline_binds(sql, binds);
            let mut conn = self.open_postgres().await;
            let done = sqlx::raw_sql(&sql).execute(&mut conn).await;
            let _ = conn.close().await;
            return done
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .rows_affected();
        }
        let mut conn = self.open_sqlite().await;
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

/// Whether a database was made for a test directory: on SQLite its file
/// exists; on PostgreSQL (where the directory's database always exists,
/// empty until sesame migrates it) it has tables.
pub async fn database_made_in(dir: &Path) -> bool {
    if !backend::on_postgres() {
        return dir.join("sesame.db").exists();
    }
    let tables = "SELECT COUNT(*) FROM information_schema.tables \
                  WHERE table_schema = current_schema()";
    TestDb::in_dir(dir).count(tables, &[]).await > 0
}

/// The first column of a PostgreSQL row (text, from the simple protocol).
fn first_value<T: DbValue>(row: &PgRow, sql: &str) -> T {
    let value = row
        .try_get_raw(0)
        .unwrap_or_else(|e| panic!("{sql}: no first column: {e}"));
    let column_type = row.column(0).type_info().name().to_owned();
    let text = if value.is_null() {
        None
    } else {
        Some(
            value
                .as_str()
                .unwrap_or_else(|e| panic!("{sql}: not text: {e}")),
        )
    };
    T::from_postgres(text, &column_type)
}

/// A value a test reads from its database. On SQLite, sqlx decodes it; on
/// PostgreSQL it arrives as text (with its column's type name) and is parsed.
pub trait DbValue: Sized {
    /// From PostgreSQL's text form (`None` for NULL).
    fn from_postgres(text: Option<&str>, column_type: &str) -> Self;
}

fn not_null<'a>(text: Option<&'a str>, column_type: &str) -> &'a str {
    text.unwrap_or_else(|| panic!("a NULL {column_type} read as a non-optional value"))
}

impl DbValue for String {
    fn from_postgres(text: Option<&str>, column_type: &str) -> Self {
        let text = not_null(text, column_type);
        match column_type {
            "TIMESTAMPTZ" => sesame_timestamp(text),
            _ => text.to_owned(),
        }
    }
}

impl DbValue for i64 {
    fn from_postgres(text: Option<&str>, column_type: &str) -> Self {
        match (not_null(text, column_type), column_type) {
            // SQLite has no booleans: a test reading one as a number gets 0 or 1 there.
            ("t", "BOOL") => 1,
            ("f", "BOOL") => 0,
            (text, _) => text
                .parse()
                .unwrap_or_else(|e| panic!("{column_type} {text:?} as i64: {e}")),
        }
    }
}

impl DbValue for bool {
    fn from_postgres(text: Option<&str>, column_type: &str) -> Self {
        match not_null(text, column_type) {
            "t" | "1" => true,
            "f" | "0" => false,
            other => panic!("{column_type} {other:?} as bool"),
        }
    }
}

impl DbValue for Vec<u8> {
    fn from_postgres(text: Option<&str>, column_type: &str) -> Self {
        let text = not_null(text, column_type);
        if column_type != "BYTEA" {
            return text.as_bytes().to_vec();
        }
        let hex = text
            .strip_prefix("\\x")
            .unwrap_or_else(|| panic!("bytea {text:?} not in hex form"));
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("bytea hex digits"))
            .collect()
    }
}

impl<T: DbValue> DbValue for Option<T> {
    fn from_postgres(text: Option<&str>, column_type: &str) -> Self {
        text.map(|text| T::from_postgres(Some(text), column_type))
    }
}

/// PostgreSQL's ISO text of a `timestamptz` (`2026-01-02 03:04:05.6+00`)
/// in sesame's SQLite form (`2026-01-02T03:04:05.600000Z`).
fn sesame_timestamp(text: &str) -> String {
    let at = chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z")
        .unwrap_or_else(|e| panic!("timestamptz {text:?}: {e}"));
    at.with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// `sql` with SQLite's placeholders (`?`, `?N`) replaced by the binds as
/// quoted literals; quoted strings, identifiers and comments are left alone.
fn inline_binds(sql: &str, binds: Binds<'_>) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    // SQLite numbers a bare `?` one past the largest number used so far.
    let mut largest = 0;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    // A doubled quote closes and reopens: the same either way.
                    if inner == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let number = if digits.is_empty() {
                    largest + 1
                } else {
                    digits.parse().expect("a placeholder number")
                };
                largest = largest.max(number);
                let value = binds.get(number - 1).unwrap_or_else(|| {
                    panic!("{sql}: placeholder ?{number} but {} binds", binds.len())
                });
                out.push('\'');
                out.push_str(&value.replace('\'', "''"));
                out.push('\'');
            }
            _ => out.push(c),
        }
    }
    out
}

#[test]
fn placeholders_become_quoted_literals_outside_strings() {
    let sql = "SELECT '?', \"a?\" FROM t WHERE a = ? AND b = ?2 AND c = ? -- ?\n AND d = ?1";
    assert_eq!(
        inline_binds(sql, &["x", "it's", "z"]),
        "SELECT '?', \"a?\" FROM t WHERE a = 'x' AND b = 'it''s' AND c = 'z' -- ?\n AND d = 'x'"
    );
}

#[test]
fn timestamps_read_as_sesame_writes_them() {
    assert_eq!(
        sesame_timestamp("2026-01-02 03:04:05.6+00"),
        "2026-01-02T03:04:05.600000Z"
    );
    assert_eq!(
        sesame_timestamp("2026-01-02 05:04:05+02"),
        "2026-01-02T03:04:05.000000Z"
    );
}

/// The database of a new test directory, as a server would find it: on
/// SQLite an empty file (TestDb never creates one: a test that looks at a
/// database its server never made is wrong).
fn empty_database(dir: &tempfile::TempDir) -> TestDb {
    if !backend::on_postgres() {
        std::fs::File::create(dir.path().join("sesame.db")).expect("an empty SQLite file");
    }
    TestDb::in_dir(dir.path())
}

/// On both backends: a table with the types sesame's PostgreSQL schema uses
/// reads back as the Rust types the tests ask for, with text binds compared
/// against those columns.
#[tokio::test]
async fn values_of_every_column_type_read_back_as_tests_ask_for_them() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let db = empty_database(&dir);
    let create = "CREATE TABLE t (id uuid PRIMARY KEY, at timestamptz NOT NULL, \
                  ok boolean NOT NULL, data bytea, n bigint, note text)";
    db.execute(create, &[]).await;
    let id = "0193b2c4-5d6e-7f80-9a1b-2c3d4e5f6071";
    let bytes = if backend::on_postgres() {
        "'\\x00ff'"
    } else {
        "x'00ff'"
    };
    let insert = format!(
        "INSERT INTO t (id, at, ok, data, n, note) VALUES (?, ?, TRUE, {bytes}, ?, ?), \
         (?, ?, FALSE, NULL, NULL, NULL)"
    );
    let other = "0193b2c4-5d6e-7f80-9a1b-2c3d4e5f6072";
    let at = "2026-01-02T03:04:05.600000Z";
    let binds = [id, at, "42", "it's ?", other, "2026-01-02T03:04:05.000000Z"];
    assert_eq!(db.execute(&insert, &binds).await, 2);

    let read: String = db.scalar("SELECT id FROM t WHERE id = ?", &[id]).await;
    assert_eq!(read, id);
    let read: String = db.scalar("SELECT at FROM t WHERE id = ?1", &[id]).await;
    assert_eq!(read, at);
    let ok: bool = db.scalar("SELECT ok FROM t WHERE id = ?", &[id]).await;
    assert!(ok);
    let ok: i64 = db.scalar("SELECT ok FROM t WHERE id = ?", &[other]).await;
    assert_eq!(ok, 0);
    let data: Vec<u8> = db.scalar("SELECT data FROM t WHERE id = ?", &[id]).await;
    assert_eq!(data, [0x00, 0xff]);
    let n: Option<i64> = db.scalar("SELECT n FROM t WHERE id = ?", &[id]).await;
    assert_eq!(n, Some(42));
    let note: Option<String> = db.scalar("SELECT note FROM t WHERE id = ?", &[other]).await;
    assert_eq!(note, None);
    let note: String = db
        .scalar("SELECT note FROM t WHERE note = ?", &["it's ?"])
        .await;
    assert_eq!(note, "it's ?");
    let earlier = db.count("SELECT COUNT(*) FROM t WHERE at < ?", &[at]).await;
    assert_eq!(earlier, 1);
    let changed = db
        .execute("UPDATE t SET at = ?, ok = TRUE WHERE id = ?", &[at, other])
        .await;
    assert_eq!(changed, 1);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM t WHERE ok = TRUE", &[])
            .await,
        2
    );
    let ids: Vec<String> = db.column("SELECT id FROM t ORDER BY id", &[]).await;
    assert_eq!(ids, [id, other]);
}

/// A test directory stands for one database: the same URL each time, and
/// another directory's is another database (dropped, on PostgreSQL, once
/// its directory is gone).
#[tokio::test]
async fn each_test_directory_has_a_database_of_its_own() {
    let one = tempfile::TempDir::new().expect("temp dir");
    let two = tempfile::TempDir::new().expect("temp dir");
    let url = backend::database_url(one.path());
    assert_eq!(backend::database_url(one.path()), url);
    assert_ne!(backend::database_url(two.path()), url);
    empty_database(&one)
        .execute("CREATE TABLE only_in_one (x bigint)", &[])
        .await;
    let tables = "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'only_in_one'";
    if backend::on_postgres() {
        assert_eq!(TestDb::in_dir(one.path()).count(tables, &[]).await, 1);
        assert_eq!(TestDb::in_dir(two.path()).count(tables, &[]).await, 0);
        // Once its directory is gone, the next database made drops it.
        let path = url.split('?').next().expect("a URL");
        let name = path.rsplit('/').next().expect("a database name").to_owned();
        drop(one);
        let three = tempfile::TempDir::new().expect("temp dir");
        let named = "SELECT COUNT(*) FROM pg_database WHERE datname = ?";
        assert_eq!(TestDb::in_dir(three.path()).count(named, &[&name]).await, 0);
    } else {
        assert!(one.path().join("sesame.db").exists());
        assert!(!two.path().join("sesame.db").exists());
    }
}
