//! The outbox worker: delivers queued emails in order, retrying with
//! exponential backoff, so no email is lost to an SMTP outage or a restart.
//!
//! Delivery is at-least-once: a crash between a successful send and marking
//! the row sent re-sends that one email after restart.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, watch};

use super::transport::{Envelope, Transport};
use crate::store::Store;

/// Longest the worker sleeps without checking the outbox.
const IDLE_POLL: Duration = Duration::from_secs(30);
/// Emails fetched per round.
const BATCH: u32 = 20;

/// Everything the worker needs.
pub struct OutboxWorker {
    pub store: Store,
    pub transport: Transport,
    pub from: String,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Woken when a request queues an email.
    pub wake: Arc<Notify>,
}

impl OutboxWorker {
    /// Runs until `shutdown` turns true; finishes the email it is sending first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let pause = match self.deliver_due().await {
                Ok(pause) => pause,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "outbox: reading the queue failed");
                    self.retry_base
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Sends what is due, in order; stops at the first failure so later
    /// emails do not overtake an earlier one. Returns how long to sleep.
    async fn deliver_due(&self) -> anyhow::Result<Duration> {
        loop {
            let due = self.store.due_emails(BATCH).await?;
            if due.is_empty() {
                break;
            }
            for email in &due {
                let envelope = Envelope {
                    to: &email.recipient,
                    subject: &email.subject,
                    text: &email.text_body,
                    html: &email.html_body,
                };
                match self.transport.send(&self.from, envelope).await {
                    Ok(()) => {
                        self.store.mark_email_sent(email.id).await?;
                        tracing::info!(outbox_id = email.id, "email delivered");
                    }
                    Err(e) => {
                        let delay = self.backoff(email.attempts);
                        let retry_at = Utc::now() + chrono::Duration::from_std(delay)?;
                        let reason = format!("{e:#}");
                        tracing::warn!(
                            outbox_id = email.id,
                            attempt = email.attempts + 1,
                            error = reason,
                            retry_in_ms = delay.as_millis() as u64,
                            "email delivery failed"
                        );
                        self.store
                            .mark_email_failed(email.id, &reason, retry_at)
                            .await?;
                        return Ok(delay);
                    }
                }
            }
        }
        let pause = match self.store.next_email_due_at().await? {
            Some(at) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(IDLE_POLL),
            None => IDLE_POLL,
        };
        Ok(pause)
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.min(20));
        self.retry_base.saturating_mul(factor).min(self.retry_max)
    }
}
