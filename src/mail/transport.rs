//! Where emails go: an SMTP server, or the log when none is configured.

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::MailTransport;

/// A configured delivery route.
pub enum Transport {
    Log,
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// One email as read back from the outbox.
pub struct Envelope<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

impl Transport {
    /// Builds the transport from configuration (does not connect yet).
    pub fn new(config: &MailTransport) -> anyhow::Result<Transport> {
        match config {
            MailTransport::Log => Ok(Transport::Log),
            MailTransport::Smtp(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|_| anyhow::anyhow!("SESAME_SMTP_URL could not be used"))?
                    .timeout(Some(std::time::Duration::from_secs(15)))
                    .build();
                Ok(Transport::Smtp(transport))
            }
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
                smtp.send(message).await.map(|_| ()).map_err(|e| {
                    if e.is_permanent() {
                        SendError::Permanent(format!("SMTP refused the email: {e}"))
                    } else {
                        SendError::Transient(format!("SMTP delivery failed: {e}"))
                    }
                })
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
