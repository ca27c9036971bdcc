//! The route table: the API, its spec, Swagger UI and the pages behind the
//! links in emails, wrapped in the request pipeline; and, for its own
//! listener, the metrics page.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use poem::endpoint::make_sync;
use poem::web::Data;
use poem::{Endpoint, EndpointExt, Response, Route, get, handler};

use super::allowed_methods::AllowedMethods;
use super::error::ApiError;
use super::headers;
use super::pipeline::{Pipeline, bare_error_response};
use super::telemetry::RouteNames;
use crate::api;
use crate::metrics;
use crate::pages;
use crate::state::AppState;

/// All routes of the API listener: the API, its spec, Swagger UI and the
/// pages behind the links in emails, with the shared middleware. Not
/// `/metrics` (see [`metrics_routes`]): it answers `404` here.
pub fn routes(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    let service = api::service(&state.config.public_url);
    let spec = service.spec();
    let docs = Arc::new(DocsPage::new(&state.config.public_url));
    let allowed = pages::PATHS.iter().fold(
        AllowedMethods::from_spec(&spec)
            // `GET /`, hidden from the spec (see `api::system`).
            .with_route("/", "GET, HEAD"),
        |allowed, (path, methods)| allowed.with_route(path, methods),
    );
    let pipeline = Arc::new(Pipeline {
        allowed,
        routes: RouteNames::from_spec(&spec),
        metrics: state.metrics.clone(),
        max_body: state.config.max_body_bytes,
        body_timeout: state.config.body_timeout,
        docs: docs.clone(),
        state: state.clone(),
    });
    let spec_bytes = Bytes::from(spec);
    let spec_endpoint = make_sync(move |_| {
        Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(spec_bytes.clone())
    });
    let docs_endpoint = make_sync(move |_| {
        Response::builder()
            .content_type("text/html; charset=utf-8")
            .body(docs.html())
    });
    let cors = headers::cors(&state.config.cors_origins);
    pages::mount(Route::new())
        .at("/openapi.json", spec_endpoint)
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
        .catch_all_error(|err| async move { bare_error_response(err) })
}

/// The Swagger UI page and its Content-Security-Policy, made at its first
/// request: the page carries Swagger UI's script inline (1.7 MB), which a
/// server that nobody browses the docs of should not hold (it was a
/// quarter of the idle memory, with the binary's pages it is built from).
pub(super) struct DocsPage {
    public_url: String,
    page: OnceLock<(Bytes, String)>,
}

impl DocsPage {
    fn new(public_url: &str) -> DocsPage {
        DocsPage {
            public_url: public_url.to_owned(),
            page: OnceLock::new(),
        }
    }

    fn page(&self) -> &(Bytes, String) {
        self.page.get_or_init(|| {
            let html = api::service(&self.public_url).swagger_ui_html();
            let csp = headers::docs_csp(&html, &self.public_url);
            (Bytes::from(html), csp)
        })
    }

    fn html(&self) -> Bytes {
        self.page().0.clone()
    }

    /// The page's Content-Security-Policy (hashes of its inline scripts).
    pub(super) fn csp(&self) -> &str {
        &self.page().1
    }
}

/// The metrics listener (`SESAME_METRICS_BIND`): `GET /metrics` and
/// nothing else (`404`, in the contract's shape).
pub fn metrics_routes(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    Route::new()
        .at("/metrics", get(metrics_page))
        .data(state)
        .catch_all_error(|err| async move { bare_error_response(err) })
}

/// `GET /metrics`: Prometheus text format, on the metrics listener only:
/// its counters (signups, emails queued) would tell a stranger which
/// addresses have accounts.
#[handler]
async fn metrics_page(state: Data<&Arc<AppState>>) -> poem::Result<Response> {
    let gauges = metrics::StoredGauges {
        outbox_depth: read_gauge(state.store.outbox_depth(), "reading the outbox depth").await,
        active_sessions: read_gauge(state.store.active_sessions(), "counting active sessions")
            .await,
    };
    let page = state.metrics.render(&gauges).map_err(|e| {
        ApiError::internal(anyhow::anyhow!("rendering the metrics page failed: {e}"))
    })?;
    Ok(Response::builder()
        .content_type(metrics::CONTENT_TYPE)
        .header(poem::http::header::CACHE_CONTROL, "no-store")
        .body(page))
}

/// A number the metrics page shows from the database; `None` (and a log
/// line) when the database does not answer: the request counters are still
/// worth scraping.
async fn read_gauge(read: impl Future<Output = anyhow::Result<i64>>, what: &str) -> Option<i64> {
    match read.await {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "{what} failed");
            None
        }
    }
}
