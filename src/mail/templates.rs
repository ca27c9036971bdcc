//! The emails sesame sends. Every value interpolated into HTML is escaped
//! with ammonia; links are built with proper query encoding.

use std::time::Duration;

use super::OutgoingEmail;

/// The verification code email, with a link to the confirm page.
pub fn verification(app_url: &str, recipient: &str, code: &str, ttl: Duration) -> OutgoingEmail {
    let link = link(app_url, "/verify", &[("email", recipient), ("code", code)]);
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
        recipient: recipient.to_owned(),
        kind: "verification",
        subject: "Verify your email".to_owned(),
        text_body: text,
        html_body: html,
    }
}

/// The password reset email, with the token and a link to the reset page.
pub fn password_reset(app_url: &str, recipient: &str, token: &str, ttl: Duration) -> OutgoingEmail {
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
        recipient: recipient.to_owned(),
        kind: "password_reset",
        subject: "Reset your password".to_owned(),
        text_body: text,
        html_body: html,
    }
}

fn link(base: &str, path: &str, params: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{base}{path}?{query}")
}

fn esc(text: &str) -> String {
    ammonia::clean_text(text)
}

fn layout(body: &str) -> String {
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
            "x+y@example.com",
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
            "a@b.example",
            "<script>",
            Duration::from_secs(60),
        );
        assert!(!mail.html_body.contains("<script>"));
    }
}
