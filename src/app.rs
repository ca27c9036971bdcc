//! Builds the running service: database, keys, hasher, outbox worker and
//! routes, bound to a port (port 0 in tests).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use poem::endpoint::make_sync;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, Server};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::api;
use crate::config::{Config, MailTransport};
use crate::domain::password::PasswordHasher;
use crate::domain::signing::SigningKeys;
use crate::error::{ApiError, ErrorCode};
use crate::http::{self, AllowedMethods};
use crate::limits::{ClientIp, IpRateLimits};
use crate::mail::transport::Transport;
use crate::mail::worker::OutboxWorker;
use crate::state::AppState;
use crate::store::Store;

/// How long in-flight requests may take to finish after a shutdown request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A bound, running server.
pub struct Application {
    port: u16,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    worker: JoinHandle<()>,
}

impl Application {
    /// Opens the database, loads or makes the signing key, binds the
    /// listener and starts serving and delivering email in the background.
    pub async fn start(config: Config) -> anyhow::Result<Application> {
        let store = Store::open(&config.database_url).await?;
        let keys = SigningKeys::load(&config, &store)
            .await
            .context("loading signing keys failed")?;
        let hasher = PasswordHasher::new(config.argon2, config.hash_concurrency).await?;
        let transport = Transport::new(&config.mail)?;
        if matches!(config.mail, MailTransport::Log) {
            tracing::warn!(
                "SESAME_SMTP_URL is not set: emails, with their codes and links, are written \
                 to this log. Fine for trying sesame out; set SMTP for real users."
            );
        }
        let acceptor = TcpListener::bind(config.bind.to_string())
            .into_acceptor()
            .await
            .with_context(|| format!("SESAME_BIND: cannot listen on {}", config.bind))?;
        let local = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("listener has no local address")?;

        let mail_queued = Arc::new(Notify::new());
        let rate_limits = IpRateLimits::new(config.ip_rate_limit, config.ip_rate_window);
        let state = Arc::new(AppState {
            config,
            store,
            hasher,
            keys,
            mail_queued: mail_queued.clone(),
            rate_limits,
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
        };
        let worker = tokio::spawn(worker.run(shutdown_rx.clone()));

        let routes = routes(state.clone());
        let mut stop = shutdown_rx;
        let server = tokio::spawn(async move {
            Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    routes,
                    async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    },
                    Some(SHUTDOWN_GRACE),
                )
                .await
        });
        tracing::info!("sesame listening on http://{local}; Swagger UI at http://{local}/docs");
        Ok(Application {
            port: local.port(),
            state,
            shutdown,
            server,
            worker,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
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
    /// finish, then closes the database.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.server
            .await
            .context("server task panicked")?
            .context("server failed")?;
        self.worker.await.context("outbox worker panicked")?;
        self.state.store.close().await;
        Ok(())
    }
}

/// All routes: the API, its spec, Swagger UI, with the shared middleware.
pub fn routes(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    let service = api::service(&state.config.public_url);
    let spec = service.spec();
    let docs_html = service.swagger_ui_html();
    let gate = Arc::new(Gate {
        allowed: AllowedMethods::from_spec(&spec),
        max_body: state.config.max_body_bytes,
        docs_csp: http::docs_csp(&docs_html, &state.config.public_url),
    });
    let spec_endpoint = make_sync(move |_| {
        Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(spec.clone())
    });
    let docs_endpoint = make_sync(move |_| {
        Response::builder()
            .content_type("text/html; charset=utf-8")
            .body(docs_html.clone())
    });
    let cors = http::cors(&state.config.cors_origins);
    Route::new()
        .at("/openapi.json", spec_endpoint)
        .at("/docs", docs_endpoint)
        .nest("/", service)
        .with_if(cors.is_some(), cors.unwrap_or_default())
        .data(state.clone())
        .around(move |ep, req| {
            let gate = gate.clone();
            let state = state.clone();
            async move { Ok(handle(ep, req, &gate, &state).await) }
        })
}

/// What the request middleware needs, computed once at start-up.
struct Gate {
    allowed: AllowedMethods,
    max_body: usize,
    /// The Content-Security-Policy of the Swagger UI page (hashes of its inline scripts).
    docs_csp: String,
}

/// Every request passes here: client IP, rate limit, body limit, error
/// mapping, headers, and one log line.
async fn handle<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    gate: &Gate,
    state: &AppState,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: query strings can carry codes and tokens (email links).
    let path = req.uri().path().to_owned();
    let client_ip = http::client_ip(&req, &state.config.trusted_proxies);
    req.extensions_mut().insert(client_ip);
    let result = match admit(req, gate, state, &client_ip).await {
        Ok(req) => ep.call(req).await.map(IntoResponse::into_response),
        Err(err) => Err(err),
    };
    let mut resp = match result {
        Ok(resp) => resp,
        Err(err) => http::error_response(err, &path, &gate.allowed),
    };
    http::add_security_headers(
        &mut resp,
        (path == "/docs").then_some(gate.docs_csp.as_str()),
    );
    tracing::info!(
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

/// Refuses a request over its IP's rate limit or with a body over the limit.
async fn admit(
    req: Request,
    gate: &Gate,
    state: &AppState,
    client: &ClientIp,
) -> poem::Result<Request> {
    if let Some(limits) = &state.rate_limits {
        if let Err(wait) = limits.check(req.method(), req.uri().path(), client.0) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                "Too many requests; try again later",
            )
            .with_retry_after(secs)
            .into());
        }
    }
    http::limit_body(req, gate.max_body).await
}

/// Periodic housekeeping: keeps the rate limiters' memory bounded by
/// forgetting recovered IPs, and prunes idle failed-login counts.
async fn housekeeping(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let period = state.config.ip_rate_window.min(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.wait_for(|stopped| *stopped) => return,
        }
        if let Some(limits) = &state.rate_limits {
            limits.prune();
        }
        if let Err(e) = state.store.prune_unknown_login_failures().await {
            tracing::warn!(
                error = format!("{e:#}"),
                "pruning failed-login counts failed"
            );
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
