//! The command line, run as real processes of the `sesame` binary.

use reqwest::StatusCode;
use serde_json::json;
use tempfile::TempDir;

use crate::support::process::{Finished, run, sesame};
use crate::support::*;

fn assert_ok(out: &Finished) {
    assert!(
        out.status.success(),
        "exit {}; stdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
}

#[tokio::test]
async fn version_prints_the_package_version() {
    let dir = TempDir::new().expect("temp dir");
    let out = run({
        let mut cmd = sesame(dir.path());
        cmd.arg("--version");
        cmd
    })
    .await;
    assert_ok(&out);
    assert_eq!(
        out.stdout.trim(),
        format!("sesame {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn help_names_every_command_the_settings_and_where_to_read_more() {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.arg("--help");
    let out = run(cmd).await;
    assert_ok(&out);
    for expected in [
        "serve",
        "migrate",
        "openapi",
        "backup",
        "check-config",
        "--database-url",
        "SESAME_DATABASE_URL",
        "SESAME_SMTP_URL",
        "docs/deployment.md",
    ] {
        assert!(
            out.stdout.contains(expected),
            "no {expected:?} in:\n{}",
            out.stdout
        );
    }

    let mut cmd = sesame(dir.path());
    cmd.args(["backup", "--help"]);
    let out = run(cmd).await;
    assert_ok(&out);
    assert!(out.stdout.contains("<PATH>"), "{}", out.stdout);
    assert!(out.stdout.contains("restore"), "{}", out.stdout);
}

#[tokio::test]
async fn openapi_prints_the_document_the_server_serves() {
    let app = spawn_app().await;
    let served = app.get("/openapi.json").await.text().await.expect("body");

    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.arg("openapi");
    let out = run(cmd).await;
    assert_ok(&out);
    assert_eq!(out.stdout.trim_end(), served.trim_end());
    assert!(
        !database_made_in(dir.path()).await,
        "printing the spec needs no database"
    );
}

#[tokio::test]
async fn migrate_creates_the_schema_and_a_server_then_starts_on_it() {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.arg("migrate");
    let out = run(cmd).await;
    assert_ok(&out);

    let db = TestDb::in_dir(dir.path());
    let applied = db
        .count(
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE",
            &[],
        )
        .await;
    let backend = if on_postgres() { "postgres" } else { "sqlite" };
    let migrations = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    let migrations = std::fs::read_dir(&migrations)
        .unwrap_or_else(|e| panic!("{migrations}: {e}"))
        .count() as i64;
    assert_eq!(applied, migrations, "every migration is applied");
    let users = db.count("SELECT COUNT(*) FROM users", &[]).await;
    assert_eq!(users, 0);

    // Migrating again is a no-op, not an error.
    let mut cmd = sesame(dir.path());
    cmd.arg("migrate");
    assert_ok(&run(cmd).await);
}

#[tokio::test]
async fn check_config_prints_every_setting_with_secrets_redacted() {
    let dir = TempDir::new().expect("temp dir");
    let smtp_password = "smtp-pa55word-do-not-print";
    let jwt_secret = "jwt-secret-that-is-long-enough-0123456789";
    let mut cmd = sesame(dir.path());
    cmd.env(
        "SESAME_SMTP_URL",
        format!("smtps://apikey:{smtp_password}@smtp.example.com:465"),
    )
    .env("SESAME_JWT_SECRET", jwt_secret)
    // A flag after the subcommand works too.
    .args(["check-config", "--jwt-audience", "sesame-test"]);
    let out = run(cmd).await;
    assert_ok(&out);

    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !all.contains(smtp_password),
        "SMTP password printed:\n{all}"
    );
    assert!(!all.contains(jwt_secret), "JWT secret printed:\n{all}");
    let line = |name: &str| -> String {
        out.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} line in:\n{}", out.stdout))
            .to_owned()
    };
    assert!(
        line("SESAME_SMTP_URL").contains("@smtp.example.com:465"),
        "the host stays visible: {}",
        line("SESAME_SMTP_URL")
    );
    assert!(line("SESAME_SMTP_URL").contains("REDACTED"));
    assert!(line("SESAME_JWT_SECRET").starts_with("SESAME_JWT_SECRET=REDACTED"));
    assert!(line("SESAME_JWT_SECRET").contains("environment"));
    assert!(line("SESAME_JWT_AUDIENCE").starts_with("SESAME_JWT_AUDIENCE=sesame-test"));
    assert!(line("SESAME_JWT_AUDIENCE").contains("command line"));
    assert!(line("SESAME_ARGON2_MEMORY_KIB").starts_with("SESAME_ARGON2_MEMORY_KIB=1024"));
    assert!(line("SESAME_ARGON2_MEMORY_KIB").contains("environment"));
    assert!(line("SESAME_JWT_LEEWAY_SECS").contains("# default"));
    assert!(out.stdout.contains("HS256"), "{}", out.stdout);
    assert!(
        !database_made_in(dir.path()).await,
        "checking the configuration touches no database"
    );
}

#[tokio::test]
async fn check_config_fails_with_one_line_naming_the_bad_setting() {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_JWT_SECRET", "too-short")
        .arg("check-config");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("SESAME_JWT_SECRET"), "{}", out.stderr);
    assert!(!out.stderr.contains("too-short"), "{}", out.stderr);
}

#[tokio::test]
async fn a_retention_shorter_than_the_email_interval_is_refused() {
    // The email throttle reads the outbox rows of its interval, so pruning
    // them sooner would let a second email through.
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_RETENTION_SECS", "30")
        .env("SESAME_EMAIL_MIN_INTERVAL_SECS", "60")
        .arg("check-config");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("SESAME_RETENTION_SECS"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn backup_copies_a_live_database_and_the_copy_serves_the_same_accounts() {
    if sqlite_only("sesame backup copies the SQLite file (PostgreSQL has pg_dump)") {
        return;
    }
    let app = spawn_app().await;
    app.activated_user("kept@example.com").await;
    let backup = app.dir.path().join("backups").join("sesame-backup.db");
    std::fs::create_dir(backup.parent().expect("parent")).expect("backup dir");

    // The server keeps running (and holding the database) during the backup.
    let mut cmd = sesame(app.dir.path());
    cmd.arg("backup").arg(&backup);
    let out = run(cmd).await;
    assert_ok(&out);
    assert!(out.stdout.contains("backup written"), "{}", out.stdout);
    assert_eq!(app.api.health_ready().await.status(), StatusCode::OK);
    app.signup("after-the-backup@example.com").await;

    // Restore: a server started on the copy alone (no -wal beside it).
    let restored = spawn_app_with(|config| {
        config.database_url = format!("sqlite://{}", backup.display());
    })
    .await;
    restored.login("kept@example.com").await;
    let resp = restored
        .post(
            "/users/login",
            json!({"email": "after-the-backup@example.com", "password": PASSWORD}),
        )
        .await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
}

/// The emails an administrator's search finds, in order (asserting that
/// the total counts exactly those).
async fn searched(app: &TestApp, admin: &str, search: &str) -> Vec<String> {
    let query = format!("?search={search}");
    let page = expect_json(app.api.list_accounts(admin, &query).await, StatusCode::OK).await;
    let emails: Vec<String> = page["users"]
        .as_array()
        .expect("users is an array")
        .iter()
        .map(|user| str_field(user, "email"))
        .collect();
    assert_eq!(page["total"], json!(emails.len()), "{search}: {page}");
    emails
}

/// The admin search's index (SQLite: FTS5 by the users' rowids) must point
/// at the right users in a restored backup. Deleted users leave gaps in the
/// rowids, which SQLite documents that `VACUUM INTO` may close up by
/// renumbering (the bundled SQLite keeps them today), so the backup
/// rebuilds the index in its copy. A stale index would find the wrong
/// users, or none.
#[tokio::test]
async fn a_restored_backup_searches_by_part_of_an_email_and_finds_the_right_users() {
    if sqlite_only("sesame backup copies the SQLite file (PostgreSQL has pg_dump)") {
        return;
    }
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    let mut ids = Vec::new();
    for email in [
        "ann@north.example",
        "bob@south.example",
        "cat@north.example",
        "dan@north.example",
        "eve@south.example",
        "fox@north.example",
    ] {
        ids.push(str_field(&app.activated_user(email).await, "userId"));
    }
    for gone in [&ids[1], &ids[2]] {
        expect_json(app.api.delete_account(&admin, gone).await, StatusCode::OK).await;
    }
    app.activated_user("gil@north.example").await;
    let backup = app.dir.path().join("sesame-backup.db");
    let mut cmd = sesame(app.dir.path());
    cmd.arg("backup").arg(&backup);
    assert_ok(&run(cmd).await);

    let restored = spawn_app_with(|config| {
        config.database_url = format!("sqlite://{}", backup.display());
    })
    .await;
    let admin = str_field(&restored.login("boss@example.com").await, "accessToken");

    let north = [
        "ann@north.example",
        "dan@north.example",
        "fox@north.example",
        "gil@north.example",
    ];
    assert_eq!(searched(&restored, &admin, "north").await, north);
    assert_eq!(
        searched(&restored, &admin, "@south").await,
        ["eve@south.example"]
    );
    assert_eq!(
        searched(&restored, &admin, "cat@").await,
        Vec::<String>::new()
    );
    assert_eq!(
        searched(&restored, &admin, "bob").await,
        Vec::<String>::new()
    );
    assert_eq!(
        searched(&restored, &admin, "h.example").await,
        [
            "ann@north.example",
            "dan@north.example",
            "eve@south.example",
            "fox@north.example",
            "gil@north.example"
        ]
    );
    // 2 characters read every email instead of the index: the same users.
    assert_eq!(searched(&restored, &admin, "no").await, north);
}

#[tokio::test]
async fn backup_never_overwrites_an_existing_file() {
    if sqlite_only("sesame backup copies the SQLite file (PostgreSQL has pg_dump)") {
        return;
    }
    let app = spawn_app().await;
    let target = app.dir.path().join("precious.db");
    std::fs::write(&target, b"not to be overwritten").expect("write");

    let mut cmd = sesame(app.dir.path());
    cmd.arg("backup").arg(&target);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "stdout: {}", out.stdout);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(&target).expect("read"),
        b"not to be overwritten"
    );
}

#[tokio::test]
async fn backup_of_a_missing_database_fails_without_creating_one() {
    if sqlite_only("a missing database is a missing SQLite file") {
        return;
    }
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.args(["backup", "copy.db"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("SESAME_DATABASE_URL"), "{}", out.stderr);
    assert!(!dir.path().join("sesame.db").exists());
    assert!(!dir.path().join("copy.db").exists());
}
