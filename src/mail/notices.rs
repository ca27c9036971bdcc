//! Emails about changes to an account: a new password, a new address.

use std::time::Duration;

use super::OutgoingEmail;
use super::templates::{esc, layout, link};
use crate::domain::email::EmailAddress;

/// Tells the owner that the password was changed from a signed-in session.
pub fn password_changed(app_url: &str, recipient: &EmailAddress) -> OutgoingEmail {
    let forgot = format!("{app_url}/reset-password");
    let text = format!(
        "The password of your sesame account was just changed. Your other sessions \
         were logged out.\n\n\
         If it was you, there is nothing to do.\n\n\
         If it was not you, someone has your password: reset it now here: {forgot}\n"
    );
    let html = layout(&format!(
        "<p>The password of your sesame account was just changed. Your other sessions \
         were logged out.</p>\
         <p>If it was you, there is nothing to do.</p>\
         <p>If it was not you, someone has your password: \
         <a href=\"{forgot}\">reset it now</a>.</p>",
        forgot = esc(&forgot),
    ));
    OutgoingEmail {
        recipient: recipient.as_str().to_owned(),
        kind: "password_changed",
        subject: "Your password was changed".to_owned(),
        text_body: text,
        html_body: html,
        secret: None,
    }
}

/// The code that confirms a new address, sent to that address.
pub fn email_change_code(recipient: &EmailAddress, code: &str, ttl: Duration) -> OutgoingEmail {
    let minutes = ttl.as_secs().div_ceil(60);
    let text = format!(
        "Someone asked to move a sesame account to this address.\n\n\
         Your confirmation code is: {code}\n\n\
         Enter it where you asked for the change. The code expires in {minutes} minutes. \
         If it was not you, ignore this email: nothing changes without the code.\n"
    );
    let html = layout(&format!(
        "<p>Someone asked to move a sesame account to this address.</p>\
         <p>Your confirmation code is: <b>{code}</b></p>\
         <p>Enter it where you asked for the change. The code expires in {minutes} minutes. \
         If it was not you, ignore this email: nothing changes without the code.</p>",
        code = esc(code),
    ));
    OutgoingEmail {
        recipient: recipient.as_str().to_owned(),
        kind: "email_change_code",
        subject: "Confirm your new email address".to_owned(),
        text_body: text,
        html_body: html,
        secret: Some(code.to_owned()),
    }
}

/// Tells the current address that a move to another one was asked for.
pub fn email_change_requested(
    app_url: &str,
    recipient: &EmailAddress,
    new_address: &EmailAddress,
) -> OutgoingEmail {
    let forgot = format!("{app_url}/reset-password");
    let text = format!(
        "Someone signed in to your sesame account asked to change its address to \
         {new_address}. A confirmation code was sent there; the change happens only once \
         it is entered.\n\n\
         If it was not you, someone has your password: reset it now here: {forgot}\n"
    );
    let html = layout(&format!(
        "<p>Someone signed in to your sesame account asked to change its address to \
         <b>{new_address}</b>. A confirmation code was sent there; the change happens only \
         once it is entered.</p>\
         <p>If it was not you, someone has your password: \
         <a href=\"{forgot}\">reset it now</a>.</p>",
        new_address = esc(new_address.as_str()),
        forgot = esc(&forgot),
    ));
    OutgoingEmail {
        recipient: recipient.as_str().to_owned(),
        kind: "email_change_requested",
        subject: "Your email address is about to change".to_owned(),
        text_body: text,
        html_body: html,
        secret: None,
    }
}

/// Tells the old address that the account moved away from it, with the
/// link that undoes the move (the revert token is the email's secret).
pub fn email_changed(
    app_url: &str,
    recipient: &EmailAddress,
    new_address: &EmailAddress,
    revert_token: &str,
    revert_ttl: Duration,
) -> OutgoingEmail {
    let undo = link(app_url, "/revert-email", &[("token", revert_token)]);
    let lifetime = lifetime(revert_ttl);
    let text = format!(
        "The address of your sesame account was changed from this one to {new_address}.\n\n\
         If it was you, there is nothing to do.\n\n\
         If it was not you, someone has your password. Undo the change here: {undo}\n\
         This puts this address back on the account, signs everyone out, and sends you a \
         link to choose a new password. The link works for {lifetime}.\n"
    );
    let html = layout(&format!(
        "<p>The address of your sesame account was changed from this one to \
         <b>{new_address}</b>.</p>\
         <p>If it was you, there is nothing to do.</p>\
         <p>If it was not you, someone has your password: \
         <a href=\"{undo}\">undo the change</a>. This puts this address back on the \
         account, signs everyone out, and sends you a link to choose a new password. \
         The link works for {lifetime}.</p>",
        new_address = esc(new_address.as_str()),
        undo = esc(&undo),
    ));
    OutgoingEmail {
        recipient: recipient.as_str().to_owned(),
        kind: "email_changed",
        subject: "Your email address was changed".to_owned(),
        text_body: text,
        html_body: html,
        secret: Some(revert_token.to_owned()),
    }
}

/// After an email change was undone: the address is back, the password no
/// longer works, and here is a link to choose a new one. A password reset
/// email (same kind, same token rules), worded for what just happened.
pub fn email_reverted(
    app_url: &str,
    recipient: &EmailAddress,
    reset_token: &str,
    ttl: Duration,
) -> OutgoingEmail {
    let choose = link(app_url, "/reset-password", &[("token", reset_token)]);
    let minutes = ttl.as_secs().div_ceil(60);
    let text = format!(
        "The change of your sesame account's address was undone: this address is back, \
         every session was signed out, and the old password no longer works.\n\n\
         Choose a new password here: {choose}\n\n\
         Or use this reset token: {reset_token}\n\n\
         The link expires in {minutes} minutes; after that, ask for a new one with \
         \"forgot password\".\n"
    );
    let html = layout(&format!(
        "<p>The change of your sesame account's address was undone: this address is back, \
         every session was signed out, and the old password no longer works.</p>\
         <p><a href=\"{choose}\">Choose a new password</a></p>\
         <p>Or use this reset token: <code>{token}</code></p>\
         <p>The link expires in {minutes} minutes; after that, ask for a new one with \
         \"forgot password\".</p>",
        choose = esc(&choose),
        token = esc(reset_token),
    ));
    OutgoingEmail {
        recipient: recipient.as_str().to_owned(),
        kind: "password_reset",
        subject: "Your address is back: choose a new password".to_owned(),
        text_body: text,
        html_body: html,
        secret: Some(reset_token.to_owned()),
    }
}

/// A lifetime in words: whole days when it is at least one, else hours or minutes.
fn lifetime(ttl: Duration) -> String {
    let secs = ttl.as_secs();
    let (n, unit) = if secs >= 86_400 {
        (secs / 86_400, "day")
    } else if secs >= 3_600 {
        (secs / 3_600, "hour")
    } else {
        (secs.div_ceil(60), "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(raw: &str) -> EmailAddress {
        EmailAddress::parse(raw).expect("a valid address")
    }

    #[test]
    fn the_change_notice_names_the_new_address_escaped() {
        let mail = email_change_requested(
            "https://a.example",
            &address("old@example.com"),
            &address("x&y@b.com"),
        );
        assert!(mail.text_body.contains("x&y@b.com"));
        assert!(mail.html_body.contains("x&amp;y@b.com"));
        assert!(!mail.html_body.contains("x&y"));
    }

    #[test]
    fn the_moved_notice_carries_the_revert_link_as_its_secret() {
        let token = "abc_DEF-123";
        let mail = email_changed(
            "https://a.example",
            &address("old@example.com"),
            &address("x&y@b.com"),
            token,
            Duration::from_secs(7 * 24 * 3600),
        );
        let link = "https://a.example/revert-email?token=abc_DEF-123";
        assert!(mail.text_body.contains(link), "{}", mail.text_body);
        assert!(mail.html_body.contains(link), "{}", mail.html_body);
        assert!(mail.text_body.contains("7 days"), "{}", mail.text_body);
        assert!(mail.html_body.contains("x&amp;y@b.com"));
        assert_eq!(mail.secret.as_deref(), Some(token));
        assert_eq!(mail.recipient, "old@example.com");
    }

    #[test]
    fn lifetimes_read_in_whole_units() {
        for (secs, words) in [
            (60, "1 minute"),
            (61, "2 minutes"),
            (3_600, "1 hour"),
            (86_400, "1 day"),
            (604_800, "7 days"),
        ] {
            assert_eq!(lifetime(Duration::from_secs(secs)), words);
        }
    }

    #[test]
    fn the_code_email_carries_the_code_and_its_lifetime() {
        let mail = email_change_code(
            &address("new@example.com"),
            "012345",
            Duration::from_secs(900),
        );
        assert!(mail.text_body.contains("012345"));
        assert!(mail.text_body.contains("15 minutes"));
        assert_eq!(mail.recipient, "new@example.com");
    }
}
