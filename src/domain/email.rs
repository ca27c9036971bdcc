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
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is required");
        }
        if trimmed.len() > MAX_LEN {
            return Err("must be at most 254 characters");
        }
        // Non-ASCII addresses are refused for now: look-alike characters
        // (Cyrillic "а" for Latin "a") would let two accounts look identical.
        // Checked before lower-casing, which maps some (the Kelvin sign) to ASCII.
        if !trimmed.is_ascii() {
            return Err("must contain only ASCII characters");
        }
        let email = trimmed.to_ascii_lowercase();
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("must be an email address like name@example.com");
        };
        if !is_dot_atom(local) || !is_hostname(domain) {
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

/// Characters a local part may hold besides letters, digits and dots (RFC 5322
/// `atext`). Quoted local parts are refused: one mailbox could otherwise be
/// spelled two ways (`"sam"@x` and `sam@x`) and hold two accounts.
const ATEXT_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-";

fn is_dot_atom(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c))
        })
}

/// A DNS name with at least two labels and a non-numeric top-level label;
/// IP literals (`[127.0.0.1]`) are refused.
fn is_hostname(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()))
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
            "\"sam\"@example.com",
            "sam@[127.0.0.1]",
            "a@1.2.3.4",
            "a..b@example.com",
            ".a@example.com",
            "a@exa_mple.com",
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
