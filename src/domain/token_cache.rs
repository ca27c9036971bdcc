//! Access tokens whose signature was verified, remembered until they expire.
//!
//! A client sends the same access token with every request for up to 15
//! minutes; checking its Ed25519 signature each time was the largest single
//! cost of an authenticated request (see README, Performance). A signature,
//! issuer and audience that verified once stay valid, so the verdict is
//! kept, keyed by the SHA-256 of the token (no bearer token is kept in
//! memory). Expiry is checked on every use, with the same leeway as a full
//! verification, and never later than the retirement of the key that
//! signed it. Only tokens that verified are kept, so nobody can fill the
//! cache with made-up ones.
//!
//! This caches the *token*, not the session: whether the session is still
//! live is asked of the database on every request, so a revocation counts
//! from the very next request. Each [`super::tokens::Keyring`] has its own
//! cache, so reloading the keys starts from an empty one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};

use super::claims::{Claims, TokenError};

/// How many verified tokens are kept at most (each entry is a few hundred bytes).
pub const CAPACITY: usize = 10_000;

/// A verified token's claims and the last second it may be used in.
struct Verdict {
    claims: Arc<Claims>,
    /// `exp` plus leeway, or the signing key's retirement if that is sooner.
    usable_until: i64,
}

/// Verified access tokens, by the SHA-256 of their text.
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Verdict>>,
    capacity: usize,
    /// `SESAME_JWT_LEEWAY_SECS`, in seconds.
    leeway: i64,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens.
    pub fn new(capacity: usize, leeway_secs: i64) -> TokenCache {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
            leeway: leeway_secs,
        }
    }

    /// The remembered verdict on `token` as of `now` (Unix seconds); `None`
    /// if it is not remembered, so it needs the full verification.
    pub fn lookup(&self, token: &str, now: i64) -> Option<Result<Arc<Claims>, TokenError>> {
        let key = key(token);
        let mut entries = self.lock();
        let verdict = entries.get(&key)?;
        if now > verdict.usable_until {
            entries.remove(&key);
            return Some(Err(TokenError::Expired));
        }
        if verdict.claims.nbf > now + self.leeway {
            return Some(Err(TokenError::Invalid));
        }
        Some(Ok(verdict.claims.clone()))
    }

    /// Remembers the claims of a token that passed the full verification,
    /// usable until its expiry or `key_retires_at`, whichever is sooner.
    pub fn remember(
        &self,
        token: &str,
        claims: Claims,
        key_retires_at: Option<i64>,
        now: i64,
    ) -> Arc<Claims> {
        let usable_until = claims
            .exp
            .saturating_add(self.leeway)
            .min(key_retires_at.map_or(i64::MAX, |t| t - 1));
        let claims = Arc::new(claims);
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            // Expired tokens go first; if every kept token is still live,
            // start over: the tokens in use come back at their next request.
            entries.retain(|_, v| v.usable_until >= now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            key(token),
            Verdict {
                claims: claims.clone(),
                usable_until,
            },
        );
        claims
    }

    /// How many tokens are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no token is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Verdict>> {
        // A panic while holding the lock cannot leave the map half-changed
        // in a way that matters: it only ever holds verified tokens.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The cache key of a token: its SHA-256, so no bearer token is kept.
fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn claims(exp_in: i64) -> Claims {
        Claims {
            iss: "http://iss".into(),
            aud: "sesame".into(),
            sub: "u1".into(),
            sid: "s1".into(),
            role: "user".into(),
            iat: NOW,
            nbf: NOW,
            exp: NOW + exp_in,
            amr: Vec::new(),
            jti: "j1".into(),
        }
    }

    #[test]
    fn a_remembered_token_is_found_until_it_expires() {
        let cache = TokenCache::new(10, 0);
        assert!(cache.lookup("a", NOW).is_none());
        cache.remember("a", claims(60), None, NOW);
        assert_eq!(cache.lookup("a", NOW + 60).unwrap().unwrap().sub, "u1");
        assert!(cache.lookup("b", NOW).is_none(), "another token is not");
        assert_eq!(
            cache.lookup("a", NOW + 61).unwrap().unwrap_err(),
            TokenError::Expired
        );
        assert!(cache.is_empty(), "the expired token was dropped");
    }

    #[test]
    fn leeway_and_key_retirement_bound_the_use() {
        let lenient = TokenCache::new(10, 30);
        lenient.remember("a", claims(60), None, NOW);
        assert!(lenient.lookup("a", NOW + 90).unwrap().is_ok());
        assert!(lenient.lookup("a", NOW + 91).unwrap().is_err());

        let cache = TokenCache::new(10, 30);
        cache.remember("a", claims(60), Some(NOW + 10), NOW);
        assert!(cache.lookup("a", NOW + 9).unwrap().is_ok());
        assert!(cache.lookup("a", NOW + 10).unwrap().is_err());
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let cache = TokenCache::new(10, 5);
        let mut early = claims(200);
        early.nbf = NOW + 100;
        cache.remember("a", early, None, NOW);
        assert_eq!(
            cache.lookup("a", NOW).unwrap().unwrap_err(),
            TokenError::Invalid
        );
        assert!(cache.lookup("a", NOW + 95).unwrap().is_ok());
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = TokenCache::new(3, 0);
        cache.remember("old", claims(-10), None, NOW);
        for i in 0..10 {
            cache.remember(&format!("t{i}"), claims(60), None, NOW);
            assert!(cache.len() <= 3);
        }
        assert!(cache.lookup("old", NOW).is_none(), "expired ones go first");
    }
}
