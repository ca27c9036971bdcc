//! What administrators read and change about any account.

use super::Ts;
use super::db::{self, Backend};
use chrono::{DateTime, Utc};

use super::user_rows::{USER_FIELDS, USER_TABLES, UserRow};
use super::users::{InsertUserError, NewUser, insert_user_row};
use super::{Store, ts};
use crate::domain::user::{AdminUserRecord, Role};

/// An administrator's change to an account; `None` leaves a field as it is.
pub struct UserChanges {
    pub active: Option<bool>,
    pub disabled: Option<bool>,
    pub role: Option<Role>,
    /// End every lockout (for each network and everywhere) and forget the
    /// failed-login counts.
    pub clear_lockout: bool,
}

#[derive(sqlx::FromRow)]
struct AdminUserRow {
    #[sqlx(flatten)]
    user: UserRow,
    locked_until: Option<Ts>,
    last_login_at: Option<Ts>,
}

impl AdminUserRow {
    /// `SELECT` of an admin's view of users; add the `WHERE`.
    fn select() -> String {
        // The latest lock of any network: an account locked only for some
        // network still shows as locked.
        format!(
            "SELECT {USER_FIELDS}, (SELECT MAX(f.locked_until) FROM login_failures f \
             WHERE f.subject = CAST(u.id AS TEXT)) AS locked_until, u.last_login_at FROM {USER_TABLES}"
        )
    }

    fn into_record(self, now: DateTime<Utc>) -> anyhow::Result<AdminUserRecord> {
        let locked_until = self.locked_until.map(Ts::time).filter(|until| *until > now);
        Ok(AdminUserRecord {
            locked_until,
            last_login_at: self.last_login_at.map(Ts::time),
            user: self.user.into_user()?,
        })
    }
}

impl Store {
    /// A page of users, oldest first, whose email contains `search` (any
    /// user without one), and how many match in all.
    pub async fn admin_list_users(
        &self,
        search: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> anyhow::Result<(Vec<AdminUserRecord>, u64)> {
        // instr()/strpos(), not LIKE: `%` and `_` in a search are plain
        // characters.
        let find = match self.backend() {
            Backend::Sqlite => "instr",
            Backend::Postgres => "strpos",
        };
        let sql = format!(
            "{} WHERE (?1 IS NULL OR {find}(u.email, ?1) > 0) \
             ORDER BY u.created_at, u.id LIMIT ?2 OFFSET ?3",
            AdminUserRow::select()
        );
        let rows: Vec<AdminUserRow> = db::query_as(&sql)
            .bind(search)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.read)
            .await?;
        let count = format!("SELECT COUNT(*) FROM users WHERE ?1 IS NULL OR {find}(email, ?1) > 0");
        let total: i64 = db::query_scalar(&count)
            .bind(search)
            .fetch_one(&self.read)
            .await?;
        let now = Utc::now();
        let users = rows
            .into_iter()
            .map(|row| row.into_record(now))
            .collect::<anyhow::Result<_>>()?;
        Ok((users, total as u64))
    }

    /// One user, as administrators see it.
    pub async fn admin_user(&self, user_id: &str) -> anyhow::Result<Option<AdminUserRecord>> {
        let sql = format!("{} WHERE u.id = ?", AdminUserRow::select());
        let row: Option<AdminUserRow> = db::query_as(&sql)
            .bind(db::id(user_id))
            .fetch_optional(&self.read)
            .await?;
        row.map(|row| row.into_record(Utc::now())).transpose()
    }

    /// Applies an administrator's change; disabling also revokes every
    /// session of the user in the same transaction. `false` if there is no
    /// such user.
    pub async fn admin_update_user(
        &self,
        user_id: &str,
        changes: &UserChanges,
    ) -> anyhow::Result<bool> {
        self.writing(async {
            let mut tx = self.write.begin().await?;
            let now = ts(Utc::now());
            let updated = db::query(
                "UPDATE users SET active = COALESCE(?, active), disabled = COALESCE(?, disabled), \
                 role = COALESCE(?, role), updated_at = ? WHERE id = ?",
            )
            .bind(changes.active)
            .bind(changes.disabled)
            .bind(changes.role.map(Role::as_str))
            .bind(now)
            .bind(db::id(user_id))
            .execute(&mut tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            if changes.clear_lockout {
                super::lockout::clear(&mut tx, user_id).await?;
            }
            if changes.disabled == Some(true) {
                super::sessions::revoke_all(&mut tx, user_id, &now).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Inserts an active administrator (made from the command line: no code,
    /// no email). The unique index decides a taken address.
    pub async fn insert_admin(&self, user: &NewUser<'_>) -> Result<(), InsertUserError> {
        let result: anyhow::Result<()> = self
            .writing(async {
                let mut tx = self.begin_immediate().await?;
                insert_user_row(&mut tx, user, true).await?;
                tx.commit().await?;
                Ok(())
            })
            .await;
        self.inserted(user, result).await
    }
}
