//! Where emails go: an SMTP server, or the log when none is configured.
//!
//! Every SMTP attempt is bounded by `SESAME_SMTP_TIMEOUT_SECS`. lettre's
//! own timeout covers only the TCP connect: a relay that accepts the
//! connection and never sends its greeting (or stops answering mid-way)
//! would hold the outbox forever. So the whole exchange runs under a
//! timeout, and after one the transport, with its pool of connections, is
//! built anew: a connection cut off mid-command must not be reused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::MailTransport;
use crate::domain::secret::Secret;

/// A configured delivery route.
pub enum Transport {
    Log,
    Smtp(Smtp),
}

/// An SMTP relay and the limit on each attempt.
pub struct Smtp {
    url: Secret<String>,
    timeout: Duration,
    /// Replaced after a timeout.
    transport: Mutex<Arc<AsyncSmtpTransport<Tokio1Executor>>>,
}

impl Smtp {
    fn build(
        url: &Secret<String>,
        timeout: Duration,
    ) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
        Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            .map_err(|_| anyhow::anyhow!("SESAME_SMTP_URL could not be used"))?
            .timeout(Some(timeout))
            .build())
    }

    fn current(&self) -> Arc<AsyncSmtpTransport<Tokio1Executor>> {
        self.transport
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sends within the timeout; after a timeout the connections are dropped.
    async fn send(&self, message: Message) -> Result<(), SendError> {
        let transport = self.current();
        match tokio::time::timeout(self.timeout, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => {
                Err(SendError::Permanent(format!("SMTP refused the email: {e}")))
            }
            Ok(Err(e)) => Err(SendError::Transient(format!("SMTP delivery failed: {e}"))),
            Err(_) => {
                if let Ok(fresh) = Smtp::build(&self.url, self.timeout) {
                    *self
                        .transport
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
                }
                Err(SendError::Transient(format!(
                    "the SMTP relay did not answer within {}s (SESAME_SMTP_TIMEOUT_SECS)",
                    self.timeout.as_secs_f64()
                )))
            }
        }
    }
}

/// One email as read back from the outbox.
pub struct Envelope<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

impl Transport {
    /// Builds the transport from configuration (does not connect yet);
    /// every SMTP attempt must finish within `timeout`.
    pub fn new(config: &MailTransport, timeout: Duration) -> anyhow::Result<Transport> {
        match config {
            MailTransport::Log => Ok(Transport::Log),
            MailTransport::Smtp(url) => Ok(Transport::Smtp(Smtp {
                transport: Mutex::new(Arc::new(Smtp::build(url, timeout)?)),
                url: url.clone(),
                timeout,
            })),
        }
    }

    /// Delivers one email.
    pub async fn send(&self, from: &str, mail: Envelope<'_>) -> Result<(), SendError> {
        match self {
            Transport::Log => {
                // The log transport exists for trying sesame without SMTP; it
                // prints codes and links on purpose (a warning says so at start).
                tracing::info!(
                    to = mail.to,
                    subject = mail.subject,
                    "email (log transport):\n{}",
                    mail.text
                );
                Ok(())
            }
            Transport::Smtp(smtp) => {
                let permanent = |what: &str| SendError::Permanent(what.to_owned());
                let from: Mailbox = from
                    .parse()
                    .map_err(|_| permanent("SESAME_MAIL_FROM is not a valid mailbox"))?;
                let to: Mailbox = mail
                    .to
                    .parse()
                    .map_err(|_| permanent("recipient is not a valid mailbox"))?;
                let message = Message::builder()
                    .from(from)
                    .to(to)
                    .subject(mail.subject)
                    .multipart(MultiPart::alternative_plain_html(
                        mail.text.to_owned(),
                        mail.html.to_owned(),
                    ))
                    .map_err(|e| SendError::Permanent(format!("building the email failed: {e}")))?;
                smtp.send(message).await
            }
        }
    }
}

/// Why an email was not delivered.
#[derive(Debug)]
pub enum SendError {
    /// Worth retrying: the server is unreachable or answered 4xx.
    Transient(String),
    /// Retrying cannot help: 5xx, or the email cannot be built.
    Permanent(String),
}
