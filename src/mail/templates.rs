//! The emails sesame sends. They carry no text a user typed (a stranger
//! can sign up with anyone's address); every value interpolated into HTML
//! is escaped; links are built with proper query encoding.

use std::time::Duration;

use super::OutgoingEmail;
use crate::domain::email::EmailAddress;

/// The verification code email, with a link to the confirm page.
///
/// It goes to whatever address was typed at signup, so it carries no text
/// the signer typed (not the name): a stranger's words never reach the
/// owner's mailbox under sesame's name.
pub fn verification(
    app_url: &str,
    recipient: &EmailAddress,
    code: &str,
    ttl: Duration,
) -> OutgoingEmail {
    let link = link(
        app_url,
        "/verify",
        &[("email", recipient.as_str()), ("code", code)],
    );
    let minutes = ttl.as_secs().div_ceil(60);
    let text = format!(
        "Welcome to sesame!\n\nYour verification code is: {code}\n\n\
         Or confirm your address here: {link}\n\n\
         The code expires in {minutes} minutes. If you did not sign up, ignore this email.\n"
    );
    let html = layout(&format!(
        "<p>Welcome to sesame!</p>\
         <p>Your verification code is: <b>{code}</b></p>\
         <p><a href=\"{link}\">Confirm your email address</a></p>\
         <p>The code expires in {minutes} minutes. If you did not sign up, ignore this email.</p>",
        code = esc(code),
        link = esc(&link),
    ));
    OutgoingEmail {
        recipient: recipient.as_str().to_owned(),
        kind: "verification",
        subject: "Verify your email".to_owned(),
        text_body: text,
        html_body: html,
        secret: Some(code.to_owned()),
    }
}

/// Tells the owner of an address that someone tried to sign up with it
/// (sent instead of an error when signups conceal existing accounts).
pub fn signup_attempt(app_url: &str, recipient: &EmailAddress) -> OutgoingEmail {
    let reset = format!("{app_url}/reset-password");
    let text = format!(
        "Someone tried to create a sesame account with this address, which already has one.\n\n\
         If it was you: log in with your password, or reset it here: {reset}\n\n\
         If it was not you, ignore this email; nothing changed.\n"
    );
    let html = layout(&format!(
        "<p>Someone tried to create a sesame account with this address, which already has one.</p>\
         <p>If it was you: log in with your password, or <a href=\"{reset}\">reset it</a>.</p>\
         <p>If it was not you, ignore this email; nothing changed.</p>",
        reset = esc(&reset),
    ));
    OutgoingEmail {
        recipient: recipient.as_str().to_owned(),
        kind: "signup_attempt",
        subject: "Someone tried to sign up with your address".to_owned(),
        text_body: text,
        html_body: html,
        secret: None,
    }
}

/// The password reset email, with the token and a link to the reset page.
pub fn password_reset(
    app_url: &str,
    recipient: &EmailAddress,
    token: &str,
    ttl: Duration,
) -> OutgoingEmail {
    let link = link(app_url, "/reset-password", &[("token", token)]);
    let minutes = ttl.as_secs().div_ceil(60);
    let text = format!(
        "Someone asked to reset the password of your sesame account.\n\n\
         Choose a new password here: {link}\n\n\
         Or use this reset token: {token}\n\n\
         The link expires in {minutes} minutes. If it was not you, ignore this email: \
         your password stays as it is.\n"
    );
    let html = layout(&format!(
        "<p>Someone asked to reset the password of your sesame account.</p>\
         <p><a href=\"{link}\">Choose a new password</a></p>\
         <p>Or use this reset token: <code>{token}</code></p>\
         <p>The link expires in {minutes} minutes. If it was not you, ignore this email: \
         your password stays as it is.</p>",
        link = esc(&link),
        token = esc(token),
    ));
    OutgoingEmail {
        recipient: recipient.as_str().to_owned(),
        kind: "password_reset",
        subject: "Reset your password".to_owned(),
        text_body: text,
        html_body: html,
        secret: Some(token.to_owned()),
    }
}

/// Tells the owner that repeated failed logins locked the account.
pub fn account_locked(app_url: &str, recipient: &EmailAddress, lockout: Duration) -> OutgoingEmail {
    let reset = format!("{app_url}/reset-password");
    let minutes = match lockout.as_secs().div_ceil(60) {
        1 => "1 minute".to_owned(),
        n => format!("{n} minutes"),
    };
    let text = format!(
        "Your sesame account was locked for {minutes} after several failed login attempts.\n\n\
         If it was you, wait and try again, or reset your password to unlock it now: {reset}\n\n\
         If it was not you, someone may be guessing your password: resetting it is a good idea.\n"
    );
    let html = layout(&format!(
        "<p>Your sesame account was locked for {minutes} after several failed login attempts.</p>\
         <p>If it was you, wait and try again, or <a href=\"{reset}\">reset your password</a> to unlock it now.</p>\
         <p>If it was not you, someone may be guessing your password: resetting it is a good idea.</p>",
        reset = esc(&reset),
    ));
    OutgoingEmail {
        recipient: recipient.as_str().to_owned(),
        kind: "account_locked",
        subject: "Your account was locked".to_owned(),
        text_body: text,
        html_body: html,
        secret: None,
    }
}

pub(super) fn link(base: &str, path: &str, params: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{base}{path}?{query}")
}

/// Escapes a value sesame made itself (codes, tokens, links) for HTML text
/// and attributes. No email carries text a user typed.
pub(super) fn esc(text: &str) -> String {
    crate::html::escape(text)
}

pub(super) fn layout(body: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family: sans-serif\">{body}</body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_email_carries_code_and_encoded_link() {
        let mail = verification(
            "https://a.example",
            &EmailAddress::parse("x+y@example.com").expect("valid"),
            "012345",
            Duration::from_secs(900),
        );
        assert!(mail.text_body.contains("012345"));
        assert!(
            mail.text_body
                .contains("https://a.example/verify?email=x%2By%40example.com&code=012345")
        );
        assert!(mail.html_body.contains("&amp;code=012345"));
        assert!(mail.text_body.contains("15 minutes"));
    }

    #[test]
    fn html_escapes_interpolated_values() {
        let mail = password_reset(
            "https://a.example",
            &EmailAddress::parse("a@b.example").expect("valid"),
            "<script>",
            Duration::from_secs(60),
        );
        assert!(!mail.html_body.contains("<script>"));
    }
}
