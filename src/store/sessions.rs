//! Sessions and their refresh tokens.

use std::sync::LazyLock;

use super::Ts;
use super::db::Uid;
use super::db::{self, Tx};
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use anyhow::Context;

use super::lockout::{LoginSubject, RightAttempt, take_back_right};
use super::user_rows::{USER_FIELDS, UserRow};
use super::{Store, parse_ts, ts};
use crate::domain::session::Session;
use crate::domain::user::{Role, User};

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
        role: Role,
        /// The session's `amr` values, space-separated.
        amr: String,
    },
    /// The token was spent before the grace window: the session is now revoked.
    ReuseDetected,
    /// Unknown token, or its session is over.
    Invalid,
}

/// A live session as authentication sees it.
pub struct LiveSession {
    /// The session's user as the database has it now (role included, not
    /// as it was when the token was issued).
    pub user: User,
    pub last_used_at: DateTime<Utc>,
}

/// The query of a live session with its user: `extra` columns (ending
/// in a comma) before the [`LiveSessionRow`]'s, the sessions picked by
/// `key`, and the time now as the placeholder `now`. One text for what
/// "live" means, read one at a time ([`Store::live_session`]) or in
/// batches (`session_reads`).
pub(super) fn live_session_query(extra: &str, key: &str, now: &str) -> String {
    format!(
        "SELECT {extra}{USER_FIELDS}, s.last_used_at FROM sessions s \
         JOIN users u ON u.id = s.user_id LEFT JOIN users r ON r.id = u.referred_by \
         WHERE {key} AND s.revoked_at IS NULL AND s.expires_at > {now} AND u.disabled = FALSE"
    )
}

#[derive(sqlx::FromRow, Clone)]
pub(super) struct LiveSessionRow {
    #[sqlx(flatten)]
    user: UserRow,
    last_used_at: Ts,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uid,
    created_at: Ts,
    last_used_at: Ts,
    user_agent: Option<String>,
    ip: Option<String>,
}

/// A presented refresh token with its session and user, as read for rotation.
#[derive(sqlx::FromRow)]
struct PresentedToken {
    session_id: Uid,
    spent_at: Option<Ts>,
    user_id: Uid,
    expires_at: Ts,
    revoked_at: Option<Ts>,
    role: String,
    disabled: bool,
    amr: String,
}

impl Store {
    /// Creates a session signed in with a password alone, with its first
    /// refresh token; records the login.
    pub async fn create_session(&self, s: &NewSession<'_>) -> anyhow::Result<()> {
        self.create_session_with_amr(s, "pwd", None).await
    }

    /// Creates a session whose user signed in with the methods `amr` names
    /// (RFC 8176 values, space-separated), with its first refresh token;
    /// records the login. A login's right password (`right`) is taken back
    /// from the failure counts in the same transaction.
    pub async fn create_session_with_amr(
        &self,
        s: &NewSession<'_>,
        amr: &str,
        right: Option<&RightAttempt<'_>>,
    ) -> anyhow::Result<()> {
        self.writing(async {
        let mut tx = self.write.begin().await?;
        let now = ts(Utc::now());
        if let Some(right) = right {
            let subject = LoginSubject::Account(right.user_id);
            take_back_right(&mut tx, subject, right.network, right.counted, &now).await?;
        }
        db::query(
            "INSERT INTO sessions (id, user_id, user_agent, ip, created_at, last_used_at, expires_at, amr) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(db::id(s.id))
        .bind(db::id(s.user_id))
        .bind(s.user_agent)
        .bind(s.ip)
        .bind(now)
        .bind(now)
        .bind(ts(s.expires_at))
        .bind(amr)
        .execute(&mut tx)
        .await?;
        insert_refresh_token(&mut tx, s.refresh_hash, s.id, &now).await?;
        db::query("UPDATE users SET last_login_at = ? WHERE id = ?")
            .bind(now)
            .bind(db::id(s.user_id))
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(())
        }).await
    }

    /// The session, if it exists, belongs to `user_id`, is neither revoked
    /// nor expired, and its user is not disabled; with the user as it is
    /// now. One read by primary key, answering both "is this session live?"
    /// and "who is it?" (`GET /users/me` needs nothing else): it runs on
    /// every authenticated request, so revocation, disabling and demotion
    /// count from the very next request. It is read on the calling thread
    /// when it can be (see [`super::inline`]), else through the pool.
    pub async fn live_session(
        &self,
        session_id: &str,
        user_id: &str,
    ) -> anyhow::Result<Option<LiveSession>> {
        static SQL: LazyLock<String> =
            LazyLock::new(|| live_session_query("", "s.id = ?1 AND s.user_id = ?2", "?3"));
        let now = ts(Utc::now());
        let inline = self.read_inline(|c| {
            c.prepare_cached(&SQL)?
                .query_row((session_id, user_id, &now), |row| {
                    Ok(LiveSessionRow {
                        user: UserRow::from_rusqlite(row)?,
                        last_used_at: row.get(UserRow::COLUMNS)?,
                    })
                })
                .optional()
        });
        let batched = match (&inline, &self.session_reads) {
            (None, Some(reads)) => reads.read(session_id, user_id).await,
            _ => None,
        };
        let row = match inline.or(batched) {
            Some(row) => row,
            None => {
                db::query_as(&SQL)
                    .bind(db::id(session_id))
                    .bind(db::id(user_id))
                    .bind(now)
                    .fetch_optional(&self.read)
                    .await?
            }
        };
        row.map(|row: LiveSessionRow| {
            Ok(LiveSession {
                user: row.user.into_user()?,
                last_used_at: parse_ts(&row.last_used_at)?,
            })
        })
        .transpose()
    }

    /// Records that a session was used now, unless it was recorded after `since`.
    pub async fn touch_session(
        &self,
        session_id: &str,
        since: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.writing(async {
            db::query("UPDATE sessions SET last_used_at = ? WHERE id = ? AND last_used_at < ?")
                .bind(ts(Utc::now()))
                .bind(db::id(session_id))
                .bind(ts(since))
                .execute(&self.write)
                .await?;
            Ok(())
        })
        .await
    }

    /// A user's live sessions, newest first.
    pub async fn live_sessions(&self, user_id: &str) -> anyhow::Result<Vec<Session>> {
        let rows: Vec<SessionRow> = db::query_as(
            "SELECT id, created_at, last_used_at, user_agent, ip FROM sessions \
             WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(db::id(user_id))
        .bind(ts(Utc::now()))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(Session {
                    id: row.id.into(),
                    created_at: parse_ts(&row.created_at)?,
                    last_used_at: parse_ts(&row.last_used_at)?,
                    user_agent: row.user_agent,
                    ip: row.ip,
                })
            })
            .collect()
    }

    /// Spends a refresh token and stores its successor, in one transaction.
    ///
    /// Design: every refresh token ever issued for a session has a row in
    /// `refresh_tokens` (hash only), marked `spent_at` on first use.
    ///
    /// - Unspent: it is marked spent and a successor is stored.
    /// - Spent less than `grace` ago: two tabs refreshed with the same token
    ///   at once. The late one gets a successor too, for the same session;
    ///   the first tab's successor stays valid, so neither tab is logged out.
    ///   The late tab cannot be given the first tab's token: only its hash is
    ///   stored. `spent_at` is not moved, so the window never stretches.
    /// - Spent longer ago: the token was copied (a thief, or a client that
    ///   kept an old token). The whole session is revoked, so the thief's
    ///   and the victim's tokens all die; the user logs in again.
    ///
    /// The price of the window: someone holding a token within `grace`
    /// seconds of its use also gets a pair. Reusing any spent token after the
    /// window still revokes the session, theirs included.
    ///
    /// Concurrent presentations are ordered by the write lock
    /// (`BEGIN IMMEDIATE`, one writer connection): exactly one finds the
    /// token unspent; the others see it spent moments ago, within the window.
    pub async fn rotate_refresh_token(
        &self,
        presented_hash: &[u8],
        successor_hash: &[u8],
        grace: std::time::Duration,
    ) -> anyhow::Result<RefreshOutcome> {
        self.writing(async {
        let mut tx = self.begin_immediate().await?;
        let now = Utc::now();
        let row: Option<PresentedToken> = db::query_as(
            "SELECT rt.session_id, rt.spent_at, s.user_id, s.expires_at, s.revoked_at, u.role, u.disabled, s.amr \
             FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id JOIN users u ON u.id = s.user_id \
             WHERE rt.token_hash = ?",
        )
        .bind(presented_hash)
        .fetch_optional(&mut tx)
        .await?;
        let Some(PresentedToken {
            session_id,
            spent_at,
            user_id,
            expires_at,
            revoked_at,
            role,
            disabled,
            amr,
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
                db::query("UPDATE refresh_tokens SET spent_at = ? WHERE token_hash = ?")
                    .bind(now_ts)
                    .bind(presented_hash)
                    .execute(&mut tx)
                    .await?;
            }
        }
        insert_refresh_token(&mut tx, successor_hash, &session_id, &now_ts).await?;
        db::query("UPDATE sessions SET last_used_at = ? WHERE id = ?")
            .bind(now_ts)
            .bind(db::id(&session_id))
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        let role =
            Role::parse(&role).with_context(|| format!("unknown role in the database: {role}"))?;
        Ok(RefreshOutcome::Rotated {
            session_id: session_id.into(),
            user_id: user_id.into(),
            role,
            amr,
        })
        }).await
    }

    /// Revokes one live session of a user; `false` if there was none to end
    /// (unknown, someone else's, already revoked or expired).
    pub async fn revoke_session(&self, session_id: &str, user_id: &str) -> anyhow::Result<bool> {
        self.writing(async {
            let now = ts(Utc::now());
            let ended = db::query(
                "UPDATE sessions SET revoked_at = ? \
             WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?",
            )
            .bind(now)
            .bind(db::id(session_id))
            .bind(db::id(user_id))
            .bind(now)
            .execute(&self.write)
            .await?
            .rows_affected();
            Ok(ended > 0)
        })
        .await
    }

    /// Revokes every session of a user.
    pub async fn revoke_all_sessions(&self, user_id: &str) -> anyhow::Result<()> {
        self.writing(async {
            let mut tx = self.write.begin().await?;
            revoke_all(&mut tx, user_id, &ts(Utc::now())).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}

async fn insert_refresh_token(
    conn: &mut Tx,
    hash: &[u8],
    session_id: &str,
    now: &Ts,
) -> anyhow::Result<()> {
    db::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)")
        .bind(hash)
        .bind(db::id(session_id))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks a session revoked: its access and refresh tokens stop working.
async fn revoke(conn: &mut Tx, session_id: &str, now: &Ts) -> anyhow::Result<()> {
    db::query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
        .bind(now)
        .bind(db::id(session_id))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Revokes every live session of a user.
pub(super) async fn revoke_all(conn: &mut Tx, user_id: &str, now: &Ts) -> anyhow::Result<()> {
    db::query("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(db::id(user_id))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with two users (`bob` referred by `amy`) and a session of bob's.
    async fn seeded() -> (tempfile::TempDir, Store) {
        let (dir, store) = crate::store::temp_store().await;
        // Distinct values for every column, so a column read in the wrong
        // place shows.
        let now = Utc::now();
        let (created, later) = (ts(now), ts(now + chrono::Duration::hours(1)));
        let (updated, used) = (
            ts(now + chrono::Duration::seconds(1)),
            ts(now + chrono::Duration::seconds(2)),
        );
        for sql in [
            "INSERT INTO users (id, email, password_hash, referral_code, created_at, updated_at) \
             VALUES ('amy', 'amy@example.com', 'h', 'AMYCODE1', ?1, ?1)",
            "INSERT INTO users (id, email, password_hash, name, active, referral_code, \
             referred_by, created_at, updated_at) \
             VALUES ('bob', 'bob@example.com', 'bob-hash', 'Bob', TRUE, 'BOBCODE1', 'amy', \
             ?1, ?3)",
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at) \
             VALUES ('s1', 'bob', ?1, ?4, ?2)",
        ] {
            db::query(sql)
                .bind(created)
                .bind(later)
                .bind(updated)
                .bind(used)
                .execute(&store.write)
                .await
                .expect(sql);
        }
        (dir, store)
    }

    /// Every field, the password hash included (`User`'s Debug hides it).
    fn summary(session: Option<LiveSession>) -> Option<String> {
        session.map(|s| {
            let u = s.user;
            format!(
                "{} {} {} {:?} {} {} {} {} {:?} {} {} {}",
                u.id,
                u.email,
                u.password_hash,
                u.name,
                u.active,
                u.disabled,
                u.role.as_str(),
                u.referral_code,
                u.referred_by_code,
                u.created_at,
                u.updated_at,
                s.last_used_at
            )
        })
    }

    #[tokio::test]
    async fn the_session_read_answers_alike_on_the_calling_thread_and_through_the_pool() {
        let (_dir, store) = seeded().await;
        let inline = store.live_session("s1", "bob").await.unwrap();
        let user = &inline.as_ref().expect("live").user;
        assert_eq!(
            (
                user.name.as_deref(),
                user.active,
                user.referred_by_code.as_deref()
            ),
            (Some("Bob"), true, Some("AMYCODE1"))
        );
        assert!(store.live_session("s1", "amy").await.unwrap().is_none());

        store.inline.as_ref().expect("a file database").close();
        let pooled = store.live_session("s1", "bob").await.unwrap();
        assert!(pooled.is_some());
        assert_eq!(summary(pooled), summary(inline));
        assert!(store.live_session("s1", "amy").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_revoked_session_is_over_at_once_on_both_paths() {
        let (_dir, store) = seeded().await;
        assert!(store.live_session("s1", "bob").await.unwrap().is_some());
        assert!(store.revoke_session("s1", "bob").await.unwrap());
        assert!(store.live_session("s1", "bob").await.unwrap().is_none());
        store.inline.as_ref().expect("a file database").close();
        assert!(store.live_session("s1", "bob").await.unwrap().is_none());
    }
}
