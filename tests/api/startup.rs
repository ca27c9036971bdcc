//! Start-up errors a self-hoster can act on: one line on stderr naming the
//! setting, exit status 1, no panic, no backtrace.

use tempfile::TempDir;

use crate::support::backend::{on_postgres, postgres_url_of};
use crate::support::process::{Server, database_url, run, sesame};
use crate::support::{TestDb, database_made_in};

/// Starts `sesame serve` with one setting changed; asserts it refuses to
/// start with one line naming `setting` and returns that line.
async fn refuses_to_start(dir: &TempDir, setting: &str, value: &str) -> String {
    let mut cmd = sesame(dir.path());
    cmd.env(setting, value).arg("serve");
    let (status, output) = match Server::try_start(cmd).await {
        Ok(server) => panic!(
            "sesame started despite {setting}={value}:\n{}",
            server.output()
        ),
        Err(exited) => exited,
    };
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        !output.contains("panicked") && !output.contains("backtrace"),
        "{output}"
    );
    // The same command again, for stderr alone.
    let mut cmd = sesame(dir.path());
    cmd.env(setting, value).arg("serve");
    let out = run(cmd).await;
    let stderr = out.stderr.trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "one line on stderr:\n{stderr}");
    assert!(stderr.starts_with("sesame: "), "{stderr}");
    assert!(stderr.contains(setting), "names {setting}: {stderr}");
    stderr
}

#[tokio::test]
async fn a_malformed_public_url_is_named() {
    let dir = TempDir::new().expect("temp dir");
    refuses_to_start(&dir, "SESAME_PUBLIC_URL", "localhost:5000 oops").await;
    assert!(!database_made_in(dir.path()).await, "no database created");
}

#[tokio::test]
async fn an_unwritable_database_path_is_named() {
    let dir = TempDir::new().expect("temp dir");
    if on_postgres() {
        // PostgreSQL's counterpart: a database that is not there.
        let missing = format!("sesame_missing_{:016x}", rand::random::<u64>());
        let url = postgres_url_of(&missing);
        let line = refuses_to_start(&dir, "SESAME_DATABASE_URL", &url).await;
        assert!(line.contains(&missing), "names the database: {line}");
        return;
    }
    // A regular file where a directory should be: unwritable even for root.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").expect("write");
    let url = format!("sqlite://{}/sesame.db", blocker.display());
    let line = refuses_to_start(&dir, "SESAME_DATABASE_URL", &url).await;
    assert!(line.contains("not-a-dir"), "names the path: {line}");
}

#[tokio::test]
async fn a_port_in_use_is_named() {
    let dir = TempDir::new().expect("temp dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let line = refuses_to_start(&dir, "SESAME_BIND", &address).await;
    assert!(line.contains(&address), "names the address: {line}");
    assert!(!database_made_in(dir.path()).await, "no database created");
}

#[tokio::test]
async fn an_smtp_url_with_a_bad_scheme_is_named_without_its_password() {
    let dir = TempDir::new().expect("temp dir");
    let line = refuses_to_start(
        &dir,
        "SESAME_SMTP_URL",
        "https://apikey:s3cret-smtp-pass@smtp.example.com",
    )
    .await;
    assert!(line.contains("smtp://"), "says what is expected: {line}");
    assert!(!line.contains("s3cret-smtp-pass"), "{line}");
}

#[tokio::test]
async fn a_database_from_a_newer_sesame_is_refused_untouched() {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.arg("migrate");
    assert!(run(cmd).await.status.success());
    // What a future version's migration leaves behind.
    let db = TestDb::in_dir(dir.path());
    let checksum = if on_postgres() { "'\\x00'" } else { "x'00'" };
    let plant = format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101, 'from the future', TRUE, {checksum}, 0)"
    );
    let planted = db.execute(&plant, &[]).await;
    assert_eq!(planted, 1, "a future migration is recorded");

    let line = refuses_to_start(&dir, "SESAME_DATABASE_URL", &database_url(dir.path())).await;
    assert!(line.contains("newer sesame"), "{line}");

    let future = db
        .count(
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 99990101",
            &[],
        )
        .await;
    assert_eq!(future, 1, "the newer database is left as it was");
}
