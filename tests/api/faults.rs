//! Faults injected for real under a running `sesame` process (no mocked
//! store): a full disk, a write lock held by another process, a database
//! whose file system turns read-only. Each checks the contract's invariant
//! (every write answered 2xx is there afterwards, also after a restart),
//! that writes answer `503 STORAGE_UNAVAILABLE` with `Retry-After` while the
//! fault lasts, that `/health/ready` says so, that the log says it once, and
//! that the server recovers by itself.
//!
//! These tests need root: they mount file systems. CI runs as root on the
//! same kind of machine; without root they fail saying so, they never skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use reqwest::StatusCode;
use tempfile::TempDir;

use crate::support::process::{Server, sesame};
use crate::support::{
    Answer, Api, MailServer, PASSWORD, Signup, TestDb, WAIT, eventually, str_field,
};

/// The log line that starts a fault, and the one that ends it.
pub const FAULT_LOG: &str = "the database cannot take writes";
pub const RECOVERED_LOG: &str = "the database takes writes again";

/// Runs a command that must succeed (mount, umount, …), failing loudly.
pub fn run_ok(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}\nThe fault tests need root and a kernel that lets \
         them mount file systems (CI runs as root on the same kind of machine).",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small tmpfs mounted on a fresh directory (unmounted on drop).
///
/// A real full disk, rather than `RLIMIT_FSIZE` on the server: the limit
/// fails only writes that grow a file past a size, while a full file system
/// fails every allocation (the `-wal`, the `-shm`, the database) the way a
/// production disk does, and freeing space ends the fault for everything
/// at once. The test runs as root, so it can mount.
pub struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().to_str().expect("utf-8 path").to_owned();
        run_ok(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
                &path,
            ],
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system to the last byte with `filler`; returns its path.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).expect("create filler");
        let block = vec![0u8; 64 * 1024];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the disk failed: {e}"),
            }
        }
        // What did not fit in a whole block, byte by byte.
        while let Ok(1) = file.write(&[0u8]) {}
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a server that is still running must not keep it mounted.
        let _ = std::process::Command::new("umount")
            .args(["-l", self.dir.path().to_str().unwrap_or_default()])
            .status();
    }
}

/// A server on the database in `dir`, with its mail captured by `mail`.
pub async fn serve(dir: &Path, mail: &MailServer, env: &[(&str, &str)]) -> Server {
    let mut cmd = sesame(dir);
    cmd.env("SESAME_SMTP_URL", mail.url()).arg("serve");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::start(cmd).await
}

/// Whether the running server knows `email` (signed up, not yet verified):
/// the right password answers `403 EMAIL_NOT_VERIFIED`, an unknown address `401`.
pub async fn knows_unverified(api: &Api, email: &str) -> bool {
    let answer = api.login(email, PASSWORD).await;
    match answer.status {
        StatusCode::FORBIDDEN => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("login of {email} answered {other}: {}", answer.text),
    }
}

/// Asserts a refused write has the contract's shape for a storage fault.
pub fn assert_storage_unavailable(answer: &Answer, what: &str) {
    let body = &answer.body;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        answer.text
    );
    assert_eq!(body["error"], true, "{what}: {body}");
    assert_eq!(body["code"], "STORAGE_UNAVAILABLE", "{what}: {body}");
    let retry: u64 = answer
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: a 503 carries Retry-After in seconds"));
    assert!(retry >= 1, "{what}: Retry-After {retry}");
}

/// `/health/ready`'s status.
pub async fn ready(api: &Api) -> StatusCode {
    api.health_ready().await.status
}

/// How many log lines carry `message`.
pub fn count_log(server: &Server, message: &str) -> usize {
    server
        .log_lines()
        .iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(message)))
        .count()
}

/// Signs up, activates with the emailed code and logs in; the access token.
pub async fn active_user(api: &Api, mail: &MailServer, email: &str) -> String {
    api.signup(&Signup::new(email))
        .await
        .expect(StatusCode::CREATED);
    let code = mail.wait_for_mail_to(email, 1, WAIT).await.code();
    api.activate(email, &code).await.expect(StatusCode::OK);
    let tokens = api.login(email, PASSWORD).await.expect(StatusCode::OK);
    str_field(&tokens, "accessToken")
}

/// `PRAGMA integrity_check` of the database file (server stopped).
pub async fn integrity(dir: &Path) -> String {
    TestDb::in_dir(dir)
        .scalar("PRAGMA integrity_check", &[])
        .await
}

/// Stops the server with SIGTERM, as an operator would, and waits.
pub async fn stop(server: &mut Server) {
    server.terminate().await;
    let status = server.wait().await;
    assert!(
        status.success(),
        "sesame stops cleanly: {}",
        server.output()
    );
}

/// Asserts every address in `acknowledged` is known to the server `api` talks to.
pub async fn assert_all_known(api: &Api, acknowledged: &[String], when: &str) {
    let mut missing = Vec::new();
    for email in acknowledged {
        if !knows_unverified(api, email).await {
            missing.push(email.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{when}: {} of {} signups answered 201 are missing: {missing:?}",
        missing.len(),
        acknowledged.len()
    );
}

#[tokio::test]
async fn a_full_disk_answers_503_loses_no_acknowledged_signup_and_recovers_by_itself() {
    let disk = Tmpfs::mount("8m");
    let mail = MailServer::start().await;
    let mut server = serve(disk.path(), &mail, &[]).await;
    let api = Api::new(&server.address);
    let token = active_user(&api, &mail, "reader@example.com").await;

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..10 {
        let email = format!("before-{i}@example.com");
        let answer = api.signup(&Signup::new(&email)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        acknowledged.push(email);
    }

    let filler = disk.fill();
    for i in 0..40 {
        let email = format!("full-{i}@example.com");
        let answer = api.signup(&Signup::new(&email)).await;
        match answer.status {
            StatusCode::CREATED => acknowledged.push(email),
            _ => {
                assert_storage_unavailable(&answer, "a signup on a full disk");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "a full disk refuses signups");
    assert_eq!(ready(&api).await, StatusCode::SERVICE_UNAVAILABLE);
    let me = api.me(&token).await;
    assert_eq!(me.status, StatusCode::OK, "reads keep working: {}", me.text);
    assert_all_known(&api, &acknowledged, "on the full disk").await;
    assert_eq!(count_log(&server, FAULT_LOG), 1, "{}", server.output());

    std::fs::remove_file(filler).expect("free the space");
    eventually("readiness once space is free", || async {
        (ready(&api).await == StatusCode::OK).then_some(())
    })
    .await;
    for i in 0..10 {
        let email = format!("after-{i}@example.com");
        let answer = api.signup(&Signup::new(&email)).await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "writes work again without a restart: {}",
            answer.text
        );
        acknowledged.push(email);
    }
    assert_all_known(&api, &acknowledged, "after the fault").await;
    assert_eq!(count_log(&server, FAULT_LOG), 1, "{}", server.output());
    assert_eq!(count_log(&server, RECOVERED_LOG), 1, "{}", server.output());

    stop(&mut server).await;
    assert_eq!(integrity(disk.path()).await, "ok");
    let mut server = serve(disk.path(), &mail, &[]).await;
    let api = Api::new(&server.address);
    assert_all_known(&api, &acknowledged, "after a restart").await;
    stop(&mut server).await;
}
