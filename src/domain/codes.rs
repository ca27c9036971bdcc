//! One-time secrets sent by email, and the hashes stored in their place.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::email::EmailAddress;
use super::secret::Secret;

/// A 6-digit email verification code.
#[derive(Debug, Clone)]
pub struct VerificationCode(Secret<String>);

impl VerificationCode {
    /// A fresh code from the OS CSPRNG, uniform over 000000–999999.
    pub fn generate() -> VerificationCode {
        let n: u32 = OsRng.gen_range(0..1_000_000);
        VerificationCode(Secret::new(format!("{n:06}")))
    }

    /// A code as typed by a user; `None` unless it is exactly 6 digits.
    pub fn parse(raw: &str) -> Option<VerificationCode> {
        let code = raw.trim();
        (code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()))
            .then(|| VerificationCode(Secret::new(code.to_owned())))
    }

    /// The digits, for the email that carries them.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The stored form: bound to the user so equal codes of two users differ.
    pub fn hash_for(&self, user_id: &str) -> Vec<u8> {
        sha256(&[
            b"verification-code:",
            user_id.as_bytes(),
            b":",
            self.expose().as_bytes(),
        ])
    }

    /// The stored form of an email change code: bound to the user and to
    /// its purpose, so it never equals the same user's activation code hash.
    pub fn hash_for_email_change(&self, user_id: &str) -> Vec<u8> {
        sha256(&[
            b"email-change-code:",
            user_id.as_bytes(),
            b":",
            self.expose().as_bytes(),
        ])
    }
}

/// A 256-bit random token, base64url without padding (refresh and reset tokens).
#[derive(Debug, Clone)]
pub struct OpaqueToken(Secret<String>);

impl OpaqueToken {
    /// A fresh token from the OS CSPRNG.
    pub fn generate() -> OpaqueToken {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        OpaqueToken(Secret::new(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A token as presented by a client; `None` if it cannot be one we issued.
    pub fn parse(raw: &str) -> Option<OpaqueToken> {
        let raw = raw.trim();
        let ok = raw.len() == 43
            && URL_SAFE_NO_PAD
                .decode(raw)
                .is_ok_and(|bytes| bytes.len() == 32);
        ok.then(|| OpaqueToken(Secret::new(raw.to_owned())))
    }

    /// The token text, for the response or email that carries it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The stored form. 256 random bits need no salt or slow hash.
    pub fn hash(&self) -> Vec<u8> {
        sha256(&[self.expose().as_bytes()])
    }
}

/// The key of an address's budget of wrong codes (`code_failures`): a hash,
/// so the table does not list the addresses guessers tried.
pub fn budget_key(address: &EmailAddress) -> Vec<u8> {
    sha256(&[b"code-budget:", address.as_str().as_bytes()])
}

/// Compares two hashes without leaking where they differ.
pub fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..1000 {
            let code = VerificationCode::generate();
            assert!(VerificationCode::parse(code.expose()).is_some());
        }
        assert!(VerificationCode::parse("12345").is_none());
        assert!(VerificationCode::parse("12345a").is_none());
    }

    #[test]
    fn code_hash_depends_on_user() {
        let code = VerificationCode::parse("123456").unwrap();
        assert_ne!(code.hash_for("a"), code.hash_for("b"));
        assert!(hashes_equal(&code.hash_for("a"), &code.hash_for("a")));
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let token = OpaqueToken::generate();
        let parsed = OpaqueToken::parse(token.expose()).unwrap();
        assert_eq!(parsed.hash(), token.hash());
        assert!(OpaqueToken::parse("short").is_none());
        assert!(OpaqueToken::parse(&"!".repeat(43)).is_none());
    }
}
