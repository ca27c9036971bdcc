//! JWT signing keys.

use super::db;
use super::{Store, parse_ts, ts};
use crate::domain::tokens::Ed25519Key;

impl Store {
    /// All Ed25519 keys, oldest first; makes the first one if there is none.
    /// Instances racing at first start may each insert a key; all are
    /// published and verify, and the newest signs, which is harmless.
    pub async fn signing_keys(&self) -> anyhow::Result<Vec<Ed25519Key>> {
        let keys = self.load_signing_keys().await?;
        if !keys.is_empty() {
            return Ok(keys);
        }
        self.add_signing_key(&Ed25519Key::generate()?).await?;
        self.load_signing_keys().await
    }

    /// Stores a new key. It signs from then on: running servers notice it
    /// before they next sign a token (see `flows::signing`).
    pub async fn add_signing_key(&self, key: &Ed25519Key) -> anyhow::Result<()> {
        self.writing(async {
            db::query(
                "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at) \
             VALUES (?, 'EdDSA', ?, ?, ?)",
            )
            .bind(&key.kid)
            .bind(&key.private_pkcs8)
            .bind(&key.public_raw)
            .bind(ts(key.created_at))
            .execute(&self.write)
            .await?;
            Ok(())
        })
        .await
    }

    /// The `kid` of the newest Ed25519 key, the one that should sign.
    pub async fn newest_signing_kid(&self) -> anyhow::Result<Option<String>> {
        let kid = db::query_scalar(
            "SELECT kid FROM signing_keys WHERE algorithm = 'EdDSA' \
             ORDER BY created_at DESC, kid DESC LIMIT 1",
        )
        .fetch_optional(&self.read)
        .await?;
        Ok(kid)
    }

    async fn load_signing_keys(&self) -> anyhow::Result<Vec<Ed25519Key>> {
        let rows: Vec<(String, Vec<u8>, Vec<u8>, super::Ts)> = db::query_as(
            "SELECT kid, private_key, public_key, created_at FROM signing_keys \
             WHERE algorithm = 'EdDSA' ORDER BY created_at, kid",
        )
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|(kid, private_pkcs8, public_raw, created_at)| {
                Ok(Ed25519Key {
                    kid,
                    private_pkcs8,
                    public_raw,
                    created_at: parse_ts(&created_at)?,
                })
            })
            .collect()
    }
}
