//! Passkeys, the ceremonies started for them, and the key of their decoys.

use super::Ts;
use super::db::Uid;
use super::db::{self, Tx};
use chrono::{DateTime, Utc};
use rand::RngCore;
use rand::rngs::OsRng;

use super::{Store, is_unique_violation, outbox, parse_ts, ts};
use crate::mail::OutgoingEmail;

/// A stored passkey.
pub struct StoredPasskey {
    pub id: String,
    pub user_id: String,
    /// webauthn-rs's serialized credential (JSON).
    pub credential: String,
    pub name: String,
    pub sign_count: u32,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A passkey to store.
pub struct NewPasskey<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub credential_id: &'a [u8],
    pub credential: &'a str,
    pub name: &'a str,
    pub sign_count: u32,
    pub created_at: DateTime<Utc>,
}

/// A ceremony to keep until it is finished or expires.
pub struct NewChallenge<'a> {
    pub id: &'a str,
    pub user_id: Option<&'a str>,
    /// `register` or `login`: a challenge is only taken for its purpose.
    pub purpose: &'a str,
    pub state: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// A ceremony taken (and so spent) to be finished.
pub struct TakenChallenge {
    pub user_id: Option<String>,
    pub state: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct PasskeyRow {
    id: Uid,
    user_id: Uid,
    credential: String,
    name: String,
    sign_count: i64,
    created_at: Ts,
    last_used_at: Option<Ts>,
}

impl PasskeyRow {
    fn into_passkey(self) -> anyhow::Result<StoredPasskey> {
        Ok(StoredPasskey {
            id: self.id.into(),
            user_id: self.user_id.into(),
            credential: self.credential,
            name: self.name,
            sign_count: u32::try_from(self.sign_count).unwrap_or(u32::MAX),
            created_at: parse_ts(&self.created_at)?,
            last_used_at: self.last_used_at.map(Ts::time),
        })
    }
}

const PASSKEY_FIELDS: &str = "id, user_id, credential, name, sign_count, created_at, last_used_at";

impl Store {
    /// A user's passkeys, oldest first.
    pub async fn passkeys_of(&self, user_id: &str) -> anyhow::Result<Vec<StoredPasskey>> {
        let rows: Vec<PasskeyRow> = db::query_as(&format!(
            "SELECT {PASSKEY_FIELDS} FROM passkeys WHERE user_id = ? ORDER BY created_at, id"
        ))
        .bind(db::id(user_id))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(PasskeyRow::into_passkey).collect()
    }

    /// The passkey with this credential id, whoever's it is.
    pub async fn passkey_by_credential_id(
        &self,
        credential_id: &[u8],
    ) -> anyhow::Result<Option<StoredPasskey>> {
        let row: Option<PasskeyRow> = db::query_as(&format!(
            "SELECT {PASSKEY_FIELDS} FROM passkeys WHERE credential_id = ?"
        ))
        .bind(credential_id)
        .fetch_optional(&self.read)
        .await?;
        row.map(PasskeyRow::into_passkey).transpose()
    }

    /// How many passkeys a user has.
    pub async fn passkey_count(&self, user_id: &str) -> anyhow::Result<u32> {
        let n: i64 = db::query_scalar("SELECT COUNT(*) FROM passkeys WHERE user_id = ?")
            .bind(db::id(user_id))
            .fetch_one(&self.read)
            .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Stores a new passkey and queues the notice, atomically; `false`
    /// (nothing stored) when its credential id is registered already.
    pub async fn insert_passkey(
        &self,
        passkey: &NewPasskey<'_>,
        notice: &OutgoingEmail,
    ) -> anyhow::Result<bool> {
        self.writing(async {
            let mut tx = self.write.begin().await?;
            let inserted = db::query(
                "INSERT INTO passkeys \
                 (id, user_id, credential_id, credential, name, sign_count, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(db::id(passkey.id))
            .bind(db::id(passkey.user_id))
            .bind(passkey.credential_id)
            .bind(passkey.credential)
            .bind(passkey.name)
            .bind(i64::from(passkey.sign_count))
            .bind(ts(passkey.created_at))
            .execute(&mut tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
            outbox::enqueue(&mut tx, Some(passkey.user_id), notice).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Records a login with a passkey: its updated credential and counter,
    /// and when it was used.
    pub async fn record_passkey_use(
        &self,
        id: &str,
        credential: &str,
        sign_count: u32,
    ) -> anyhow::Result<()> {
        self.writing(async {
            db::query(
                "UPDATE passkeys SET credential = ?, sign_count = ?, last_used_at = ? WHERE id = ?",
            )
            .bind(credential)
            .bind(i64::from(sign_count))
            .bind(ts(Utc::now()))
            .bind(db::id(id))
            .execute(&self.write)
            .await?;
            Ok(())
        })
        .await
    }

    /// Deletes one of a user's passkeys and queues the notice, atomically;
    /// `false` if the user has no such passkey.
    pub async fn delete_passkey(
        &self,
        user_id: &str,
        id: &str,
        notice: &OutgoingEmail,
    ) -> anyhow::Result<bool> {
        self.writing(async {
            let mut tx = self.write.begin().await?;
            let deleted = db::query("DELETE FROM passkeys WHERE id = ? AND user_id = ?")
                .bind(db::id(id))
                .bind(db::id(user_id))
                .execute(&mut tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Ok(false);
            }
            outbox::enqueue(&mut tx, Some(user_id), notice).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Keeps a started ceremony.
    pub async fn insert_challenge(&self, challenge: &NewChallenge<'_>) -> anyhow::Result<()> {
        self.writing(async {
            db::query(
                "INSERT INTO passkey_challenges \
                 (id, user_id, purpose, state, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(db::id(challenge.id))
            .bind(db::opt_id(challenge.user_id))
            .bind(challenge.purpose)
            .bind(challenge.state)
            .bind(ts(challenge.expires_at))
            .bind(ts(Utc::now()))
            .execute(&self.write)
            .await?;
            Ok(())
        })
        .await
    }

    /// Takes a started ceremony of this purpose: deletes it and returns
    /// it, so that it can be finished at most once (two finishes racing
    /// for one challenge: one gets it). Expired ones are returned too; the
    /// caller refuses them.
    pub async fn take_challenge(
        &self,
        id: &str,
        purpose: &str,
    ) -> anyhow::Result<Option<TakenChallenge>> {
        self.writing(async {
            let row: Option<(Option<db::Uid>, String, Ts)> = db::query_as(
                "DELETE FROM passkey_challenges WHERE id = ? AND purpose = ? \
                 RETURNING user_id, state, expires_at",
            )
            .bind(db::id(id))
            .bind(purpose)
            .fetch_optional(&self.write)
            .await?;
            row.map(|(user_id, state, expires_at)| {
                Ok(TakenChallenge {
                    user_id: user_id.map(String::from),
                    state,
                    expires_at: parse_ts(&expires_at)?,
                })
            })
            .transpose()
        })
        .await
    }

    /// Deletes ceremonies that expired (housekeeping); how many.
    pub async fn prune_passkey_challenges(&self) -> anyhow::Result<u64> {
        self.delete_older(
            "DELETE FROM passkey_challenges WHERE expires_at < ?",
            Utc::now(),
        )
        .await
    }

    /// The key of the decoys' keyed hash, made on first use.
    pub async fn passkey_decoy_key(&self) -> anyhow::Result<Vec<u8>> {
        let key: Option<Vec<u8>> =
            db::query_scalar("SELECT key FROM passkey_decoy_key WHERE id = 1")
                .fetch_optional(&self.read)
                .await?;
        if let Some(key) = key {
            return Ok(key);
        }
        let mut fresh = vec![0u8; 32];
        OsRng.fill_bytes(&mut fresh);
        self.writing(async {
            // Two instances making it at once: the first one's stays.
            db::query(
                "INSERT INTO passkey_decoy_key (id, key) VALUES (1, ?) ON CONFLICT DO NOTHING",
            )
            .bind(&fresh)
            .execute(&self.write)
            .await?;
            let key: Vec<u8> = db::query_scalar("SELECT key FROM passkey_decoy_key WHERE id = 1")
                .fetch_one(&self.write)
                .await?;
            Ok(key)
        })
        .await
    }
}

/// Removes every passkey of a user and the ceremonies started for it,
/// inside the caller's transaction (an email revert: whoever moved the
/// account may have added passkeys).
pub(super) async fn delete_all(conn: &mut Tx, user_id: &str) -> anyhow::Result<()> {
    db::query("DELETE FROM passkeys WHERE user_id = ?")
        .bind(db::id(user_id))
        .execute(&mut *conn)
        .await?;
    db::query("DELETE FROM passkey_challenges WHERE user_id = ?")
        .bind(db::id(user_id))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn user(store: &Store) {
        let now = ts(Utc::now());
        db::query(
            "INSERT INTO users (id, email, password_hash, referral_code, created_at, updated_at) \
             VALUES ('u', 'u@example.com', 'h', 'UCODE123', ?1, ?1)",
        )
        .bind(now)
        .execute(&store.write)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_challenge_is_taken_once_and_only_for_its_purpose() {
        let (_dir, store) = crate::store::temp_store().await;
        user(&store).await;
        let challenge = NewChallenge {
            id: "c",
            user_id: Some("u"),
            purpose: "register",
            state: "{}",
            expires_at: Utc::now() + chrono::Duration::minutes(5),
        };
        store.insert_challenge(&challenge).await.unwrap();
        assert!(store.take_challenge("c", "login").await.unwrap().is_none());
        let taken = store
            .take_challenge("c", "register")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken.user_id.as_deref(), Some("u"));
        assert!(
            store
                .take_challenge("c", "register")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn the_decoy_key_is_made_once() {
        let (_dir, store) = crate::store::temp_store().await;
        let first = store.passkey_decoy_key().await.unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(store.passkey_decoy_key().await.unwrap(), first);
    }

    #[tokio::test]
    async fn expired_challenges_are_pruned_and_live_ones_stay() {
        let (_dir, store) = crate::store::temp_store().await;
        let at = |minutes| NewChallenge {
            id: if minutes < 0 { "old" } else { "live" },
            user_id: None,
            purpose: "login",
            state: "{}",
            expires_at: Utc::now() + chrono::Duration::minutes(minutes),
        };
        store.insert_challenge(&at(-1)).await.unwrap();
        store.insert_challenge(&at(5)).await.unwrap();
        assert_eq!(store.prune_passkey_challenges().await.unwrap(), 1);
        assert!(
            store
                .take_challenge("old", "login")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .take_challenge("live", "login")
                .await
                .unwrap()
                .is_some()
        );
    }
}
