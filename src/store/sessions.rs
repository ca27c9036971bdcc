//! Sessions and their refresh tokens.

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::{Store, parse_ts, ts};

/// What a login writes.
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
    pub refresh_hash: &'a [u8],
}

/// The outcome of presenting a refresh token.
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A new refresh token was stored for this session.
    Rotated {
        session_id: String,
        user_id: String,
        role: String,
    },
    /// The token was spent before the grace window: the session is now revoked.
    ReuseDetected,
    /// Unknown token, or its session is over.
    Invalid,
}

/// A presented refresh token with its session and user, as read for rotation.
#[derive(sqlx::FromRow)]
struct PresentedToken {
    session_id: String,
    spent_at: Option<String>,
    user_id: String,
    expires_at: String,
    revoked_at: Option<String>,
    role: String,
    disabled: bool,
}

impl Store {
    /// Creates a session with its first refresh token; records the login.
    pub async fn create_session(&self, s: &NewSession<'_>) -> anyhow::Result<()> {
        let mut tx = self.write.begin().await?;
        let now = ts(Utc::now());
        sqlx::query(
            "INSERT INTO sessions (id, user_id, user_agent, ip, created_at, last_used_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.id)
        .bind(s.user_id)
        .bind(s.user_agent)
        .bind(s.ip)
        .bind(&now)
        .bind(&now)
        .bind(ts(s.expires_at))
        .execute(&mut *tx)
        .await?;
        insert_refresh_token(&mut tx, s.refresh_hash, s.id, &now).await?;
        sqlx::query("UPDATE users SET last_login_at = ?, failed_logins = 0 WHERE id = ?")
            .bind(&now)
            .bind(s.user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a session exists, belongs to `user_id`, and is neither revoked nor expired.
    pub async fn session_is_live(&self, session_id: &str, user_id: &str) -> anyhow::Result<bool> {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT s.expires_at, s.revoked_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = ? AND s.user_id = ? AND u.disabled = FALSE",
        )
        .bind(session_id)
        .bind(user_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(match row {
            Some((expires_at, None)) => parse_ts(&expires_at)? > Utc::now(),
            _ => false,
        })
    }

    /// Spends a refresh token and stores its successor, in one transaction.
    ///
    /// A token spent less than `grace` ago still gets a successor: two tabs
    /// refreshing with the same token at once both keep a working session.
    /// After the window, presenting it again means it was copied: the whole
    /// session is revoked, so the thief's and the victim's tokens both die.
    pub async fn rotate_refresh_token(
        &self,
        presented_hash: &[u8],
        successor_hash: &[u8],
        grace: std::time::Duration,
    ) -> anyhow::Result<RefreshOutcome> {
        let mut tx = self.write.begin().await?;
        let now = Utc::now();
        let row: Option<PresentedToken> = sqlx::query_as(
            "SELECT rt.session_id, rt.spent_at, s.user_id, s.expires_at, s.revoked_at, u.role, u.disabled \
             FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id JOIN users u ON u.id = s.user_id \
             WHERE rt.token_hash = ?",
        )
        .bind(presented_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(PresentedToken {
            session_id,
            spent_at,
            user_id,
            expires_at,
            revoked_at,
            role,
            disabled,
        }) = row
        else {
            return Ok(RefreshOutcome::Invalid);
        };
        if revoked_at.is_some() || disabled || parse_ts(&expires_at)? <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        let now_ts = ts(now);
        match spent_at {
            Some(spent) => {
                let grace = chrono::Duration::from_std(grace)?;
                if now - parse_ts(&spent)? > grace {
                    revoke(&mut tx, &session_id, &now_ts).await?;
                    tx.commit().await?;
                    return Ok(RefreshOutcome::ReuseDetected);
                }
            }
            None => {
                sqlx::query("UPDATE refresh_tokens SET spent_at = ? WHERE token_hash = ?")
                    .bind(&now_ts)
                    .bind(presented_hash)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        insert_refresh_token(&mut tx, successor_hash, &session_id, &now_ts).await?;
        sqlx::query("UPDATE sessions SET last_used_at = ? WHERE id = ?")
            .bind(&now_ts)
            .bind(&session_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated {
            session_id,
            user_id,
            role,
        })
    }

    /// Revokes one session of a user.
    pub async fn revoke_session(&self, session_id: &str, user_id: &str) -> anyhow::Result<bool> {
        let mut tx = self.write.begin().await?;
        let owned: Option<String> =
            sqlx::query_scalar("SELECT id FROM sessions WHERE id = ? AND user_id = ?")
                .bind(session_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        if owned.is_some() {
            revoke(&mut tx, session_id, &ts(Utc::now())).await?;
        }
        tx.commit().await?;
        Ok(owned.is_some())
    }

    /// Revokes every session of a user.
    pub async fn revoke_all_sessions(&self, user_id: &str) -> anyhow::Result<()> {
        let mut tx = self.write.begin().await?;
        revoke_all(&mut tx, user_id, &ts(Utc::now())).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_refresh_token(
    conn: &mut SqliteConnection,
    hash: &[u8],
    session_id: &str,
    now: &str,
) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)")
        .bind(hash)
        .bind(session_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks a session revoked and forgets its refresh tokens (they can never work again).
async fn revoke(conn: &mut SqliteConnection, session_id: &str, now: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
        .bind(now)
        .bind(session_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Revokes every live session of a user.
pub(super) async fn revoke_all(
    conn: &mut SqliteConnection,
    user_id: &str,
    now: &str,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
