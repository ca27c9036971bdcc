//! Outgoing email: what a message is, how it is rendered, and the outbox
//! worker that delivers it (SMTP or the log).

pub mod mfa_notices;
pub mod notices;
pub mod templates;
pub mod transport;
pub mod worker;

/// An email ready to be queued in the outbox.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    /// Normalized recipient address.
    pub recipient: String,
    /// What the email is about (`verification`, `password_reset`, ...).
    pub kind: &'static str,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    /// The code or token the bodies carry, if any: once the email is
    /// delivered (or given up), every copy of it in the stored bodies is
    /// replaced, so nothing usable stays in the outbox.
    pub secret: Option<String>,
}
