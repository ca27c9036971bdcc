//! Builds the running service: database, keys, hasher, outbox worker and
//! routes, bound to a port (port 0 in tests).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use poem::endpoint::make_sync;
use poem::http::HeaderName;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, Server, get, handler};
use poem_openapi::OperationId;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::api;
use crate::config::{Config, MailTransport};
use crate::domain::password::PasswordHasher;
use crate::domain::signing::SigningKeys;
use crate::error::{ApiError, ErrorCode};
use crate::http::{self, AllowedMethods};
use crate::limits::{ClientIp, IpRateLimits};
use crate::mail::transport::Transport;
use crate::mail::worker::OutboxWorker;
use crate::metrics::{self, Metrics};
use crate::pages;
use crate::state::AppState;
use crate::store::Store;
use crate::telemetry::{REQUEST_ID_HEADER, RequestId, RouteNames};

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
        // Bind first: a port in use is reported before the database is touched.
        let acceptor = TcpListener::bind(config.bind.to_string())
            .into_acceptor()
            .await
            .with_context(|| format!("SESAME_BIND: cannot listen on {}", config.bind))?;
        let local = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("listener has no local address")?;
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

        let mail_queued = Arc::new(Notify::new());
        let rate_limits = IpRateLimits::new(config.ip_rate_limit, config.ip_rate_window);
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

        let routes = routes(state.clone());
        let mut stop = shutdown_rx;
        let grace = state.config.shutdown_timeout;
        let server = tokio::spawn(async move {
            Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    routes,
                    async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    },
                    Some(grace),
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
    /// finish (each within `SESAME_SHUTDOWN_TIMEOUT_SECS`), then closes the
    /// database.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        // The server bounds its own wait for in-flight requests.
        self.server
            .await
            .context("server task panicked")?
            .context("server failed")?;
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

/// All routes: the API, its spec, Swagger UI, the metrics page and the
/// pages behind the links in emails, with the shared middleware.
pub fn routes(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    let service = api::service(&state.config.public_url);
    let spec = service.spec();
    let docs_html = service.swagger_ui_html();
    let allowed = pages::PATHS.iter().fold(
        AllowedMethods::from_spec(&spec)
            .with_route("/metrics", "GET, HEAD")
            .with_route("/", "GET, HEAD"),
        |allowed, (path, methods)| allowed.with_route(path, methods),
    );
    let pipeline = Arc::new(Pipeline {
        allowed,
        routes: RouteNames::from_spec(&spec),
        metrics: state.metrics.clone(),
        max_body: state.config.max_body_bytes,
        docs_csp: http::docs_csp(&docs_html, &state.config.public_url),
        state: state.clone(),
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
    pages::mount(Route::new())
        .at("/openapi.json", spec_endpoint)
        .at("/metrics", get(metrics_page))
        .at("/docs", docs_endpoint)
        .nest("/", service)
        .data(state.clone())
        .around(move |ep, req| {
            let pipeline = pipeline.clone();
            async move { Ok(pipeline.handle(ep, req).await) }
        })
        // CORS wraps the pipeline, so it only adds headers to answers that
        // are already in the contract's shape; its own refusals (an origin
        // not allowed) are mapped below.
        .with_if(cors.is_some(), cors.unwrap_or_default())
        .catch_all_error(|err| async move { http::bare_error_response(err) })
}

/// `GET /metrics`: Prometheus text format. Public like every route: restrict
/// it at the reverse proxy (see docs/deployment.md).
#[handler]
async fn metrics_page(state: Data<&Arc<AppState>>) -> poem::Result<Response> {
    let page = state.metrics.render(&state.store).await.map_err(|e| {
        ApiError::internal(anyhow::anyhow!("rendering the metrics page failed: {e}"))
    })?;
    Ok(Response::builder()
        .content_type(metrics::CONTENT_TYPE)
        .header(poem::http::header::CACHE_CONTROL, "no-store")
        .body(page))
}

/// What every request passes through, built once per application.
struct Pipeline {
    allowed: AllowedMethods,
    routes: RouteNames,
    metrics: Arc<Metrics>,
    max_body: usize,
    /// The Content-Security-Policy of the Swagger UI page (hashes of its inline scripts).
    docs_csp: String,
    state: Arc<AppState>,
}

impl Pipeline {
    /// Client IP, rate limit, body limit, error mapping and headers; then a
    /// request id, metrics and one log line. Logs carry the route template, never the query string
    /// (email links put codes and tokens there) nor any header or body.
    async fn handle<E: Endpoint>(&self, ep: Arc<E>, mut req: Request) -> Response {
        let started = Instant::now();
        let request_id = RequestId::from_headers(req.headers());
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let client_ip = http::client_ip(&req, &self.state.config.trusted_proxies);
        req.extensions_mut().insert(client_ip);
        let in_flight = self.metrics.in_flight();
        // Log lines written while handling (a 500's cause) carry the id too.
        let span = tracing::info_span!("request", request_id = %request_id);
        let (mut resp, operation) = async {
            let result = match self.admit(req, &client_ip).await {
                Ok(req) => ep.call(req).await.map(IntoResponse::into_response),
                Err(err) => Err(err),
            };
            match result {
                Ok(resp) => {
                    let operation = resp.data::<OperationId>().copied();
                    (resp, operation)
                }
                Err(err) => {
                    let operation = err.data::<OperationId>().copied();
                    (http::error_response(err, &path, &self.allowed), operation)
                }
            }
        }
        .instrument(span)
        .await;
        drop(in_flight);
        http::add_security_headers(
            &mut resp,
            (path == "/docs").then_some(self.docs_csp.as_str()),
        );
        if let Some(value) = request_id.header_value() {
            resp.headers_mut()
                .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
        }
        let route = self.routes.route(operation.as_ref(), &path, &self.allowed);
        let status = resp.status().as_u16();
        let latency = started.elapsed();
        self.metrics
            .request(method.as_str(), route, status, latency);
        if operation.is_some_and(|op| op.0 == "login") && status < 500 {
            self.metrics.login(resp.status().is_success());
        }
        tracing::info!(
            request_id = %request_id,
            method = %method,
            route,
            status,
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request"
        );
        resp
    }
}

impl Pipeline {
    /// Refuses a request over its IP's rate limit or with a body over the limit.
    async fn admit(&self, req: Request, client: &ClientIp) -> poem::Result<Request> {
        if let Some(limits) = &self.state.rate_limits {
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
        http::limit_body(req, self.max_body).await
    }
}

/// Periodic housekeeping: keeps the rate limiters' memory bounded by
/// forgetting recovered IPs, prunes idle failed-login counts, and deletes
/// sessions and emails that ended longer ago than `SESAME_RETENTION_SECS`.
async fn housekeeping(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(state.config.housekeeping_interval) => {}
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
        // A retention too long to subtract from now keeps everything.
        let Some(cutoff) = chrono::TimeDelta::from_std(state.config.retention)
            .ok()
            .and_then(|retention| chrono::Utc::now().checked_sub_signed(retention))
        else {
            continue;
        };
        match state.store.prune_ended(cutoff).await {
            Ok(pruned) if pruned.sessions + pruned.emails > 0 => tracing::info!(
                sessions = pruned.sessions,
                emails = pruned.emails,
                "deleted ended sessions and finished emails past the retention"
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
