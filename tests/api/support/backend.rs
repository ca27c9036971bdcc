//! Which database the tests run on. By default each test directory holds
//! its own SQLite file; with `SESAME_TEST_DATABASE=postgres` each test
//! directory gets a fresh PostgreSQL database instead, created through the
//! admin URL in `SESAME_TEST_POSTGRES_URL` (`scripts/postgres` starts a
//! throwaway server; `scripts/test` runs the suite both ways).
//!
//! A directory stands for its database in both cases, so an in-process app,
//! the `sesame` binary started in the same directory and [`super::TestDb`]
//! all meet on the same data.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use sqlx::{Connection, PgConnection};

/// `true` when the suite runs on PostgreSQL.
pub fn on_postgres() -> bool {
    match std::env::var("SESAME_TEST_DATABASE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("SESAME_TEST_DATABASE={other}: expected sqlite or postgres"),
    }
}

/// For a test that can only hold on SQLite (its file, its locks, its
/// disk): on PostgreSQL, prints one line saying why the test is skipped and
/// returns `true`. Use as `if sqlite_only("why") { return; }`.
pub fn sqlite_only(why: &str) -> bool {
    if !on_postgres() {
        return false;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    // Straight to stderr: the test harness hides what `eprintln!` prints
    // in a passing test, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "skipped on PostgreSQL: {test}: {why}");
    true
}

/// The database URL of a test directory: `sqlite://DIR/sesame.db`, or on
/// PostgreSQL the URL of the directory's own database (created on first use).
pub fn database_url(dir: &Path) -> String {
    if on_postgres() {
        postgres_database(dir)
    } else {
        format!("sqlite://{}", dir.join("sesame.db").display())
    }
}

/// The URL of the database `name` on the tests' PostgreSQL server.
pub fn postgres_url_of(name: &str) -> String {
    with_database(&admin_url(), name)
}

/// The admin URL of the PostgreSQL server the tests use.
fn admin_url() -> String {
    std::env::var("SESAME_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "SESAME_TEST_DATABASE=postgres needs SESAME_TEST_POSTGRES_URL: the URL of a \
             PostgreSQL server where the tests may CREATE DATABASE (scripts/postgres start; \
             scripts/postgres url)"
        )
    })
}

/// A database created for a test directory.
struct Created {
    dir: PathBuf,
    name: String,
}

/// The databases created so far, by directory.
static CREATED: Mutex<Vec<Created>> = Mutex::new(Vec::new());

/// The URL of `dir`'s database, created if it is the first time. The
/// databases of directories that no longer exist (their test is over) are
/// dropped on the way: each holds ~7 MB, and a run makes hundreds.
fn postgres_database(dir: &Path) -> String {
    let admin = admin_url();
    let mut created = CREATED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = created.iter().find(|c| c.dir == dir) {
        return with_database(&admin, &known.name);
    }
    let mut statements: Vec<String> = Vec::new();
    created.retain(|c| {
        let live = c.dir.exists();
        if !live {
            statements.push(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", c.name));
        }
        live
    });
    let name = format!("sesame_t_{:016x}", rand::random::<u64>());
    statements.push(format!("CREATE DATABASE {name}"));
    run_admin(&admin, statements);
    created.push(Created {
        dir: dir.to_owned(),
        name: name.clone(),
    });
    with_database(&admin, &name)
}

/// Runs statements on the admin connection. Blocking, on a thread and a
/// runtime of its own: callers (`test_config`, `process::sesame`) are
/// plain functions called from async tests.
fn run_admin(admin: &str, statements: Vec<String>) {
    let admin = admin.to_owned();
    let work = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the admin connection");
        runtime.block_on(async move {
            // (The URL is not printed: it may hold a password.)
            let mut conn = PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("connect to SESAME_TEST_POSTGRES_URL: {e}"));
            for sql in &statements {
                sqlx::raw_sql(sql)
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            let _ = conn.close().await;
        });
    });
    if let Err(panic) = work.join() {
        std::panic::resume_unwind(panic);
    }
}

/// `admin` with its database (the URL's path) replaced by `name`.
fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{name}{query}", &base[..path])
}

#[test]
fn a_database_replaces_the_path_of_the_admin_url() {
    let cases = [
        (
            "postgres://u@127.0.0.1:5/postgres",
            "postgres://u@127.0.0.1:5/t",
        ),
        ("postgres://u@h:5", "postgres://u@h:5/t"),
        (
            "postgresql://u:p@h/db?sslmode=disable",
            "postgresql://u:p@h/t?sslmode=disable",
        ),
    ];
    for (admin, expected) in cases {
        assert_eq!(with_database(admin, "t"), expected);
    }
}
