//! The `sesame` binary as a real process: for the command line, start-up
//! errors, signals and crashes, which an in-process server cannot show.
// Not every test uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::support::app::WAIT;
use crate::support::backend;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sesame");

/// A command for the binary in `dir`, with a clean environment: no
/// developer `SESAME_*` variable and no stray `.env` can leak in. The
/// database is the directory's ([`backend::database_url`]: `dir/sesame.db`
/// on SQLite); argon2 is cheap unless a test overrides it.
pub fn sesame(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .current_dir(dir)
        .env("SESAME_DATABASE_URL", database_url(dir))
        .env("SESAME_BIND", "127.0.0.1:0")
        .env("SESAME_LOG_FORMAT", "json")
        .env("SESAME_ARGON2_MEMORY_KIB", "1024")
        .env("SESAME_ARGON2_ITERATIONS", "1")
        .env("SESAME_OUTBOX_RETRY_BASE_MS", "50")
        .env("SESAME_OUTBOX_RETRY_MAX_MS", "500")
        .env("SESAME_IP_RATE_LIMIT", "0")
        .env("SESAME_EMAIL_MIN_INTERVAL_SECS", "0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// The database URL of a test directory.
pub fn database_url(dir: &Path) -> String {
    backend::database_url(dir)
}

/// The SQLite file of a test directory (on SQLite).
pub fn db_file(dir: &Path) -> PathBuf {
    dir.join("sesame.db")
}

/// What a finished command printed.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to completion (within [`WAIT`]).
pub async fn run(mut cmd: Command) -> Finished {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let output = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("the command finishes in time")
        .expect("the command runs");
    Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running `sesame serve`, its address and everything it printed.
pub struct Server {
    child: Child,
    pub address: String,
    output: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the server and waits until it listens.
    pub async fn start(cmd: Command) -> Server {
        Self::try_start(cmd)
            .await
            .unwrap_or_else(|(status, output)| panic!("sesame exited with {status}:\n{output}"))
    }

    /// Starts the server; `Err` with the exit status and output if it exits
    /// before it listens.
    pub async fn try_start(mut cmd: Command) -> Result<Server, (ExitStatus, String)> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn sesame");
        let output = Arc::new(Mutex::new(String::new()));
        // Read both pipes to the end, always: a full pipe would stall the server.
        if let Some(out) = child.stdout.take() {
            tokio::spawn(collect(out, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(collect(err, output.clone()));
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let port = listening_port(&lock(&output));
            if let Some(port) = port {
                return Ok(Server {
                    child,
                    address: format!("http://127.0.0.1:{port}"),
                    output,
                });
            }
            if let Some(status) = child.try_wait().expect("poll sesame") {
                // Let the readers drain what was printed before the exit.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err((status, lock(&output).clone()));
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "sesame did not start listening within {WAIT:?}:\n{}",
                lock(&output)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("sesame is still running")
    }

    /// Sends SIGTERM, as systemd does on `systemctl stop`.
    pub async fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// SIGKILL: no clean-up of any kind, like a power cut for the process.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("SIGKILL sesame");
    }

    /// Waits for the process to exit (within [`WAIT`]).
    pub async fn wait(&mut self) -> ExitStatus {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("sesame did not exit within {WAIT:?}:\n{}", self.output()))
            .expect("wait for sesame");
        // Let the readers drain the last lines.
        tokio::time::sleep(Duration::from_millis(50)).await;
        status
    }

    /// Everything printed so far, stdout and stderr interleaved.
    pub fn output(&self) -> String {
        lock(&self.output).clone()
    }

    /// The JSON log lines printed so far.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.output()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

async fn collect(pipe: impl AsyncRead + Unpin, into: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut all = lock(&into);
        all.push_str(&line);
        all.push('\n');
    }
}

/// The port from the start-up line `sesame listening on http://127.0.0.1:PORT; …`.
impl Server {
    /// `http://127.0.0.1:PORT` of the metrics listener, from the log line
    /// that announced it.
    pub fn metrics_address(&self) -> Option<String> {
        let output = self.output();
        let rest = output.split("metrics on http://127.0.0.1:").nth(1)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some(format!("http://127.0.0.1:{digits}"))
    }
}

fn listening_port(output: &str) -> Option<u16> {
    let rest = output.split("listening on http://127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
