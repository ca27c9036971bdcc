//! What every request handler shares.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Config;
use crate::domain::password::PasswordHasher;
use crate::domain::signing::SigningKeys;
use crate::limits::IpRateLimits;
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
}

impl AppState {
    /// Tells the outbox worker there is mail to send.
    pub fn wake_mailer(&self) {
        self.mail_queued.notify_one();
    }
}
