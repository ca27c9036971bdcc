//! What every request passes through: client IP, rate limit, body limit,
//! error mapping and headers; then a request id, metrics and one log line.

use std::sync::Arc;
use std::time::Instant;

use poem::http::HeaderName;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;
use tracing::Instrument;

use super::allowed_methods::AllowedMethods;
use super::body::limit_body;
use super::error::{ApiError, BUSY_RETRY_AFTER, ErrorCode};
use super::headers;
use super::rate_limits::ClientIp;
use super::telemetry::{REQUEST_ID_HEADER, RequestId, RouteNames};
use crate::metrics::Metrics;
use crate::state::AppState;

/// What every request passes through, built once per application.
pub(super) struct Pipeline {
    pub(super) allowed: AllowedMethods,
    pub(super) routes: RouteNames,
    pub(super) metrics: Arc<Metrics>,
    pub(super) max_body: usize,
    /// How long a request's body may take to arrive.
    pub(super) body_timeout: std::time::Duration,
    /// The Swagger UI page, for its Content-Security-Policy.
    pub(super) docs: Arc<super::routes::DocsPage>,
    pub(super) state: Arc<AppState>,
}

impl Pipeline {
    /// Client IP, rate limit, body limit, error mapping and headers; then a
    /// request id, metrics and one log line. Logs carry the route template, never the query string
    /// (email links put codes and tokens there) nor any header or body.
    pub(super) async fn handle<E: Endpoint>(&self, ep: Arc<E>, mut req: Request) -> Response {
        let started = Instant::now();
        let request_id = RequestId::from_headers(req.headers());
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let client_ip = headers::client_ip(&req, &self.state.config.trusted_proxies);
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
                    if err
                        .downcast_ref::<ApiError>()
                        .is_some_and(|e| e.code() == ErrorCode::Busy)
                    {
                        // Held: see `PasswordHasher::hold_refusal`.
                        self.state.hasher.hold_refusal(BUSY_RETRY_AFTER).await;
                    }
                    (error_response(err, &path, &self.allowed), operation)
                }
            }
        }
        .instrument(span)
        .await;
        drop(in_flight);
        headers::add_security_headers(&mut resp, (path == "/docs").then(|| self.docs.csp()));
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
            if let Err(wait) = limits.admit(req.method(), req.uri().path(), client.0).await {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return Err(ApiError::new(
                    ErrorCode::RateLimited,
                    "Too many requests; try again later",
                )
                .with_retry_after(secs)
                .into());
            }
        }
        limit_body(req, self.max_body, self.body_timeout).await
    }
}

/// Renders any error as the contract's body.
pub fn error_response(err: poem::Error, path: &str, allowed: &AllowedMethods) -> Response {
    if err.is::<ApiError>() {
        return err.into_response();
    }
    let mut api_err = ApiError::from_poem(&err);
    if api_err.code() == ErrorCode::MethodNotAllowed {
        if let Some(methods) = allowed.for_path(path) {
            api_err = api_err.with_allow(methods);
        }
    }
    poem::Error::from(api_err).into_response()
}

/// Renders an error raised outside the pipeline (by CORS) in the contract's shape.
pub fn bare_error_response(err: poem::Error) -> Response {
    let mut resp = poem::Error::from(ApiError::from_poem(&err)).into_response();
    headers::add_security_headers(&mut resp, None);
    resp
}
