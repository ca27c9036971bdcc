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
use crate::config::{Config, JwtSigning, MailTransport};
use crate::domain::password::PasswordHasher;
use crate::domain::tokens::Keyring;
use crate::http::{self, AllowedMethods};
use crate::mail::transport::Transport;
use crate::mail::worker::OutboxWorker;
use crate::pages;
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
        let keys = match &config.jwt {
            JwtSigning::EdDsa => Keyring::eddsa(
                &store
                    .signing_keys()
                    .await
                    .context("loading signing keys failed")?,
                &config.public_url,
                &config.jwt_audience,
                config.jwt_leeway,
            )?,
            JwtSigning::Hs256(secret) => Keyring::hs256(
                secret.expose().as_bytes(),
                &config.public_url,
                &config.jwt_audience,
                config.jwt_leeway,
            ),
        };
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
        let state = Arc::new(AppState {
            config,
            store,
            hasher,
            keys,
            mail_queued: mail_queued.clone(),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);

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

/// All routes: the API, its spec, Swagger UI and the pages behind the links
/// in emails, with the shared middleware.
pub fn routes(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    let service = api::service(&state.config.public_url);
    let spec = service.spec();
    let mut allowed = AllowedMethods::from_spec(&spec);
    for (path, methods) in pages::PATHS {
        allowed.add(path, methods);
    }
    let allowed = Arc::new(allowed);
    let docs = service.swagger_ui();
    let spec_endpoint = make_sync(move |_| {
        Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(spec.clone())
    });
    let max_body = state.config.max_body_bytes;
    pages::mount(Route::new())
        .at("/openapi.json", spec_endpoint)
        .nest("/docs", docs)
        .nest("/", service)
        .data(state)
        .around(move |ep, req| {
            let allowed = allowed.clone();
            async move { Ok(handle(ep, req, max_body, &allowed).await) }
        })
}

/// Every request passes here: body limit, error mapping, headers, and one log line.
async fn handle<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    max_body: usize,
    allowed: &AllowedMethods,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: query strings can carry codes and tokens (email links).
    let path = req.uri().path().to_owned();
    let result = match http::limit_body(req, max_body).await {
        Ok(req) => ep.call(req).await.map(IntoResponse::into_response),
        Err(err) => Err(err),
    };
    let mut resp = match result {
        Ok(resp) => resp,
        Err(err) => http::error_response(err, &path, allowed),
    };
    http::add_security_headers(&mut resp);
    tracing::info!(
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    resp
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
