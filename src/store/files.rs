//! Database files readable by their owner only.
//!
//! The database holds the Ed25519 private key, password hashes and session
//! hashes. SQLite creates a new database file with mode 0644 (less the
//! umask), and its `-wal` and `-shm` files with the mode of the database
//! file; so creating the database file ourselves, empty and 0600, before
//! SQLite opens it makes all three private. A backup's file is created the
//! same way, exclusively (`O_CREAT|O_EXCL`: a planted file or symlink makes
//! the backup fail instead of being followed).

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::Path;

/// Creates an empty database file, 0600, unless one exists; leaves paths
/// SQLite does not treat as files (`:memory:`, `file:` names) alone.
pub fn create_private_database(path: &Path) -> anyhow::Result<()> {
    let name = path.to_string_lossy();
    if name.is_empty() || name.starts_with(':') || name.starts_with("file:") {
        return Ok(());
    }
    match create_private_new(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            warn_if_shared(path);
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(
            "SESAME_DATABASE_URL: cannot create the database file {}: {e}",
            path.display()
        )),
    }
}

/// Creates a new file readable and writable by its owner only; fails if
/// anything (a file, a symlink) is already at `path`.
pub fn create_private_new(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// An existing database that others may read (made by an older sesame, or
/// copied in) is left as it is, with a warning saying how to fix it.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format!("{mode:o}"),
                    "the database file is readable by other users; it holds the signing key \
                     and password hashes: `chmod 600` it (and its -wal and -shm files)"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_new_file_is_private_and_a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh");
        create_private_new(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let target = dir.path().join("target");
        std::fs::write(&target, b"theirs").unwrap();
        let planted = dir.path().join("planted");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let err = create_private_new(&planted).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        // A dangling symlink is refused too (O_EXCL never follows).
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(create_private_new(&dangling).is_err());
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
    }
}
