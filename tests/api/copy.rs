//! The PostgreSQL schema and `sesame copy --to postgres://…`. These tests
//! need a PostgreSQL server: they run when `SESAME_TEST_POSTGRES_URL` (a URL
//! whose role may `CREATE DATABASE`) is set, and otherwise say why they skip.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::json;
use sesame::store::copy::TABLES;
use sqlx::{Connection, PgConnection, PgPool, SqlitePool};
use tempfile::TempDir;
use totp_rs::TOTP;
use uuid::Uuid;

use crate::support::process::{run, sesame};
use crate::support::*;

/// A PostgreSQL database of one test, dropped when the test ends.
struct PgTarget {
    url: String,
    admin_url: String,
    name: String,
}

impl Drop for PgTarget {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // On a thread and a runtime of its own: `drop` cannot await.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&sql).execute(&mut admin).await.ok()?;
                admin.close().await.ok()
            })
        });
        let _ = dropped.join();
    }
}

/// A fresh, empty PostgreSQL database for one test, or `None` (with the
/// reason printed) when no server is configured.
async fn fresh_postgres(test: &str) -> Option<PgTarget> {
    let Ok(admin_url) = std::env::var("SESAME_TEST_POSTGRES_URL") else {
        // Straight to stderr: the harness hides what `eprintln!` prints in a
        // passing test, and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {test}: SESAME_TEST_POSTGRES_URL is not set"
        );
        return None;
    };
    let name = format!("sesame_copy_{}", uuid::Uuid::now_v7().simple());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connect to SESAME_TEST_POSTGRES_URL: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    admin.close().await.ok();
    Some(PgTarget {
        url: with_database(&admin_url, &name),
        admin_url,
        name,
    })
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let mut url = reqwest::Url::parse(url).expect("SESAME_TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Every ordinary table (but sqlx's bookkeeping; not the FTS5 search index)
/// and its columns in order, as a
/// fresh SQLite database has them after sesame's migrations.
async fn sqlite_schema() -> BTreeMap<String, Vec<String>> {
    let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
    sesame::store::MIGRATOR.run(&pool).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut schema = BTreeMap::new();
    for table in tables {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(&table)
                .fetch_all(&pool)
                .await
                .unwrap();
        schema.insert(table, columns);
    }
    schema
}

/// Tables of the PostgreSQL schema with no SQLite counterpart.
const POSTGRES_ONLY: &[&str] = &["rate_limits"];

/// The same for a PostgreSQL database.
async fn postgres_schema(pool: &PgPool) -> BTreeMap<String, Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' \
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut schema: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (table, column) in rows {
        schema.entry(table).or_default().push(column);
    }
    schema
}

#[tokio::test]
async fn the_postgres_migrations_make_every_sqlite_table_and_column() {
    let Some(target) =
        fresh_postgres("the_postgres_migrations_make_every_sqlite_table_and_column").await
    else {
        return;
    };
    let pool = PgPool::connect(&target.url).await.unwrap();
    sesame::store::PG_MIGRATOR.run(&pool).await.unwrap();
    let mut postgres = postgres_schema(&pool).await;
    // Tables only PostgreSQL has: the per-IP rate limits, which SQLite
    // keeps in each process's memory (nothing to copy).
    for table in POSTGRES_ONLY {
        assert!(
            postgres.remove(*table).is_some(),
            "{table} exists on PostgreSQL"
        );
    }
    assert_eq!(postgres, sqlite_schema().await);
    // Applying them again (every start does) changes nothing.
    sesame::store::PG_MIGRATOR.run(&pool).await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn the_copy_knows_every_table_of_the_schema() {
    let mut known: Vec<&str> = TABLES.to_vec();
    known.sort_unstable();
    let schema = sqlite_schema().await;
    let tables: Vec<&str> = schema.keys().map(String::as_str).collect();
    assert_eq!(
        known, tables,
        "a table was added to the schema: add it to store::copy::TABLES"
    );
}

#[tokio::test]
async fn a_password_in_the_to_flag_is_refused_and_not_printed() {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.args([
        "copy",
        "--to",
        "postgres://sesame:hunter2@127.0.0.1:1/sesame",
    ]);
    let out = run(cmd).await;
    assert!(!out.status.success());
    assert!(out.stderr.contains("PGPASSWORD"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
}

/// A stopped sesame on SQLite holding a bit of everything.
struct Source {
    /// Holds the SQLite file.
    _dir: TempDir,
    url: String,
    /// alice's tokens (active, referrer of bob).
    alice: (String, String),
    /// admin's access token.
    admin: String,
    /// carol's authenticator (TOTP on) and one of her recovery codes.
    carol_totp: TOTP,
    carol_recovery: String,
}

/// Waits, if the current 30 s step ends within 8 s, until the next one
/// starts; returns the current step.
async fn steady_step() -> u64 {
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let into_step = now.as_millis() % 30_000;
        if into_step <= 22_000 {
            return now.as_secs() / 30;
        }
        tokio::time::sleep(Duration::from_millis(30_050 - into_step as u64)).await;
    }
}

/// Users active, pending, referred and admin, sessions, TOTP, and mail
/// queued while the SMTP server is down; then the server is stopped.
async fn filled_sqlite_app() -> Source {
    let dir = TempDir::new().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("sesame.db").display());
    let database_url = url.clone();
    let mut app = spawn_app_with(move |config| config.database_url = database_url).await;

    let admin = app.admin_token("admin@example.com").await;
    let alice = app.logged_in_user("alice@example.com").await;
    let code = str_field(&app.me(&alice.0).await, "referralCode");
    app.signup_referred("bob@example.com", &code).await;

    let (carol, _) = app.logged_in_user("carol@example.com").await;
    let started = app
        .post_auth("/users/me/mfa/totp", json!({"password": PASSWORD}), &carol)
        .await;
    let uri = str_field(
        &expect_json(started, StatusCode::CREATED).await,
        "otpauthUri",
    );
    let carol_totp = TOTP::from_url(&uri).expect("an otpauth URI");
    let step = steady_step().await;
    let code = carol_totp.generate(step * 30);
    let confirmed = app
        .patch_auth("/users/me/mfa/totp", json!({"code": code}), &carol)
        .await;
    let body = expect_json(confirmed, StatusCode::OK).await;
    let carol_recovery = body["recoveryCodes"][0]
        .as_str()
        .expect("a code")
        .to_owned();

    // Mail that cannot go out yet: dave's verification code.
    app.mail.shutdown();
    app.signup("dave@example.com")
        .await
        .expect(StatusCode::CREATED);
    app.stop().await;
    Source {
        _dir: dir,
        url,
        alice,
        admin,
        carol_totp,
        carol_recovery,
    }
}

/// Rows per table.
async fn sqlite_counts(url: &str) -> BTreeMap<&'static str, i64> {
    let db = TestDb::at(url);
    let mut counts = BTreeMap::new();
    for table in TABLES {
        let n = db
            .count(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .await;
        counts.insert(*table, n);
    }
    counts
}

async fn postgres_counts(pool: &PgPool) -> BTreeMap<&'static str, i64> {
    let mut counts = BTreeMap::new();
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap();
        counts.insert(*table, n);
    }
    counts
}

/// Every index's definition.
async fn indexes(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes \
         WHERE schemaname = current_schema() ORDER BY indexname",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// `sesame copy` from the source into `to`, as the binary.
async fn copy_with_the_binary(source: &Source, to: &str) -> crate::support::process::Finished {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_DATABASE_URL", &source.url)
        .env("SESAME_COPY_TO", to)
        .arg("copy");
    run(cmd).await
}

/// Each user as text: id, email, referrer, role, active, created_at.
type UserRow = (String, String, Option<String>, String, bool, String);

async fn sqlite_users(url: &str) -> Vec<UserRow> {
    let pool = SqlitePool::connect(url).await.unwrap();
    let rows = sqlx::query_as(
        "SELECT id, email, referred_by, role, active, created_at FROM users ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

async fn postgres_users(pool: &PgPool) -> Vec<UserRow> {
    type PgUserRow = (Uuid, String, Option<Uuid>, String, bool, DateTime<Utc>);
    let rows: Vec<PgUserRow> = sqlx::query_as(
        "SELECT id, email, referred_by, role, active, created_at FROM users ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, email, referrer, role, active, created)| {
            let referrer = referrer.map(|r| r.to_string());
            (
                id.to_string(),
                email,
                referrer,
                role,
                active,
                sesame::store::stored_text(created),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_copy_moves_every_row_and_a_second_copy_is_refused_without_writing() {
    let test = "the_copy_moves_every_row_and_a_second_copy_is_refused_without_writing";
    let Some(target) = fresh_postgres(test).await else {
        return;
    };
    let source = filled_sqlite_app().await;
    let out = copy_with_the_binary(&source, &target.url).await;
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);

    let expected = sqlite_counts(&source.url).await;
    assert_eq!(expected["users"], 5, "admin, alice, bob, carol, dave");
    assert!(expected["sessions"] >= 3, "{expected:?}");
    assert_eq!(expected["totp_credentials"], 1);
    assert_eq!(expected["recovery_codes"], 10);
    assert!(expected["signing_keys"] >= 1, "{expected:?}");
    let queued = TestDb::at(&source.url)
        .count("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL", &[])
        .await;
    assert!(queued >= 1, "dave's mail waits in the outbox");
    // The command prints the count of every table.
    for (table, rows) in &expected {
        let line = format!("{table:<20} {rows:>10} rows  ");
        assert!(out.stdout.contains(&line), "{line:?} in {}", out.stdout);
    }

    let pool = PgPool::connect(&target.url).await.unwrap();
    assert_eq!(postgres_counts(&pool).await, expected);
    assert_eq!(postgres_users(&pool).await, sqlite_users(&source.url).await);
    // The indexes the copy rebuilt are the migrations' own.
    let fresh = fresh_postgres(test).await.expect("a server");
    let migrated = PgPool::connect(&fresh.url).await.unwrap();
    sesame::store::PG_MIGRATOR.run(&migrated).await.unwrap();
    assert_eq!(indexes(&pool).await, indexes(&migrated).await);
    migrated.close().await;
    let bob_referrer: Option<Uuid> =
        sqlx::query_scalar("SELECT referred_by FROM users WHERE email = 'bob@example.com'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(bob_referrer.is_some(), "bob keeps his referrer");

    // Outbox ids are kept, and new ones continue after them.
    let last: i64 = TestDb::at(&source.url)
        .scalar("SELECT MAX(id) FROM outbox", &[])
        .await;
    let mut tx = pool.begin().await.unwrap();
    let next: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (recipient, kind, subject, text_body, html_body, created_at) \
         VALUES ('x@example.com', 'test', 's', 't', 'h', now()) RETURNING id",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(next, last + 1);

    // A second copy into the same target is refused and writes nothing
    // (the row deleted here would come back).
    sqlx::query("DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM refresh_tokens LIMIT 1)")
        .execute(&pool)
        .await
        .unwrap();
    let before = postgres_counts(&pool).await;
    let again = copy_with_the_binary(&source, &target.url).await;
    assert!(!again.status.success(), "{}", again.stdout);
    assert!(
        again.stderr.contains("already holds users"),
        "{}",
        again.stderr
    );
    assert_eq!(postgres_counts(&pool).await, before);
    pool.close().await;
}

#[tokio::test]
async fn tokens_codes_and_queued_mail_from_before_the_copy_work_on_postgres() {
    let test = "tokens_codes_and_queued_mail_from_before_the_copy_work_on_postgres";
    let Some(target) = fresh_postgres(test).await else {
        return;
    };
    let source = filled_sqlite_app().await;
    sesame::store::copy::copy(&source.url, &target.url, |_| {})
        .await
        .expect("the copy succeeds");
    let database_url = target.url.clone();
    let app = spawn_app_with(move |config| config.database_url = database_url).await;

    // Tokens issued on SQLite: the access token is accepted, the refresh
    // token gives new ones, an admin is still an admin.
    let (access, refresh) = &source.alice;
    assert_eq!(app.me(access).await["email"], "alice@example.com");
    let tokens = app.api.refresh(refresh).await.expect(StatusCode::OK);
    app.me(&str_field(&tokens, "accessToken")).await;
    let accounts = app.api.list_accounts(&source.admin, "").await;
    accounts.expect(StatusCode::OK);

    // carol's second factor: her authenticator's next code and a recovery
    // code (the secret and the codes' key moved with the copy).
    let first = app.api.login("carol@example.com", PASSWORD).await;
    let first = first.expect_error(StatusCode::FORBIDDEN, "MFA_REQUIRED");
    let step = steady_step().await + 1;
    let code = source.carol_totp.generate(step * 30);
    let body = json!({"mfaToken": str_field(&first, "mfaToken"), "code": code});
    let second = app.post("/users/login/mfa", body).await.into_answer().await;
    second.expect(StatusCode::OK);
    let first = app.api.login("carol@example.com", PASSWORD).await;
    let first = first.expect_error(StatusCode::FORBIDDEN, "MFA_REQUIRED");
    let body = json!({"mfaToken": str_field(&first, "mfaToken"), "code": source.carol_recovery});
    let second = app.post("/users/login/mfa", body).await.into_answer().await;
    second.expect(StatusCode::OK);

    // dave's verification email, queued on SQLite, goes out from
    // PostgreSQL, once, and its code activates him.
    let code = app.code_from_mail("dave@example.com", 1).await;
    app.api
        .activate("dave@example.com", &code)
        .await
        .expect(StatusCode::OK);
    app.drain_outbox("sentinel@example.com").await;
    assert_eq!(app.mail.mails_to("dave@example.com").len(), 1);
}
