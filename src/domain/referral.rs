//! Referral codes: short, unambiguous, shareable.

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::rngs::OsRng;

/// Characters without look-alikes (no 0/O, 1/I/L, 5/S, 2/Z, 8/B).
const ALPHABET: &[u8] = b"34679ACDEFGHJKMNPQRTUVWXY";
/// Length of every referral code.
pub const LEN: usize = 8;

/// A referral code in canonical (upper-case) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralCode(String);

impl ReferralCode {
    /// A fresh random code from the OS CSPRNG (25^8 ≈ 1.5e11 possibilities).
    pub fn generate() -> ReferralCode {
        let code = (0..LEN)
            .map(|_| ALPHABET[OsRng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        ReferralCode(code)
    }

    /// Parses a code as a user typed it, case-insensitively; `None` if it
    /// cannot be a code sesame issued.
    pub fn parse(raw: &str) -> Option<ReferralCode> {
        let code = raw.trim().to_ascii_uppercase();
        (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b)))
            .then_some(ReferralCode(code))
    }

    /// The canonical code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A referred account, for the referrer's list.
pub struct Referred {
    pub email: String,
    pub active: bool,
    pub joined_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_parse_back_in_any_case() {
        for _ in 0..100 {
            let code = ReferralCode::generate();
            assert_eq!(code.as_str().len(), LEN);
            assert_eq!(
                ReferralCode::parse(&code.as_str().to_lowercase()),
                Some(code)
            );
        }
    }

    #[test]
    fn look_alikes_are_not_codes() {
        assert_eq!(ReferralCode::parse("O0I1L5SZ"), None);
        assert_eq!(ReferralCode::parse("ABC"), None);
    }
}
