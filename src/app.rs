//! Builds the running service: database, keys, hasher, outbox worker and
//! routes (see [`crate::http`]), bound to a port (port 0 in tests); its
//! housekeeping and graceful stop.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, MailTransport};
use crate::domain::password::PasswordHasher;
use crate::flows::signing::SigningKeys;
use crate::http::rate_limits::IpRateLimits;
use crate::http::routes::{metrics_routes, routes};
use crate::http::server::{self, ConnectionTimeouts};
use crate::mail::transport::Transport;
use crate::mail::worker::OutboxWorker;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::Store;
use crate::store::db::Backend;

/// A bound, running server.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    metrics_server: Option<JoinHandle<std::io::Result<()>>>,
    worker: JoinHandle<()>,
}

impl Application {
    /// Opens the database, loads or makes the signing key, binds the
    /// listener and starts serving and delivering email in the background.
    pub async fn start(config: Config) -> anyhow::Result<Application> {
        // Bind first: a port in use is reported before the database is touched.
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("SESAME_BIND: cannot listen on {}", config.bind))?;
        let local = listener
            .local_addr()
            .context("listener has no local address")?;
        let metrics_listener = match config.metrics_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("SESAME_METRICS_BIND: cannot listen on {addr}"))?,
            ),
            None => None,
        };
        let store = Store::open_with(&config.database_url, config.db_busy_timeout).await?;
        let keys = SigningKeys::load(&config, &store)
            .await
            .context("loading signing keys failed")?;
        let hasher = PasswordHasher::new(config.argon2, config.hash_concurrency).await?;
        let transport = Transport::new(&config.mail, config.smtp_timeout)?;
        if matches!(config.mail, MailTransport::Log) {
            tracing::warn!(
                "SESAME_SMTP_URL is not set: emails, with their codes and links, are written \
                 to this log. Fine for trying sesame out; set SMTP for real users."
            );
        }

        let mail_queued = Arc::new(Notify::new());
        let rate_limits = IpRateLimits::new(
            config.ip_rate_limit,
            config.ip_rate_window,
            config.ipv6_prefix_len,
        )
        .map(|limits| match store.backend() {
            // Instances on one PostgreSQL database share their budgets.
            Backend::Postgres => {
                limits.shared_through(store.clone(), config.ip_rate_limit, config.ip_rate_window)
            }
            Backend::Sqlite => limits,
        });
        let metrics = Arc::new(Metrics::new());
        let state = Arc::new(AppState {
            config,
            store,
            hasher,
            keys,
            mail_queued: mail_queued.clone(),
            rate_limits,
            metrics: metrics.clone(),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        tokio::spawn(housekeeping(state.clone(), shutdown_rx.clone()));

        let worker = OutboxWorker {
            store: state.store.clone(),
            transport,
            from: state.config.mail_from.clone(),
            retry_base: state.config.outbox_retry_base,
            retry_max: state.config.outbox_retry_max,
            wake: mail_queued,
            metrics,
            holder: uuid::Uuid::now_v7().to_string(),
        };
        let worker = tokio::spawn(worker.run(shutdown_rx.clone()));

        let timeouts = ConnectionTimeouts {
            header: state.config.header_timeout,
            body: state.config.body_timeout,
            idle: state.config.idle_timeout,
        };
        let grace = state.config.shutdown_timeout;
        let server = tokio::spawn(server::serve(
            listener,
            routes(state.clone()),
            timeouts,
            shutdown_rx.clone(),
            grace,
        ));
        tracing::info!("sesame listening on http://{local}; Swagger UI at http://{local}/docs");
        release_free_heap();
        let mut metrics_port = None;
        let metrics_server = match metrics_listener {
            Some(listener) => {
                let address = listener
                    .local_addr()
                    .context("metrics listener has no address")?;
                metrics_port = Some(address.port());
                tracing::info!("metrics on http://{address}/metrics");
                Some(tokio::spawn(server::serve(
                    listener,
                    metrics_routes(state.clone()),
                    timeouts,
                    shutdown_rx,
                    grace,
                )))
            }
            None => None,
        };
        Ok(Application {
            port: local.port(),
            metrics_port,
            state,
            shutdown,
            server,
            metrics_server,
            worker,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `GET /metrics` is served on (`SESAME_METRICS_BIND`), if any.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// The shared state (tests use it to reach the store).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until the process gets SIGINT/SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        self.stop().await
    }

    /// Stops accepting, lets in-flight requests and the email being sent
    /// finish (each within `SESAME_SHUTDOWN_TIMEOUT_SECS`), then closes the
    /// database.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        // The server bounds its own wait for in-flight requests.
        self.server
            .await
            .context("server task panicked")?
            .context("server failed")?;
        if let Some(metrics_server) = self.metrics_server {
            metrics_server
                .await
                .context("metrics server task panicked")?
                .context("metrics server failed")?;
        }
        let grace = self.state.config.shutdown_timeout;
        let mut worker = self.worker;
        match tokio::time::timeout(grace, &mut worker).await {
            Ok(joined) => joined.context("outbox worker panicked")?,
            Err(_) => {
                // Its email stays queued and is sent again after the restart.
                tracing::warn!("the outbox worker did not finish in time; stopped it");
                worker.abort();
            }
        }
        self.state.store.close().await;
        tracing::info!("stopped; database closed");
        Ok(())
    }
}

/// Logs a housekeeping prune that failed (the next round tries again).
fn warn_if_failed(what: &str, pruned: anyhow::Result<u64>) {
    if let Err(e) = pruned {
        tracing::warn!(error = format!("{e:#}"), "pruning {what} failed");
    }
}

/// Periodic housekeeping: keeps the rate limiters' memory bounded by
/// forgetting recovered IPs, prunes idle failed-login counts, ended
/// wrong-code budgets, expired second login steps and passkey challenges,
/// and deletes sessions, emails and email reverts that ended longer ago
/// than `SESAME_RETENTION_SECS`.
async fn housekeeping(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(state.config.housekeeping_interval) => {}
            _ = shutdown.wait_for(|stopped| *stopped) => return,
        }
        if let Some(limits) = &state.rate_limits {
            limits.prune().await;
        }
        let store = &state.store;
        let window = crate::domain::CODE_BUDGET_WINDOW;
        warn_if_failed("failed-login counts", store.prune_login_failures().await);
        warn_if_failed(
            "wrong-code budgets",
            store.prune_code_failures(window).await,
        );
        warn_if_failed(
            "address request counts",
            store.prune_address_requests(window).await,
        );
        warn_if_failed(
            "expired second login steps",
            store.prune_mfa_challenges().await,
        );
        warn_if_failed(
            "expired passkey challenges",
            store.prune_passkey_challenges().await,
        );
        // A retention too long to subtract from now keeps everything.
        let Some(cutoff) = chrono::TimeDelta::from_std(state.config.retention)
            .ok()
            .and_then(|retention| chrono::Utc::now().checked_sub_signed(retention))
        else {
            continue;
        };
        match state.store.prune_ended(cutoff).await {
            Ok(pruned) if pruned.sessions + pruned.emails + pruned.reverts > 0 => tracing::info!(
                sessions = pruned.sessions,
                emails = pruned.emails,
                email_reverts = pruned.reverts,
                "deleted ended sessions, finished emails and email reverts past the retention"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "deleting ended sessions and emails failed"
            ),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Gives the heap's free pages back to the operating system, once start-up
/// is done. Start-up builds things once and drops them (the OpenAPI
/// document's tree, the migrations' bookkeeping, the SQLite connections'
/// schema parsing); glibc keeps memory freed in the middle of its heap
/// mapped, which was about 1.1 MiB of an idle server's RSS (measured with
/// `/proc/PID/smaps`). With another C library, nothing to do.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and walks glibc's own arenas
    // under their locks; any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
