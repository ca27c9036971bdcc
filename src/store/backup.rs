//! `sesame backup`: a consistent copy of a live database.
//!
//! `VACUUM INTO` reads one snapshot of the database (a read transaction, so
//! a running server keeps writing meanwhile) and writes it as a new,
//! compacted, self-contained file: no `-wal` file is needed to restore it.
//! The copy is written next to its destination under a temporary name
//! (created exclusively, readable by its owner only: the copy holds the
//! signing key), checked, flushed to disk and only then renamed into place, so a crash or
//! a full disk never leaves a half-written file under the backup's name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::{ConnectOptions, Connection};

use super::connect_options;

/// Writes a consistent copy of the database at `database_url` to `dest`,
/// which must not exist yet. Returns the size of the copy in bytes.
///
/// The source is opened without creating it and without applying
/// migrations: backing up must never change the database (run the backup
/// of an older database with a newer binary before upgrading).
pub async fn backup(database_url: &str, dest: &Path) -> anyhow::Result<u64> {
    let options = connect_options(database_url)?
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30));
    let source = options.get_filename().to_owned();
    if !source.is_file() {
        bail!(
            "SESAME_DATABASE_URL: there is no database at {}",
            source.display()
        );
    }
    if dest.exists() {
        bail!(
            "{} already exists; a backup is always written to a new file",
            dest.display()
        );
    }
    let dir = match dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.to_owned(),
        None => PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!(
            "cannot write {}: {} is not a directory",
            dest.display(),
            dir.display()
        );
    }
    let file_name = dest
        .file_name()
        .with_context(|| format!("{} is not a file name", dest.display()))?;
    // An unpredictable name, created exclusively and private before SQLite
    // writes into it: a file or symlink planted there fails the backup
    // instead of receiving (or redirecting) the copy.
    let partial = dir.join(format!(
        ".{}.partial-{}-{:016x}",
        file_name.to_string_lossy(),
        std::process::id(),
        rand::random::<u64>()
    ));
    super::files::create_private_new(&partial)
        .with_context(|| format!("creating {} failed", partial.display()))?;

    let result = write_snapshot(options, &partial).await;
    let result = match result {
        Ok(()) => std::fs::rename(&partial, dest)
            .with_context(|| format!("moving the backup into place at {}", dest.display())),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    // The rename itself must survive a crash too.
    if let Ok(dir) = std::fs::File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(std::fs::metadata(dest)
        .with_context(|| format!("reading {}", dest.display()))?
        .len())
}

/// `VACUUM INTO` a new file, check it, and flush it to disk.
async fn write_snapshot(
    options: sqlx::sqlite::SqliteConnectOptions,
    partial: &Path,
) -> anyhow::Result<()> {
    let source = options.get_filename().display().to_string();
    let mut conn = options
        .connect()
        .await
        .with_context(|| format!("SESAME_DATABASE_URL: cannot open {source}"))?;
    let target = partial
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", partial.display()))?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut conn)
        .await
        .with_context(|| format!("copying {source} failed"))?;
    conn.close().await.ok();

    // VACUUM INTO may renumber the rowids of users (no INTEGER PRIMARY KEY),
    // which the admin search's index (migrations/sqlite/0011) points at:
    // rebuild it in the copy from the copy's own rows.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(partial)
        .connect()
        .await
        .context("opening the fresh copy to rebuild its search index failed")?;
    sqlx::query("INSERT INTO users_email_search (users_email_search) VALUES ('rebuild')")
        .execute(&mut conn)
        .await
        .context("rebuilding the search index of the fresh copy failed")?;
    conn.close().await.ok();

    let copy = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(partial)
        .read_only(true);
    let mut conn = copy
        .connect()
        .await
        .context("opening the fresh copy to check it failed")?;
    let verdict: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut conn)
        .await
        .context("checking the fresh copy failed")?;
    conn.close().await.ok();
    if verdict != "ok" {
        bail!("the fresh copy failed its integrity check: {verdict}");
    }
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .context("flushing the backup to disk failed")?;
    Ok(())
}
