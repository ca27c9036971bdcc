//! The way back from an email change (`email_reverts`): a token mailed to
//! the old address when a change is confirmed, and while it is live, the
//! old address reserved for the account it was taken from.

use super::Ts;
use super::db::Uid;
use super::db::{self, Tx};
use chrono::{DateTime, Utc};

use super::users::{NewCode, replace_code};
use super::{Store, is_unique_violation, outbox, ts};
use crate::domain::email::EmailAddress;
use crate::mail::OutgoingEmail;

/// A revert to store with a confirmed email change: the address the
/// account moves away from, the token (hash only), when it expires, and the
/// notice to the old address that carries it, written for the new address
/// the change turns out to have.
pub struct NewEmailRevert<'a> {
    pub old_email: &'a EmailAddress,
    pub token_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
    pub notice: &'a (dyn Fn(&EmailAddress) -> OutgoingEmail + Sync),
}

/// A live revert, found by its token.
#[derive(Debug, sqlx::FromRow)]
pub struct LiveRevert {
    pub user_id: super::db::Uid,
    pub old_email: String,
}

/// What spending a revert writes besides the address: the password hash
/// that replaces the account's (one nobody knows), and a reset token with
/// its email to the old address.
pub struct RevertCredentials<'a> {
    pub unusable_hash: &'a str,
    pub reset_code: &'a NewCode<'a>,
    pub reset_email: &'a OutgoingEmail,
}

/// The row of a revert being spent.
#[derive(sqlx::FromRow)]
struct SpentRevert {
    id: Uid,
    user_id: Uid,
    old_email: String,
    created_at: Ts,
}

/// Whether a live revert of an account other than `except_user` holds
/// `email` (checked in the caller's transaction, before the insert or
/// update that would take the address).
pub(super) async fn reserved(
    ex: impl Into<db::Ex<'_>>,
    email: &str,
    except_user: &str,
) -> sqlx::Result<bool> {
    db::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM email_reverts \
         WHERE old_email = ? AND used_at IS NULL AND expires_at > ? AND user_id <> ?)",
    )
    .bind(email)
    .bind(ts(Utc::now()))
    .bind(db::id(except_user))
    .fetch_one(ex)
    .await
}

/// Stores a revert of the move of `user_id` from `revert.old_email` to
/// `new_email` and queues its notice, in the caller's transaction.
pub(super) async fn insert(
    conn: &mut Tx,
    user_id: &str,
    new_email: &EmailAddress,
    revert: &NewEmailRevert<'_>,
) -> anyhow::Result<()> {
    db::query(
        "INSERT INTO email_reverts (id, user_id, old_email, token_hash, expires_at, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(db::id(&uuid::Uuid::now_v7().to_string()))
    .bind(db::id(user_id))
    .bind(revert.old_email.as_str())
    .bind(revert.token_hash)
    .bind(ts(revert.expires_at))
    .bind(ts(Utc::now()))
    .execute(&mut *conn)
    .await?;
    outbox::enqueue(conn, Some(user_id), &(revert.notice)(new_email)).await
}

impl Store {
    /// Whether `email` is reserved by a live revert of another account than
    /// `except_user` (the early answer to an email change request; the
    /// confirmation checks again in its transaction).
    pub async fn address_reserved(
        &self,
        email: &EmailAddress,
        except_user: &str,
    ) -> anyhow::Result<bool> {
        Ok(reserved(&self.read, email.as_str(), except_user).await?)
    }

    /// The live (unused, unexpired) revert a token hash belongs to.
    pub async fn live_email_revert(&self, token_hash: &[u8]) -> anyhow::Result<Option<LiveRevert>> {
        let revert = db::query_as(
            "SELECT user_id, old_email FROM email_reverts \
             WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        )
        .bind(token_hash)
        .bind(ts(Utc::now()))
        .fetch_optional(&self.read)
        .await?;
        Ok(revert)
    }

    /// Spends a revert token, atomically: the old address is back on the
    /// account, the password hash is replaced by `credentials.unusable_hash`,
    /// every session ends, reverts issued after this one are void (those
    /// before it stay: if the address was moved twice, the first owner's
    /// link still works), pending reset tokens and email change codes are
    /// void, and a fresh reset token goes to the old address. Returns the
    /// user id, or `None` if the token is unknown, used or expired. Every
    /// passkey of the account is removed too (the owner adds theirs again).
    pub async fn revert_email(
        &self,
        token_hash: &[u8],
        credentials: &RevertCredentials<'_>,
    ) -> anyhow::Result<Option<String>> {
        self.writing(async {
            let mut tx = self.begin_immediate().await?;
            let now = ts(Utc::now());
            let spent: Option<SpentRevert> = db::query_as(
                "UPDATE email_reverts SET used_at = ? \
                 WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? \
                 RETURNING id, user_id, old_email, created_at",
            )
            .bind(now)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut tx)
            .await?;
            let Some(spent) = spent else {
                return Ok(None);
            };
            // Issued later means moved later, from an address the account
            // only had after this one (ids are time-ordered UUIDs; they
            // break a tie of timestamps).
            db::query(
                "DELETE FROM email_reverts WHERE user_id = ? AND used_at IS NULL \
                 AND (created_at, id) > (?, ?)",
            )
            .bind(db::id(&spent.user_id))
            .bind(spent.created_at)
            .bind(db::id(&spent.id))
            .execute(&mut tx)
            .await?;
            let moved = db::query(
                "UPDATE users SET email = ?, password_hash = ?, updated_at = ? WHERE id = ?",
            )
            .bind(&spent.old_email)
            .bind(credentials.unusable_hash)
            .bind(now)
            .bind(db::id(&spent.user_id))
            .execute(&mut tx)
            .await;
            match moved {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => anyhow::bail!(
                    "the address reserved by an email revert belongs to another account"
                ),
                Err(e) => return Err(e.into()),
            }
            super::sessions::revoke_all(&mut tx, &spent.user_id, &now).await?;
            // Whoever moved the account may have added passkeys: none stays.
            super::passkeys::delete_all(&mut tx, &spent.user_id).await?;
            super::account::void_codes(&mut tx, &spent.user_id, &["email_change"]).await?;
            replace_code(&mut tx, &spent.user_id, credentials.reset_code).await?;
            outbox::enqueue(&mut tx, Some(&spent.user_id), credentials.reset_email).await?;
            tx.commit().await?;
            Ok(Some(spent.user_id.into()))
        })
        .await
    }
}
