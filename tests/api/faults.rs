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
//! On PostgreSQL the faults of SQLite's file (its disk, its lock) are not
//! sesame's to meet: those tests say so and skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use tempfile::TempDir;

use crate::support::process::{Server, db_file, sesame};
use crate::support::{
    Answer, Api, MailServer, PASSWORD, Signup, TestDb, WAIT, eventually, find_six_digit_code,
    sqlite_only, str_field,
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
    active_user_session(api, mail, email).await.0
}

/// Signs up, activates with the emailed code and logs in; the access and
/// refresh tokens.
pub async fn active_user_session(api: &Api, mail: &MailServer, email: &str) -> (String, String) {
    api.signup(&Signup::new(email))
        .await
        .expect(StatusCode::CREATED);
    let code = mail.wait_for_mail_to(email, 1, WAIT).await.code();
    api.activate(email, &code).await.expect(StatusCode::OK);
    let tokens = api.login(email, PASSWORD).await.expect(StatusCode::OK);
    (
        str_field(&tokens, "accessToken"),
        str_field(&tokens, "refreshToken"),
    )
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
    if sqlite_only(
        "the full disk is a tmpfs under the SQLite file; a PostgreSQL server's disk is not sesame's",
    ) {
        return;
    }
    let disk = Tmpfs::mount("8m");
    let mail = MailServer::start().await;
    let mut server = serve(disk.path(), &mail, &[]).await;
    let client = Api::new(&server.address);
    let token = active_user(&client, &mail, "reader@example.com").await;

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..10 {
        let email = format!("before-{i}@example.com");
        let answer = client.signup(&Signup::new(&email)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        acknowledged.push(email);
    }

    let filler = disk.fill();
    for i in 0..40 {
        let email = format!("full-{i}@example.com");
        let answer = client.signup(&Signup::new(&email)).await;
        match answer.status {
            StatusCode::CREATED => acknowledged.push(email),
            _ => {
                assert_storage_unavailable(&answer, "a signup on a full disk");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "a full disk refuses signups");
    assert_eq!(ready(&client).await, StatusCode::SERVICE_UNAVAILABLE);
    let me = client.me(&token).await;
    assert_eq!(me.status, StatusCode::OK, "reads keep working: {}", me.body);
    // Which signups were kept is checked once writes work again: a login
    // cannot be the probe now, since a password check must be counted (a
    // write) before it is hashed, and is refused when it cannot be.
    let login = client.login(&acknowledged[0], PASSWORD).await;
    assert_storage_unavailable(&login, "a login during a storage fault");
    assert_eq!(count_log(&server, FAULT_LOG), 1, "{}", server.output());

    std::fs::remove_file(filler).expect("free the space");
    eventually("readiness once space is free", || async {
        (ready(&client).await == StatusCode::OK).then_some(())
    })
    .await;
    for i in 0..10 {
        let email = format!("after-{i}@example.com");
        let answer = client.signup(&Signup::new(&email)).await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "writes work again without a restart: {}",
            answer.body
        );
        acknowledged.push(email);
    }
    assert_all_known(&client, &acknowledged, "after the fault").await;
    assert_eq!(count_log(&server, FAULT_LOG), 1, "{}", server.output());
    assert_eq!(count_log(&server, RECOVERED_LOG), 1, "{}", server.output());

    stop(&mut server).await;
    assert_eq!(integrity(disk.path()).await, "ok");
    let mut server = serve(disk.path(), &mail, &[]).await;
    let client = Api::new(&server.address);
    assert_all_known(&client, &acknowledged, "after a restart").await;
    stop(&mut server).await;
}

/// Whether the JSON log has a line `message` whose `error` contains `error`.
fn logged_error(server: &Server, message: &str, error: &str) -> bool {
    server
        .log_lines()
        .iter()
        .any(|l| l["message"] == message && l["error"].as_str().is_some_and(|e| e.contains(error)))
}

/// A relay that accepts connections and never says a word, as a hung
/// relay or a firewall that swallows packets does.
struct SilentRelay {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentRelay {
    async fn start() -> SilentRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket); // open, silent
            }
        });
        SilentRelay {
            port,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_relay_that_never_greets_times_out_is_retried_and_mail_flows_once_a_relay_answers() {
    let relay = SilentRelay::start().await;
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.env(
        "SESAME_SMTP_URL",
        format!("smtp://127.0.0.1:{}", relay.port),
    )
    .env("SESAME_SMTP_TIMEOUT_SECS", "1")
    .arg("serve");
    let server = Server::start(cmd).await;
    let client = Api::new(&server.address);
    let answer = client.signup(&Signup::new("patient@example.com")).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);

    // The first attempt times out and a later one connects again.
    eventually("a second attempt after a timeout", || async {
        (relay.accepted() >= 2).then_some(())
    })
    .await;
    assert!(
        logged_error(
            &server,
            "outbox paused",
            "did not answer within 1s (SESAME_SMTP_TIMEOUT_SECS)"
        ),
        "the timeout is logged: {}",
        server.output()
    );

    // The relay comes back (a working one on the same port).
    let port = relay.port;
    relay.task.abort();
    let _ = relay.task.await;
    let mail = eventually("the port to be free again", || async {
        MailServer::start_on(port).await.ok()
    })
    .await;
    let delivered = mail.wait_for_mail_to("patient@example.com", 1, WAIT).await;
    assert!(find_six_digit_code(&delivered.text_body()).is_some());
}

/// Another process holding SQLite's write lock: python3's sqlite3 module in
/// `BEGIN IMMEDIATE`, until its stdin closes.
struct LockHolder {
    child: tokio::process::Child,
}

impl LockHolder {
    async fn take(db: &Path) -> LockHolder {
        use tokio::io::AsyncBufReadExt;
        let script = "import sqlite3, sys\n\
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
            c.execute('BEGIN IMMEDIATE')\n\
            print('locked', flush=True)\n\
            sys.stdin.read()\n\
            c.execute('ROLLBACK')\n";
        let mut child = tokio::process::Command::new("python3")
            .args(["-c", script])
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (it holds the lock)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        tokio::time::timeout(WAIT, tokio::io::BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("python3 takes the lock in time")
            .expect("read python3's answer");
        assert_eq!(line.trim(), "locked");
        LockHolder { child }
    }

    async fn release(mut self) {
        drop(self.child.stdin.take());
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("python3 ends in time")
            .expect("wait for python3");
        assert!(status.success(), "python3 released the lock: {status}");
    }
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_answers_503_and_writes_resume_when_it_is_released() {
    if sqlite_only("the lock is SQLite's write lock on the file, taken by another process") {
        return;
    }
    let dir = TempDir::new().expect("temp dir");
    let mail = MailServer::start().await;
    let busy = [("SESAME_DB_BUSY_TIMEOUT_MS", "300")];
    let mut server = serve(dir.path(), &mail, &busy).await;
    let client = Api::new(&server.address);
    let token = active_user(&client, &mail, "reader@example.com").await;
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let email = format!("before-{i}@example.com");
        let answer = client.signup(&Signup::new(&email)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        acknowledged.push(email);
    }

    let lock = LockHolder::take(&db_file(dir.path())).await;
    for i in 0..5 {
        let email = format!("locked-{i}@example.com");
        let answer = client.signup(&Signup::new(&email)).await;
        match answer.status {
            StatusCode::CREATED => acknowledged.push(email),
            _ => {
                assert_storage_unavailable(&answer, "a signup while another process holds the lock")
            }
        }
    }
    assert!(
        !acknowledged.iter().any(|e| e.starts_with("locked-")),
        "no write gets through a held lock"
    );
    assert_eq!(ready(&client).await, StatusCode::SERVICE_UNAVAILABLE);
    let me = client.me(&token).await;
    assert_eq!(me.status, StatusCode::OK, "reads keep working: {}", me.body);

    lock.release().await;
    eventually("readiness once the lock is released", || async {
        (ready(&client).await == StatusCode::OK).then_some(())
    })
    .await;
    for i in 0..5 {
        let email = format!("after-{i}@example.com");
        let answer = client.signup(&Signup::new(&email)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        acknowledged.push(email);
    }
    assert_all_known(&client, &acknowledged, "after the lock").await;
    assert_eq!(count_log(&server, FAULT_LOG), 1, "{}", server.output());
    assert_eq!(count_log(&server, RECOVERED_LOG), 1, "{}", server.output());

    stop(&mut server).await;
    assert_eq!(integrity(dir.path()).await, "ok");
    let mut server = serve(dir.path(), &mail, &busy).await;
    let client = Api::new(&server.address);
    assert_all_known(&client, &acknowledged, "after a restart").await;
    stop(&mut server).await;
}

/// An ext4 file system in an image file, mounted through a loop device with
/// `errors=remount-ro` (unmounted on drop).
///
/// How a database file turns read-only under a running server: the kernel
/// remounts a file system read-only when it meets an error (ext4's
/// `trigger_fs_error` raises one on purpose). A plain `mount -o remount,ro`
/// is refused while sesame holds the database open for writing (`mount
/// point is busy`), and root ignores `chmod 0444`; this is the read-only
/// fault production meets. The kernel does not let such a file system
/// become writable again while it is mounted, so this fault ends the way
/// it does for an operator: stop sesame, repair, start again.
struct Ext4 {
    _dir: TempDir,
    image: PathBuf,
    mount: PathBuf,
}

impl Ext4 {
    fn create() -> Ext4 {
        let dir = TempDir::new().expect("temp dir");
        let image = dir.path().join("disk.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).expect("mount point");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(64 << 20))
            .expect("image file");
        run_ok("mkfs.ext4", &["-q", "-F", image.to_str().expect("utf-8")]);
        let ext4 = Ext4 {
            _dir: dir,
            image,
            mount,
        };
        ext4.attach();
        ext4
    }

    fn attach(&self) {
        run_ok(
            "mount",
            &[
                "-o",
                "loop,errors=remount-ro",
                self.image.to_str().expect("utf-8"),
                self.mount.to_str().expect("utf-8"),
            ],
        );
    }

    /// Has the kernel meet an error: the file system turns read-only.
    fn fail(&self) {
        let mounts = std::fs::read_to_string("/proc/mounts").expect("/proc/mounts");
        let mount = self.mount.to_str().expect("utf-8");
        let device = mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(mount))
            .and_then(|l| l.split(' ').next())
            .expect("the file system is mounted");
        let name = Path::new(device).file_name().expect("a device name");
        let trigger = Path::new("/sys/fs/ext4")
            .join(name)
            .join("trigger_fs_error");
        std::fs::write(&trigger, "sesame fault test\n")
            .unwrap_or_else(|e| panic!("writing {}: {e}", trigger.display()));
    }

    /// What an operator does once sesame is stopped: unmount, check, mount.
    fn repair(&self) {
        run_ok("umount", &[self.mount.to_str().expect("utf-8")]);
        let fsck = std::process::Command::new("e2fsck")
            .args(["-f", "-y", self.image.to_str().expect("utf-8")])
            .output()
            .expect("run e2fsck");
        // 0: clean, 1: errors corrected.
        assert!(
            matches!(fsck.status.code(), Some(0 | 1)),
            "e2fsck: {}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        self.attach();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l", self.mount.to_str().unwrap_or_default()])
            .status();
    }
}

#[tokio::test]
async fn a_file_system_turned_read_only_answers_503_keeps_reads_and_loses_no_acknowledged_write() {
    if sqlite_only("the file system that turns read-only is the one under the SQLite file") {
        return;
    }
    let disk = Ext4::create();
    let mail = MailServer::start().await;
    let mut server = serve(&disk.mount, &mail, &[]).await;
    let client = Api::new(&server.address);
    let token = active_user(&client, &mail, "reader@example.com").await;
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let email = format!("before-{i}@example.com");
        let answer = client.signup(&Signup::new(&email)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        acknowledged.push(email);
    }

    disk.fail();
    for i in 0..10 {
        let email = format!("read-only-{i}@example.com");
        let answer = client.signup(&Signup::new(&email)).await;
        match answer.status {
            StatusCode::CREATED => acknowledged.push(email),
            _ => assert_storage_unavailable(&answer, "a signup on a read-only file system"),
        }
    }
    assert!(
        !acknowledged.iter().any(|e| e.starts_with("read-only-")),
        "nothing is written to a read-only file system"
    );
    assert_eq!(ready(&client).await, StatusCode::SERVICE_UNAVAILABLE);
    let me = client.me(&token).await;
    assert_eq!(me.status, StatusCode::OK, "reads keep working: {}", me.body);
    // (Which signups were kept is checked after the repair: see the full
    // disk test for why a login is no probe during a fault.)
    let login = client.login(&acknowledged[0], PASSWORD).await;
    assert_storage_unavailable(&login, "a login during a storage fault");
    assert_eq!(count_log(&server, FAULT_LOG), 1, "{}", server.output());

    // Still read-only seconds later (the probe keeps failing quietly).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(ready(&client).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(count_log(&server, FAULT_LOG), 1, "{}", server.output());

    stop(&mut server).await;
    disk.repair();
    assert_eq!(integrity(&disk.mount).await, "ok");
    let mut server = serve(&disk.mount, &mail, &[]).await;
    let client = Api::new(&server.address);
    assert_all_known(&client, &acknowledged, "after the repair").await;
    let answer = client.signup(&Signup::new("later@example.com")).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(ready(&client).await, StatusCode::OK);
    stop(&mut server).await;
}
