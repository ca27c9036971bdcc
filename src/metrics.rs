//! Prometheus metrics for `GET /metrics`, one registry per [`Application`].
//!
//! Built on `prometheus-client`: every [`Metrics`] owns its own `Registry`,
//! so many applications in one process (the test suite) each count only
//! their own traffic. No global recorder is installed.
//!
//! Counters count events in this process since it started; the outbox depth
//! and active sessions are given to [`Metrics::render`] at each scrape (the
//! `/metrics` handler reads them from the database), so every instance
//! sharing a database reports the same numbers for those two. This module
//! reads no database itself.
//!
//! [`Application`]: crate::app::Application

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The `Content-Type` of the metrics page (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency buckets, in seconds (Prometheus' defaults).
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One answered request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// One route, for the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// How a login ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Every metric sesame exports.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_latency: LatencyFamily,
    in_flight: Gauge,
    logins: Family<LoginLabels, Counter>,
    signups: Counter,
    emails_queued: Counter,
    emails_sent: Counter,
    emails_failed: Counter,
    email_attempts_failed: Counter,
    outbox_depth: Gauge,
    active_sessions: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sesame");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            http_requests.clone(),
        );
        let http_latency: LatencyFamily =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register(
            "http_request_duration_seconds",
            "Time from receiving a request to its answer, by method and route template",
            http_latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being handled right now",
            in_flight.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Login attempts by result: succeeded (tokens issued) or failed (answered 4xx: \
             wrong credentials, unverified, disabled, locked, rate-limited or malformed)",
            logins.clone(),
        );
        for result in ["succeeded", "failed"] {
            let _ = logins.get_or_create(&LoginLabels { result });
        }
        let signups = Counter::default();
        registry.register("signups", "Accounts created", signups.clone());
        let emails_queued = Counter::default();
        registry.register(
            "emails_queued",
            "Emails written to the outbox",
            emails_queued.clone(),
        );
        let emails_sent = Counter::default();
        registry.register(
            "emails_sent",
            "Emails the SMTP server accepted (or the log transport wrote)",
            emails_sent.clone(),
        );
        let emails_failed = Counter::default();
        registry.register(
            "emails_failed",
            "Emails given up for good: refused permanently (5xx) or impossible to build",
            emails_failed.clone(),
        );
        let email_attempts_failed = Counter::default();
        registry.register(
            "email_delivery_retries",
            "Delivery attempts that failed transiently (SMTP down, 4xx) and will be retried",
            email_attempts_failed.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_depth",
            "Emails in the outbox waiting for delivery (read from the database)",
            outbox_depth.clone(),
        );
        let active_sessions = Gauge::default();
        registry.register(
            "active_sessions",
            "Sessions neither revoked nor expired (read from the database)",
            active_sessions.clone(),
        );
        registry.register(
            "build",
            "The running sesame version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Metrics {
            registry,
            http_requests,
            http_latency,
            in_flight,
            logins,
            signups,
            emails_queued,
            emails_sent,
            emails_failed,
            email_attempts_failed,
            outbox_depth,
            active_sessions,
        }
    }

    /// Counts an answered request and its latency.
    pub fn request(&self, method: &str, route: &str, status: u16, latency: Duration) {
        self.http_requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(latency.as_secs_f64());
    }

    /// Marks a request as in flight until the guard is dropped (also when
    /// the client goes away and the request future is dropped).
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Counts a login attempt.
    pub fn login(&self, succeeded: bool) {
        let result = if succeeded { "succeeded" } else { "failed" };
        self.logins.get_or_create(&LoginLabels { result }).inc();
    }

    /// Counts a new account.
    pub fn signup(&self) {
        self.signups.inc();
    }

    /// Counts an email written to the outbox.
    pub fn email_queued(&self) {
        self.emails_queued.inc();
    }

    /// Counts a delivered email.
    pub fn email_sent(&self) {
        self.emails_sent.inc();
    }

    /// Counts an email given up for good.
    pub fn email_failed(&self) {
        self.emails_failed.inc();
    }

    /// Counts a delivery attempt that will be retried.
    pub fn email_retry(&self) {
        self.email_attempts_failed.inc();
    }

    /// Renders the page, with the gauges that live in the database as the
    /// caller read them. A gauge the caller could not read (`None`) keeps
    /// its last value: the request counters are still worth scraping.
    pub fn render(&self, stored: &StoredGauges) -> Result<String, std::fmt::Error> {
        if let Some(n) = stored.outbox_depth {
            self.outbox_depth.set(n);
        }
        if let Some(n) = stored.active_sessions {
            self.active_sessions.set(n);
        }
        let mut page = String::new();
        prometheus_text::encode(&mut page, &self.registry)?;
        Ok(page)
    }
}

/// The numbers of the metrics page that the database holds, read at each
/// scrape by the caller; `None` when it could not be read.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoredGauges {
    /// Emails waiting for delivery.
    pub outbox_depth: Option<i64>,
    /// Sessions neither revoked nor expired.
    pub active_sessions: Option<i64>,
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
