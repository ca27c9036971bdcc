//! What every request handler shares.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Config;
use crate::domain::password::PasswordHasher;
use crate::flows::signing::SigningKeys;
use crate::http::rate_limits::IpRateLimits;
use crate::metrics::Metrics;
use crate::store::Store;

/// The services built at start-up, shared by all requests.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub hasher: PasswordHasher,
    /// The JWT keys, reloaded when `sesame keys rotate` adds one.
    pub keys: SigningKeys,
    /// Wakes the outbox worker after a request queued an email.
    pub mail_queued: Arc<Notify>,
    /// Per-IP limits on anonymous endpoints; `None` when turned off.
    pub rate_limits: Option<IpRateLimits>,
    /// This application's metrics (its own registry).
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Tells the outbox worker there is mail to send. Call it once per
    /// email queued, after the transaction that queued it committed: it
    /// also counts the email for `/metrics`.
    pub fn wake_mailer(&self) {
        self.metrics.email_queued();
        self.mail_queued.notify_one();
    }
}
