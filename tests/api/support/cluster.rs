//! Several `sesame serve` processes on one PostgreSQL database, as behind
//! a load balancer: the real binary ([`super::process`]), each instance on
//! a port of its own, all sending mail to one SMTP URL.
//!
//! Only with `SESAME_TEST_POSTGRES_URL` (a server where the tests may
//! CREATE DATABASE): [`postgres_or_skip`] says why a test does nothing
//! without it. In the suite's PostgreSQL pass the cluster uses its test
//! directory's database ([`backend::database_url`]); otherwise it creates
//! a database of its own and drops it when it goes.
// Not every test uses every helper.
#![allow(dead_code)]

use std::io::Write;

use sesame::config::Argon2Params;
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;

use super::app::PASSWORD;
use super::backend;
use super::client::Api;
use super::database::TestDb;
use super::process::{self, Finished, Server};

/// The variable naming the PostgreSQL server the cluster tests use.
const ADMIN_URL_VAR: &str = "SESAME_TEST_POSTGRES_URL";

/// How many of each instance's last log lines a failed test shows.
const LOG_TAIL: usize = 40;

/// `true` when the cluster tests can run; otherwise prints one line saying
/// why the calling test is skipped. Use as
/// `if !postgres_or_skip() { return; }`.
pub fn postgres_or_skip() -> bool {
    if std::env::var_os(ADMIN_URL_VAR).is_some() {
        return true;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    // Straight to stderr: the harness hides what a passing test prints.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: several instances need one PostgreSQL database; \
         set {ADMIN_URL_VAR} (scripts/postgres start; scripts/postgres url)"
    );
    false
}

/// Instances of sesame sharing one database.
pub struct Cluster {
    /// The running instances, in start order (A, B, C, ...).
    servers: Vec<Server>,
    /// A typed client per instance, in the same order.
    pub apis: Vec<Api>,
    /// The database every instance uses.
    pub database_url: String,
    /// The working directory of every instance (and of `sesame keys rotate`).
    dir: TempDir,
    /// The database this cluster created, dropped with it.
    owned_database: Option<String>,
}

impl Cluster {
    /// Starts `instances` servers, one after the other (so they do not race
    /// to migrate a new database or make its first key), all sending mail
    /// to `smtp_url`, with `env` on top of the test defaults of
    /// [`process::sesame`].
    pub async fn start(instances: usize, smtp_url: &str, env: &[(&str, &str)]) -> Cluster {
        let dir = TempDir::new().expect("temp dir");
        let (database_url, owned_database) = if backend::on_postgres() {
            (backend::database_url(dir.path()), None)
        } else {
            let name = format!("sesame_multi_{:016x}", rand::random::<u64>());
            admin_statement(&format!("CREATE DATABASE {name}")).await;
            (backend::postgres_url_of(&name), Some(name))
        };
        let mut cluster = Cluster {
            servers: Vec::new(),
            apis: Vec::new(),
            database_url,
            dir,
            owned_database,
        };
        for _ in 0..instances {
            let mut cmd = cluster.command();
            cmd.env("SESAME_SMTP_URL", smtp_url)
                .envs(env.iter().copied())
                .arg("serve");
            let server = Server::start(cmd).await;
            cluster.apis.push(Api::new(&server.address));
            cluster.servers.push(server);
        }
        cluster
    }

    /// The client of instance `i` (0: A, 1: B, 2: C).
    pub fn api(&self, i: usize) -> &Api {
        &self.apis[i]
    }

    /// The instance a round-robin balancer sends request `n` to.
    pub fn round_robin(&self, n: usize) -> &Api {
        &self.apis[n % self.apis.len()]
    }

    /// Everything instance `i` printed, for a failure message.
    pub fn output(&self, i: usize) -> String {
        self.servers[i].output()
    }

    /// The shared database, for what the API does not show.
    pub fn db(&self) -> TestDb {
        TestDb::at(&self.database_url)
    }

    /// Runs `sesame keys rotate` on the shared database while the instances run.
    pub async fn keys_rotate(&self) -> Finished {
        let mut cmd = self.command();
        cmd.args(["keys", "rotate"]);
        process::run(cmd).await
    }

    /// Makes an active admin on the shared database, as `sesame admin
    /// create` does (with the instances' cheap argon2 parameters).
    pub async fn create_admin(&self, email: &str) {
        let params = Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        sesame::cli::admin::create_admin(&self.database_url, params, email, PASSWORD)
            .await
            .expect("admin created");
    }

    /// The binary with the test defaults, on the shared database.
    fn command(&self) -> tokio::process::Command {
        let mut cmd = process::sesame(self.dir.path());
        cmd.env("SESAME_DATABASE_URL", &self.database_url);
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failed test: what each instance said is the first thing to read.
            for (i, server) in self.servers.iter().enumerate() {
                let output = server.output();
                let lines: Vec<&str> = output.lines().collect();
                let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
                let _ = writeln!(std::io::stderr(), "--- instance {i}, last lines:\n{tail}");
            }
        }
        // The servers first (SIGKILL on drop), then their database.
        self.servers.clear();
        if let Some(name) = self.owned_database.take() {
            // Drop cannot await: a thread with a runtime of its own.
            let dropped = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime to drop the database")
                    .block_on(admin_statement(&format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )));
            });
            // A failed drop leaves a database behind in a throwaway server;
            // it must not turn a passing test into a failing one.
            let _ = dropped.join();
        }
    }
}

/// Runs one statement on the admin connection.
async fn admin_statement(sql: &str) {
    let admin = std::env::var(ADMIN_URL_VAR).expect("checked by postgres_or_skip");
    // (The URL is not printed: it may hold a password.)
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("connect to {ADMIN_URL_VAR}: {e}"));
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}
