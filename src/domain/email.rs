//! Email addresses, valid by construction.

use std::fmt;

/// A syntactically valid address, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

/// Longest address SMTP can carry (RFC 5321: 254 octets in a path).
const MAX_LEN: usize = 254;

impl EmailAddress {
    /// Parses what a user typed; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<EmailAddress, &'static str> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("is required");
        }
        if email.len() > MAX_LEN {
            return Err("must be at most 254 characters");
        }
        // Non-ASCII addresses are refused for now: look-alike characters
        // (Cyrillic "а" for Latin "a") would let two accounts look identical.
        if !email.is_ascii() || email.chars().any(|c| c.is_ascii_control()) {
            return Err("must contain only ASCII characters");
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("must be an email address like name@example.com");
        };
        let domain_ok = domain.contains('.')
            && domain
                .split('.')
                .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
        if local.is_empty() || !domain_ok || !email_address::EmailAddress::is_valid(&email) {
            return Err("must be an email address like name@example.com");
        }
        Ok(EmailAddress(email))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Masks an address for showing it to someone else: `s***@gmail.com`.
    pub fn mask(address: &str) -> String {
        match address.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "***".to_owned(),
        }
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_whitespace() {
        let e = EmailAddress::parse("  Satoshi@Gmail.COM ").unwrap();
        assert_eq!(e.as_str(), "satoshi@gmail.com");
    }

    #[test]
    fn accepts_real_addresses() {
        for ok in [
            "a.b+tag@example.co.uk",
            "x_y@sub.example.org",
            "o'neil@example.ie",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_non_addresses() {
        for bad in [
            "",
            "a@b",
            "plain",
            "@example.com",
            "a@.com",
            "a@example..com",
            "a b@example.com",
            "а@example.com",
            "a@-x.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masks_local_part() {
        assert_eq!(EmailAddress::mask("satoshi@gmail.com"), "s***@gmail.com");
    }
}
