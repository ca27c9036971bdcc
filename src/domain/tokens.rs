//! Access tokens: JWTs signed with EdDSA (keys kept in the database) or
//! HS256 (a shared secret), verified with the algorithm pinned.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id; revoking the session revokes the token.
    pub sid: String,
    pub role: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

/// An Ed25519 key as stored: PKCS#8 private key and raw public key.
pub struct Ed25519Key {
    pub kid: String,
    pub private_pkcs8: Vec<u8>,
    pub public_raw: Vec<u8>,
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
        })
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
}

/// The keys that sign new tokens and verify presented ones.
pub struct Keyring {
    algorithm: Algorithm,
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    validation: Validation,
    jwks: serde_json::Value,
    issuer: String,
    audience: String,
}

impl Keyring {
    /// EdDSA: signs with the newest key (last in `keys`), verifies with all.
    pub fn eddsa(
        keys: &[Ed25519Key],
        issuer: &str,
        audience: &str,
        leeway: Duration,
    ) -> anyhow::Result<Keyring> {
        let newest = keys
            .last()
            .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for key in keys {
            let x = URL_SAFE_NO_PAD.encode(&key.public_raw);
            verifying.insert(key.kid.clone(), DecodingKey::from_ed_der(&key.public_raw));
            jwks.push(serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": x,
                "kid": key.kid, "alg": "EdDSA", "use": "sig",
            }));
        }
        Ok(Keyring {
            algorithm: Algorithm::EdDSA,
            signing_kid: newest.kid.clone(),
            signing: EncodingKey::from_ed_der(&newest.private_pkcs8),
            verifying,
            validation: validation(Algorithm::EdDSA, issuer, audience, leeway),
            jwks: serde_json::json!({ "keys": jwks }),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// HS256 with a shared secret; nothing is published in the JWKS.
    pub fn hs256(secret: &[u8], issuer: &str, audience: &str, leeway: Duration) -> Keyring {
        let kid = "hs256".to_owned();
        Keyring {
            algorithm: Algorithm::HS256,
            signing_kid: kid.clone(),
            signing: EncodingKey::from_secret(secret),
            verifying: HashMap::from([(kid, DecodingKey::from_secret(secret))]),
            validation: validation(Algorithm::HS256, issuer, audience, leeway),
            jwks: serde_json::json!({ "keys": [] }),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// Signs an access token for a session.
    pub fn issue(
        &self,
        user_id: &str,
        session_id: &str,
        role: &str,
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
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing)
            .map_err(|e| anyhow::anyhow!("signing an access token failed: {e}"))
    }

    /// Verifies signature (algorithm pinned, key chosen by `kid`), `iss`,
    /// `aud`, `exp` and `nbf`. Session revocation is checked by the caller.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != self.algorithm {
            return Err(TokenError::Invalid);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(TokenError::Invalid)?;
        match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }
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

    fn ring() -> Keyring {
        let key = Ed25519Key::generate().unwrap();
        Keyring::eddsa(&[key], "http://iss", "sesame", Duration::ZERO).unwrap()
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
        assert_eq!(b.verify(&token).unwrap_err(), TokenError::Invalid);
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
}
