//! The signing keys of a running server, kept in step with the database.
//!
//! `sesame keys rotate` adds a key to the database while servers run. A
//! server notices without a restart, at two moments:
//!
//! - before it signs (login, refresh) it reads the newest `kid`, one tiny
//!   indexed read next to the writes those requests make anyway, and loads
//!   the keys again if that `kid` is new: new tokens use the new key at once;
//! - when a presented token names a `kid` it does not hold (another instance
//!   rotated and signed with the new key first), it reloads, at most once a
//!   second, so forged `kid`s cannot turn every request into a reload.
//!
//! Tokens signed by a previous key keep verifying until they expire; the
//! [`Keyring`] then retires that key from verification and from the JWKS.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::config::{Config, JwtSigning};
use crate::domain::claims::{Claims, TokenError};
use crate::domain::tokens::Keyring;
use crate::store::Store;

/// Least time between two reloads caused by unknown `kid`s.
const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The keyring in use, replaced whole when the database has a newer key.
pub struct SigningKeys {
    current: RwLock<Arc<Keyring>>,
    source: KeySource,
    /// When an unknown `kid` last caused a reload; also makes such reloads
    /// single-flight.
    last_unknown_reload: Mutex<Option<Instant>>,
}

/// Where keys come from, and what is needed to build a keyring from them.
enum KeySource {
    /// HS256: one shared secret from the configuration, never rotated here.
    Fixed,
    /// EdDSA: keys in the database.
    Stored {
        issuer: String,
        audience: String,
        leeway: Duration,
        token_ttl: Duration,
    },
}

impl SigningKeys {
    /// Loads the keys (making the first one on a new database).
    pub async fn load(config: &Config, store: &Store) -> anyhow::Result<SigningKeys> {
        let (keyring, source) = match &config.jwt {
            JwtSigning::Hs256(secret) => (
                Keyring::hs256(
                    secret.expose().as_bytes(),
                    &config.public_url,
                    &config.jwt_audience,
                    config.jwt_leeway,
                ),
                KeySource::Fixed,
            ),
            JwtSigning::EdDsa => {
                let source = KeySource::Stored {
                    issuer: config.public_url.clone(),
                    audience: config.jwt_audience.clone(),
                    leeway: config.jwt_leeway,
                    token_ttl: config.access_token_ttl,
                };
                (source.build(store).await?, source)
            }
        };
        Ok(SigningKeys {
            current: RwLock::new(Arc::new(keyring)),
            source,
            last_unknown_reload: Mutex::new(None),
        })
    }

    /// The keyring to sign with: reloaded first if the database has a newer key.
    pub async fn for_signing(&self, store: &Store) -> anyhow::Result<Arc<Keyring>> {
        let current = self.current();
        if matches!(self.source, KeySource::Fixed) {
            return Ok(current);
        }
        match store.newest_signing_kid().await? {
            Some(newest) if newest != current.signing_kid() => self.reload(store).await,
            _ => Ok(current),
        }
    }

    /// Verifies an access token; an unknown `kid` triggers one reload and a retry.
    pub async fn verify(
        &self,
        store: &Store,
        token: &str,
    ) -> anyhow::Result<Result<Arc<Claims>, TokenError>> {
        let first = self.current().verify(token);
        if !matches!(first, Err(TokenError::UnknownKey)) || matches!(self.source, KeySource::Fixed)
        {
            return Ok(first);
        }
        let mut last = self.last_unknown_reload.lock().await;
        // Another request may have reloaded while this one waited.
        let retry = self.current().verify(token);
        if !matches!(retry, Err(TokenError::UnknownKey))
            || last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_RELOAD_INTERVAL)
        {
            return Ok(retry);
        }
        *last = Some(Instant::now());
        Ok(self.reload(store).await?.verify(token))
    }

    /// The public keys of the JWKS, including a rotation made since the last reload.
    pub async fn jwks(&self, store: &Store) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(self.for_signing(store).await?.jwks())
    }

    fn current(&self) -> Arc<Keyring> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc;
        // the Arc inside is whole either way.
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn reload(&self, store: &Store) -> anyhow::Result<Arc<Keyring>> {
        let fresh = Arc::new(self.source.build(store).await?);
        let mut slot = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = fresh.clone();
        tracing::info!(kid = fresh.signing_kid(), "signing keys reloaded");
        Ok(fresh)
    }
}

impl KeySource {
    async fn build(&self, store: &Store) -> anyhow::Result<Keyring> {
        match self {
            KeySource::Fixed => anyhow::bail!("a shared-secret keyring is never reloaded"),
            KeySource::Stored {
                issuer,
                audience,
                leeway,
                token_ttl,
            } => Keyring::eddsa(
                &store.signing_keys().await?,
                issuer,
                audience,
                *leeway,
                *token_ttl,
            ),
        }
    }
}
