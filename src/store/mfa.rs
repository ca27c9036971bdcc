//! The second factor: the key that seals TOTP secrets, each account's
//! authenticator and recovery codes, and the second step of logins.

use super::Ts;
use super::db::{self, Tx};
use chrono::{DateTime, Utc};

use super::{Store, outbox, parse_ts, ts};
use crate::mail::OutgoingEmail;

/// An account's TOTP authenticator as stored.
pub struct StoredTotp {
    /// Nonce and ciphertext of the secret (see `MfaKey::seal`).
    pub sealed: Vec<u8>,
    /// Whether a code confirmed it (else it is pending).
    pub confirmed: bool,
    /// The time step of the last accepted code.
    pub last_step: Option<i64>,
}

/// A live second step of a login.
pub struct StoredChallenge {
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
}

/// What turning the second factor on writes, besides the authenticator.
pub struct Confirmation<'a> {
    /// The step of the code that confirmed it.
    pub step: i64,
    /// Hashes of the new recovery codes.
    pub recovery_hashes: &'a [Vec<u8>],
    /// The session that confirmed it; every other one ends.
    pub keep_session: &'a str,
    pub notice: &'a OutgoingEmail,
}

impl Store {
    /// The key that seals TOTP secrets; `candidate` becomes it if there is
    /// none yet (the first writer wins, every instance then reads the same).
    pub async fn mfa_key(&self, candidate: &[u8]) -> anyhow::Result<Vec<u8>> {
        let stored: Option<Vec<u8>> = db::query_scalar("SELECT key FROM mfa_keys WHERE id = 1")
            .fetch_optional(&self.read)
            .await?;
        if let Some(key) = stored {
            return Ok(key);
        }
        self.writing(async {
            let mut tx = self.write.begin().await?;
            db::query(
                "INSERT INTO mfa_keys (id, key, created_at) VALUES (1, ?, ?) ON CONFLICT DO NOTHING",
            )
                .bind(candidate)
                .bind(ts(Utc::now()))
                .execute(&mut tx)
                .await?;
            let key: Vec<u8> = db::query_scalar("SELECT key FROM mfa_keys WHERE id = 1")
                .fetch_one(&mut tx)
                .await?;
            tx.commit().await?;
            Ok(key)
        })
        .await
    }

    /// The account's authenticator, pending or confirmed.
    pub async fn totp_credential(&self, user_id: &str) -> anyhow::Result<Option<StoredTotp>> {
        let row: Option<(Vec<u8>, Option<Ts>, Option<i64>)> = db::query_as(
            "SELECT secret, confirmed_at, last_step FROM totp_credentials WHERE user_id = ?",
        )
        .bind(db::id(user_id))
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|(sealed, confirmed_at, last_step)| StoredTotp {
            sealed,
            confirmed: confirmed_at.is_some(),
            last_step,
        }))
    }

    /// Stores a pending secret, replacing a pending one; `false` (nothing
    /// written) if the account's TOTP is already on.
    pub async fn set_pending_totp(&self, user_id: &str, sealed: &[u8]) -> anyhow::Result<bool> {
        self.writing(async {
            let stored = db::query(
                "INSERT INTO totp_credentials (user_id, secret, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (user_id) DO UPDATE SET secret = ?2, created_at = ?3, last_step = NULL \
                 WHERE totp_credentials.confirmed_at IS NULL",
            )
            .bind(db::id(user_id))
            .bind(sealed)
            .bind(ts(Utc::now()))
            .execute(&self.write)
            .await?
            .rows_affected();
            Ok(stored > 0)
        })
        .await
    }

    /// Turns a pending secret on with the recovery codes, ends every other
    /// session and queues the notice, in one transaction; `false` (nothing
    /// written) if nothing is pending or the code's step was used already.
    pub async fn confirm_totp(
        &self,
        user_id: &str,
        confirmation: &Confirmation<'_>,
    ) -> anyhow::Result<bool> {
        self.writing(async {
            let mut tx = self.write.begin().await?;
            let now = ts(Utc::now());
            let confirmed = db::query(
                "UPDATE totp_credentials SET confirmed_at = ?, last_step = ? \
                 WHERE user_id = ? AND confirmed_at IS NULL \
                 AND (last_step IS NULL OR last_step < ?)",
            )
            .bind(now)
            .bind(confirmation.step)
            .bind(db::id(user_id))
            .bind(confirmation.step)
            .execute(&mut tx)
            .await?
            .rows_affected();
            if confirmed == 0 {
                return Ok(false);
            }
            write_recovery_codes(&mut tx, user_id, confirmation.recovery_hashes, &now).await?;
            db::query(
                "UPDATE sessions SET revoked_at = ? \
                 WHERE user_id = ? AND id <> ? AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(db::id(user_id))
            .bind(db::id(confirmation.keep_session))
            .execute(&mut tx)
            .await?;
            outbox::enqueue(&mut tx, Some(user_id), confirmation.notice).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Records `step` as the last accepted one of a confirmed authenticator;
    /// `false` if it is not later than the last one (a replay, or a race
    /// with another request spending the same code: one of them wins).
    pub async fn accept_totp_step(&self, user_id: &str, step: i64) -> anyhow::Result<bool> {
        self.writing(async {
            let accepted = db::query(
                "UPDATE totp_credentials SET last_step = ?1 WHERE user_id = ?2 \
                 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < ?1)",
            )
            .bind(step)
            .bind(db::id(user_id))
            .execute(&self.write)
            .await?
            .rows_affected();
            Ok(accepted > 0)
        })
        .await
    }

    /// Spends an unused recovery code; `false` if there is none with this hash.
    pub async fn spend_recovery_code(&self, user_id: &str, hash: &[u8]) -> anyhow::Result<bool> {
        self.writing(async {
            let spent = db::query(
                "UPDATE recovery_codes SET used_at = ? \
                 WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
            )
            .bind(ts(Utc::now()))
            .bind(db::id(user_id))
            .bind(hash)
            .execute(&self.write)
            .await?
            .rows_affected();
            Ok(spent > 0)
        })
        .await
    }

    /// Replaces every recovery code of an account whose TOTP is on, and
    /// queues the notice; `false` (nothing written) if TOTP is off.
    pub async fn replace_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[Vec<u8>],
        notice: &OutgoingEmail,
    ) -> anyhow::Result<bool> {
        self.writing(async {
            let mut tx = self.begin_immediate().await?;
            let on: bool = db::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM totp_credentials \
                 WHERE user_id = ? AND confirmed_at IS NOT NULL)",
            )
            .bind(db::id(user_id))
            .fetch_one(&mut tx)
            .await?;
            if !on {
                return Ok(false);
            }
            let now = ts(Utc::now());
            write_recovery_codes(&mut tx, user_id, hashes, &now).await?;
            outbox::enqueue(&mut tx, Some(user_id), notice).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Turns the second factor off: the authenticator (pending or not),
    /// the recovery codes and pending login steps go; the notice is queued
    /// if something was on. `false` (nothing written) if TOTP was not on.
    pub async fn turn_off_mfa(
        &self,
        user_id: &str,
        notice: &OutgoingEmail,
    ) -> anyhow::Result<bool> {
        self.writing(async {
            let mut tx = self.write.begin().await?;
            let removed = db::query(
                "DELETE FROM totp_credentials WHERE user_id = ? AND confirmed_at IS NOT NULL",
            )
            .bind(db::id(user_id))
            .execute(&mut tx)
            .await?
            .rows_affected();
            if removed == 0 {
                return Ok(false);
            }
            for sql in [
                "DELETE FROM recovery_codes WHERE user_id = ?",
                "DELETE FROM mfa_challenges WHERE user_id = ?",
            ] {
                db::query(sql)
                    .bind(db::id(user_id))
                    .execute(&mut tx)
                    .await?;
            }
            outbox::enqueue(&mut tx, Some(user_id), notice).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Stores the second step of a login (the token's hash only).
    pub async fn create_mfa_challenge(
        &self,
        token_hash: &[u8],
        user_id: &str,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.writing(async {
            db::query(
                "INSERT INTO mfa_challenges (token_hash, user_id, expires_at, created_at) \
                 VALUES (?, ?, ?, ?)",
            )
            .bind(token_hash)
            .bind(db::id(user_id))
            .bind(ts(expires_at))
            .bind(ts(Utc::now()))
            .execute(&self.write)
            .await?;
            Ok(())
        })
        .await
    }

    /// A second step that is unused, unexpired and has fewer than
    /// `max_failures` wrong codes.
    pub async fn live_mfa_challenge(
        &self,
        token_hash: &[u8],
        max_failures: u32,
    ) -> anyhow::Result<Option<StoredChallenge>> {
        let row: Option<(db::Uid, Ts)> = db::query_as(
            "SELECT user_id, expires_at FROM mfa_challenges WHERE token_hash = ? \
             AND used_at IS NULL AND failed_attempts < ? AND expires_at > ?",
        )
        .bind(token_hash)
        .bind(max_failures)
        .bind(ts(Utc::now()))
        .fetch_optional(&self.read)
        .await?;
        row.map(|(user_id, expires_at)| {
            Ok(StoredChallenge {
                user_id: user_id.into(),
                expires_at: parse_ts(&expires_at)?,
            })
        })
        .transpose()
    }

    /// Counts a wrong code against a second step.
    pub async fn fail_mfa_challenge(&self, token_hash: &[u8]) -> anyhow::Result<()> {
        self.writing(async {
            db::query(
                "UPDATE mfa_challenges SET failed_attempts = failed_attempts + 1 \
                 WHERE token_hash = ?",
            )
            .bind(token_hash)
            .execute(&self.write)
            .await?;
            Ok(())
        })
        .await
    }

    /// Spends a live second step; `false` if it was spent, voided or
    /// expired meanwhile (two requests with one token: one wins).
    pub async fn spend_mfa_challenge(
        &self,
        token_hash: &[u8],
        max_failures: u32,
    ) -> anyhow::Result<bool> {
        self.writing(async {
            let now = ts(Utc::now());
            let spent = db::query(
                "UPDATE mfa_challenges SET used_at = ?1 WHERE token_hash = ?2 \
                 AND used_at IS NULL AND failed_attempts < ?3 AND expires_at > ?1",
            )
            .bind(now)
            .bind(token_hash)
            .bind(max_failures)
            .execute(&self.write)
            .await?
            .rows_affected();
            Ok(spent > 0)
        })
        .await
    }

    /// Forgets second steps that expired (housekeeping).
    pub async fn prune_mfa_challenges(&self) -> anyhow::Result<u64> {
        self.delete_older(
            "DELETE FROM mfa_challenges WHERE expires_at < ?",
            Utc::now(),
        )
        .await
    }
}

/// Replaces an account's recovery codes, inside the caller's transaction.
async fn write_recovery_codes(
    conn: &mut Tx,
    user_id: &str,
    hashes: &[Vec<u8>],
    now: &Ts,
) -> anyhow::Result<()> {
    db::query("DELETE FROM recovery_codes WHERE user_id = ?")
        .bind(db::id(user_id))
        .execute(&mut *conn)
        .await?;
    for hash in hashes {
        db::query("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)")
            .bind(db::id(user_id))
            .bind(hash)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
