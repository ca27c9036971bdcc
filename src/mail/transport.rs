//! Where emails go: an SMTP server, or the log when none is configured.

use anyhow::Context;
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

    /// Delivers one email; an error means "try again later".
    pub async fn send(&self, from: &str, mail: Envelope<'_>) -> anyhow::Result<()> {
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
                let from: Mailbox = from
                    .parse()
                    .context("SESAME_MAIL_FROM is not a valid mailbox")?;
                let to: Mailbox = mail
                    .to
                    .parse()
                    .context("recipient is not a valid mailbox")?;
                let message = Message::builder()
                    .from(from)
                    .to(to)
                    .subject(mail.subject)
                    .multipart(MultiPart::alternative_plain_html(
                        mail.text.to_owned(),
                        mail.html.to_owned(),
                    ))
                    .context("building the email failed")?;
                smtp.send(message).await.context("SMTP delivery failed")?;
                Ok(())
            }
        }
    }
}
