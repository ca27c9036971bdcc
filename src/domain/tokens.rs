//! Access tokens: JWTs signed with EdDSA (keys kept in the database) or
//! HS256 (a shared secret), verified with the algorithm pinned.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::claims::{Claims, TokenError};
use super::token_cache::{self, TokenCache};

/// An Ed25519 key as stored: PKCS#8 private key and raw public key.
pub struct Ed25519Key {
    pub kid: String,
    pub private_pkcs8: Vec<u8>,
    pub public_raw: Vec<u8>,
    /// When the key was made; the next key's `created_at` is when this one
    /// stopped signing.
    pub created_at: DateTime<Utc>,
}

impl Ed25519Key {
    /// A new key from the OS CSPRNG, with a random `kid`.
    pub fn generate() -> anyhow::Result<Ed25519Key> {
        use ring::signature::{Ed25519KeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| anyhow::anyhow!("could not generate an Ed25519 key"))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| anyhow::anyhow!("generated Ed25519 key does not parse"))?;
        Ok(Ed25519Key {
            kid: uuid::Uuid::now_v7().simple().to_string(),
            private_pkcs8: pkcs8.as_ref().to_vec(),
            public_raw: pair.public_key().as_ref().to_vec(),
            created_at: Utc::now(),
        })
    }
}

/// How long after a key stopped signing it is still trusted, on top of the
/// access token lifetime and leeway: covers an instance that signed with it
/// just before it noticed the rotation.
const RETIREMENT_MARGIN: Duration = Duration::from_secs(60);

/// A key that verifies tokens, and until when.
struct VerifyingKey {
    key: DecodingKey,
    /// Its JWK, for the JWKS; `None` for a shared secret.
    jwk: Option<serde_json::Value>,
    /// After this, every token it signed has expired: it is no longer
    /// trusted or published. `None` while it is the signing key.
    retires_at: Option<DateTime<Utc>>,
    /// Age rank: 0 for the oldest key (the JWKS lists keys oldest first).
    position: usize,
}

impl VerifyingKey {
    fn trusted_at(&self, now: DateTime<Utc>) -> bool {
        self.retires_at.is_none_or(|t| now < t)
    }
}

/// The keys that sign new tokens and verify presented ones.
pub struct Keyring {
    algorithm: Algorithm,
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, VerifyingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    /// Tokens this keyring verified, so each signature is checked once.
    verified: TokenCache,
}

impl Keyring {
    /// EdDSA: signs with the newest key (last in `keys`, which are oldest
    /// first), verifies with every key whose tokens may still be live: a key
    /// that stopped signing more than `token_ttl` (plus leeway and a margin)
    /// ago is dropped from verification and from the JWKS.
    pub fn eddsa(
        keys: &[Ed25519Key],
        issuer: &str,
        audience: &str,
        leeway: Duration,
        token_ttl: Duration,
    ) -> anyhow::Result<Keyring> {
        let newest = keys
            .last()
            .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
        let lifetime = chrono::Duration::from_std(token_ttl + leeway + RETIREMENT_MARGIN)?;
        let mut verifying = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let jwk = serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(&key.public_raw),
                "kid": key.kid, "alg": "EdDSA", "use": "sig",
            });
            let superseded_at = keys.get(i + 1).map(|next| next.created_at);
            verifying.insert(
                key.kid.clone(),
                VerifyingKey {
                    key: DecodingKey::from_ed_der(&key.public_raw),
                    jwk: Some(jwk),
                    retires_at: superseded_at.map(|t| t + lifetime),
                    position: i,
                },
            );
        }
        Ok(Keyring {
            algorithm: Algorithm::EdDSA,
            signing_kid: newest.kid.clone(),
            signing: EncodingKey::from_ed_der(&newest.private_pkcs8),
            verifying,
            validation: validation(Algorithm::EdDSA, issuer, audience, leeway),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            verified: cache(leeway),
        })
    }

    /// HS256 with a shared secret; nothing is published in the JWKS.
    pub fn hs256(secret: &[u8], issuer: &str, audience: &str, leeway: Duration) -> Keyring {
        let kid = "hs256".to_owned();
        Keyring {
            algorithm: Algorithm::HS256,
            signing_kid: kid.clone(),
            signing: EncodingKey::from_secret(secret),
            verifying: HashMap::from([(
                kid,
                VerifyingKey {
                    key: DecodingKey::from_secret(secret),
                    jwk: None,
                    retires_at: None,
                    position: 0,
                },
            )]),
            validation: validation(Algorithm::HS256, issuer, audience, leeway),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            verified: cache(leeway),
        }
    }

    /// Signs an access token for a session signed in with a password alone.
    pub fn issue(
        &self,
        user_id: &str,
        session_id: &str,
        role: &str,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        self.issue_with_amr(user_id, session_id, role, &["pwd".to_owned()], ttl)
    }

    /// Signs an access token for a session whose user signed in with the
    /// methods `amr` names (RFC 8176).
    pub fn issue_with_amr(
        &self,
        user_id: &str,
        session_id: &str,
        role: &str,
        amr: &[String],
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            role: role.to_owned(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs() as i64,
            jti: uuid::Uuid::now_v7().to_string(),
            amr: amr.to_vec(),
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing)
            .map_err(|e| anyhow::anyhow!("signing an access token failed: {e}"))
    }

    /// Verifies signature (algorithm pinned, key chosen by `kid`), `iss`,
    /// `aud`, `exp` and `nbf`. Session revocation is checked by the caller.
    /// A token that verified is remembered: later calls check only its
    /// times (see [`token_cache`]).
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        let now = Utc::now();
        if let Some(verdict) = self.verified.lookup(token, now.timestamp()) {
            return verdict;
        }
        let (claims, retires_at) = self.verify_signature(token, now)?;
        Ok(self.verified.remember(
            token,
            claims,
            retires_at.map(|t| t.timestamp()),
            now.timestamp(),
        ))
    }

    /// The full verification, and when the key that signed the token retires.
    pub fn verify_signature(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Claims, Option<DateTime<Utc>>), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != self.algorithm {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::Invalid)?;
        let key = self.verifying.get(kid).ok_or(TokenError::UnknownKey)?;
        if !key.trusted_at(now) {
            return Err(TokenError::Invalid);
        }
        match jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation) {
            Ok(data) => Ok((data.claims, key.retires_at)),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }

    /// The `kid` new tokens are signed with.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// The public keys that verify live tokens, as JWKs, oldest first;
    /// empty for HS256 (a shared secret is never published).
    pub fn jwks(&self) -> Vec<serde_json::Value> {
        let now = Utc::now();
        let mut keys: Vec<&VerifyingKey> = self
            .verifying
            .values()
            .filter(|k| k.trusted_at(now))
            .collect();
        keys.sort_by_key(|k| k.position);
        keys.into_iter().filter_map(|k| k.jwk.clone()).collect()
    }
}

fn cache(leeway: Duration) -> TokenCache {
    TokenCache::new(
        token_cache::CAPACITY,
        i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX),
    )
}

fn validation(alg: Algorithm, issuer: &str, audience: &str, leeway: Duration) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.leeway = leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(900);

    fn ring_of(keys: &[Ed25519Key]) -> Keyring {
        Keyring::eddsa(keys, "http://iss", "sesame", Duration::ZERO, TTL).unwrap()
    }

    fn ring() -> Keyring {
        ring_of(&[Ed25519Key::generate().unwrap()])
    }

    /// A key made `ago`, and a copy of it (as two reads of the database give).
    fn key_made(ago: chrono::Duration) -> (Ed25519Key, Ed25519Key) {
        let key = Ed25519Key::generate().unwrap();
        let copy = Ed25519Key {
            kid: key.kid.clone(),
            private_pkcs8: key.private_pkcs8.clone(),
            public_raw: key.public_raw.clone(),
            created_at: Utc::now() - ago,
        };
        (
            Ed25519Key {
                created_at: copy.created_at,
                ..key
            },
            copy,
        )
    }

    fn kids(ring: &Keyring) -> Vec<String> {
        ring.jwks()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn issued_tokens_verify() {
        let keys = ring();
        let token = keys
            .issue("u1", "s1", "user", Duration::from_secs(60))
            .unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("u1", "s1"));
    }

    #[test]
    fn other_keys_audiences_and_algorithms_are_refused() {
        let a = ring();
        let b = ring();
        let token = a
            .issue("u1", "s1", "user", Duration::from_secs(60))
            .unwrap();
        assert_eq!(b.verify(&token).unwrap_err(), TokenError::UnknownKey);
        let hs = Keyring::hs256(
            b"0123456789abcdef0123456789abcdef",
            "http://iss",
            "sesame",
            Duration::ZERO,
        );
        let hs_token = hs
            .issue("u1", "s1", "user", Duration::from_secs(60))
            .unwrap();
        assert_eq!(a.verify(&hs_token).unwrap_err(), TokenError::Invalid);
        let other_aud = Keyring::hs256(
            b"0123456789abcdef0123456789abcdef",
            "http://iss",
            "other",
            Duration::ZERO,
        );
        assert_eq!(
            hs.verify(
                &other_aud
                    .issue("u", "s", "user", Duration::from_secs(60))
                    .unwrap()
            )
            .unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn after_a_rotation_the_newest_key_signs_and_the_previous_one_still_verifies() {
        let (old, old_again) = key_made(chrono::Duration::minutes(10));
        let old_kid = old.kid.clone();
        let old_token = ring_of(&[old]).issue("u", "s", "user", TTL).unwrap();
        let (new, _) = key_made(chrono::Duration::zero());
        let new_kid = new.kid.clone();

        let rotated = ring_of(&[old_again, new]);

        assert_eq!(rotated.signing_kid(), new_kid);
        let new_token = rotated.issue("u", "s", "user", TTL).unwrap();
        let header = jsonwebtoken::decode_header(&new_token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
        assert_eq!(rotated.verify(&old_token).unwrap().sub, "u");
        assert_eq!(kids(&rotated), [old_kid, new_kid]);
    }

    #[test]
    fn a_key_is_retired_once_every_token_it_signed_has_expired() {
        let (oldest, oldest_again) = key_made(chrono::Duration::hours(3));
        let old_token = ring_of(&[oldest]).issue("u", "s", "user", TTL).unwrap();
        // Superseded two hours ago: its tokens (15 minutes) are long dead.
        let (signing, _) = key_made(chrono::Duration::hours(2));
        let signing_kid = signing.kid.clone();

        let rotated = ring_of(&[oldest_again, signing]);

        assert_eq!(kids(&rotated), [signing_kid]);
        assert_eq!(rotated.verify(&old_token).unwrap_err(), TokenError::Invalid);
    }
}
