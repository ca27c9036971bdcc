//! The outbox worker: delivers queued emails strictly in queue order, so no
//! email is lost to an SMTP outage or a restart and none overtakes an
//! earlier one (a newer verification code never arrives before the old one).
//!
//! A transient failure (connection refused, 4xx) pauses the whole queue with
//! exponential backoff and retries the same email: when SMTP is down it is
//! down for every email, and the queue drains in order once it is back. A
//! permanent refusal (5xx) gives that one email up, so it cannot block the
//! queue forever. Delivery is at-least-once: a crash between a successful
//! send and marking the row sent re-sends that one email after restart.
//!
//! On shutdown the worker finishes the email it is sending (and records
//! it), then stops: the rest of the queue waits in the database.
//!
//! Several processes may share the database. Only the holder of the
//! outbox lease (a row in `outbox_lease`) delivers, so an email is not sent
//! by two of them and the order holds across processes. The holder renews
//! the lease while it works and gives it up once the queue is empty (or on
//! shutdown); a holder that died loses it after [`LEASE_TTL`]. A worker
//! that finds the lease taken looks again after [`LEASE_WAIT`]: the holder
//! delivers every queued email, whoever queued it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::transport::{Envelope, SendError, Transport};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::fault::fault_of;

/// Longest the worker sleeps without looking at the outbox.
const IDLE_POLL: Duration = Duration::from_secs(30);
/// Emails fetched per round.
const BATCH: u32 = 20;
/// How long the outbox lease lasts unless renewed; it is renewed every
/// third of that while its holder works, so one slow SMTP exchange does
/// not lose it, and a crashed holder delays other processes by at most this.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How soon a worker that found the lease taken looks again.
const LEASE_WAIT: Duration = Duration::from_secs(1);

/// How a round of delivery ended without a transient failure.
enum Round {
    /// The queue is empty (or shutdown was asked for).
    Drained,
    /// Another process holds the lease and delivers.
    Elsewhere,
}

/// Everything the worker needs.
pub struct OutboxWorker {
    pub store: Store,
    pub transport: Transport,
    pub from: String,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Woken when a request queues an email.
    pub wake: Arc<Notify>,
    /// Counts deliveries, retries and give-ups.
    pub metrics: Arc<Metrics>,
    /// This worker's name on the outbox lease (unique per process start).
    pub holder: String,
}

impl OutboxWorker {
    /// Runs until `shutdown` turns true; finishes the email it is sending first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let pause = match self.deliver_pending(&shutdown).await {
                Ok(Round::Drained) => {
                    failures = 0;
                    IDLE_POLL
                }
                Ok(Round::Elsewhere) => {
                    failures = 0;
                    LEASE_WAIT
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = self.backoff(failures);
                    // A storage fault is logged once by the store.
                    if fault_of(&e).is_some() {
                        tracing::debug!(error = format!("{e:#}"), "outbox paused");
                    } else {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            retry_in_ms = delay.as_millis() as u64,
                            "outbox paused"
                        );
                    }
                    delay
                }
            };
            tokio::select! {
                // A new email does not cut a backoff short: SMTP is still down.
                _ = self.wake.notified(), if failures == 0 => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// With the outbox lease, sends pending emails in order until the queue
    /// is empty or shutdown is asked for (`Drained`), or a transient failure
    /// pauses it (`Err`); then gives the lease up. `Elsewhere` if another
    /// process holds the lease.
    async fn deliver_pending(&self, shutdown: &watch::Receiver<bool>) -> anyhow::Result<Round> {
        // A read first, so that an idle server's polls write nothing.
        if self.store.pending_emails(1).await?.is_empty() {
            return Ok(Round::Drained);
        }
        if !self.hold_lease().await? {
            return Ok(Round::Elsewhere);
        }
        let round = tokio::select! {
            round = self.drain(shutdown) => round,
            never = self.keep_lease() => match never {},
        };
        if let Err(e) = self.store.release_outbox_lease(&self.holder).await
            && fault_of(&e).is_none()
        {
            tracing::warn!(
                error = format!("{e:#}"),
                "giving up the outbox lease failed"
            );
        }
        round
    }

    /// Takes or renews the outbox lease for [`LEASE_TTL`]; `false` if
    /// another process holds it.
    async fn hold_lease(&self) -> anyhow::Result<bool> {
        self.store.take_outbox_lease(&self.holder, LEASE_TTL).await
    }

    /// Renews the lease every third of its lifetime; never returns (it is
    /// dropped when the round ends, so a send is never cut short).
    async fn keep_lease(&self) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(LEASE_TTL / 3).await;
            if let Err(e) = self.hold_lease().await
                && fault_of(&e).is_none()
            {
                tracing::warn!(error = format!("{e:#}"), "renewing the outbox lease failed");
            }
        }
    }

    async fn drain(&self, shutdown: &watch::Receiver<bool>) -> anyhow::Result<Round> {
        loop {
            let pending = self.store.pending_emails(BATCH).await?;
            if pending.is_empty() {
                return Ok(Round::Drained);
            }
            for email in &pending {
                if *shutdown.borrow() {
                    return Ok(Round::Drained);
                }
                // Still ours? (Lost only if renewing failed for a whole TTL.)
                if !self.hold_lease().await? {
                    return Ok(Round::Elsewhere);
                }
                let envelope = Envelope {
                    to: &email.recipient,
                    subject: &email.subject,
                    text: &email.text_body,
                    html: &email.html_body,
                };
                match self.transport.send(&self.from, envelope).await {
                    Ok(()) => {
                        self.store.mark_email_sent(email.id).await?;
                        self.metrics.email_sent();
                        tracing::info!(outbox_id = email.id, "email delivered");
                    }
                    Err(SendError::Permanent(reason)) => {
                        tracing::error!(
                            outbox_id = email.id,
                            error = reason,
                            "email refused for good; given up"
                        );
                        self.store
                            .mark_email_failed(email.id, &reason, true)
                            .await?;
                        self.metrics.email_failed();
                    }
                    Err(SendError::Transient(reason)) => {
                        self.store
                            .mark_email_failed(email.id, &reason, false)
                            .await?;
                        self.metrics.email_retry();
                        anyhow::bail!("delivering email {} failed: {reason}", email.id);
                    }
                }
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.retry_base.saturating_mul(factor).min(self.retry_max)
    }
}
