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
    /// `SELECT` of an admin's view of the users of `from` (which joins
    /// [`USER_TABLES`]); add the `WHERE`.
    fn select(from: &str) -> String {
        // The latest lock of any network: an account locked only for some
        // network still shows as locked.
        format!(
            "SELECT {USER_FIELDS}, (SELECT MAX(f.locked_until) FROM login_failures f \
             WHERE f.subject = CAST(u.id AS TEXT)) AS locked_until, u.last_login_at FROM {from}"
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
    /// user without one), and how many match in all (see [`Search`]).
    pub async fn admin_list_users(
        &self,
        search: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> anyhow::Result<(Vec<AdminUserRecord>, u64)> {
        let search = search.map(|search| Search::new(self.backend(), search));
        let filter = search.as_ref().map_or("", Search::filter);
        // The page's ids first, from the users table and its indexes alone;
        // then the admin's view (the referrer and four subqueries per user)
        // of those ids only. As one query, SQLite computed the view for
        // every match before sorting them and skipping to the page (its
        // sorter holds whole result rows): tens of thousands of rows for a
        // broad search at a million users, to answer 50. (`CROSS JOIN`
        // makes SQLite read the page first and look each user up by key;
        // PostgreSQL plans it as any join.)
        let page = format!(
            "(SELECT id FROM users {filter} ORDER BY created_at, id LIMIT ? OFFSET ?) page \
             CROSS JOIN {USER_TABLES}"
        );
        let sql = format!(
            "{} WHERE u.id = page.id ORDER BY u.created_at, u.id",
            AdminUserRow::select(&page)
        );
        let values = search.as_ref().map(Search::values).unwrap_or_default();
        let mut query = db::query_as::<AdminUserRow>(&sql);
        for value in &values {
            query = query.bind(value);
        }
        let rows = query.bind(limit).bind(offset).fetch_all(&self.read).await?;
        let (count, values) = match &search {
            Some(search) => search.count(),
            None => ("SELECT COUNT(*) FROM users".to_string(), Vec::new()),
        };
        let mut query = db::query_scalar::<i64>(&count);
        for value in &values {
            query = query.bind(value);
        }
        let total = query.fetch_one(&self.read).await?;
        let now = Utc::now();
        let users = rows
            .into_iter()
            .map(|row| row.into_record(now))
            .collect::<anyhow::Result<_>>()?;
        Ok((users, total as u64))
    }

    /// One user, as administrators see it.
    pub async fn admin_user(&self, user_id: &str) -> anyhow::Result<Option<AdminUserRecord>> {
        let sql = format!("{} WHERE u.id = ?", AdminUserRow::select(USER_TABLES));
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

/// An administrator's search, as the `WHERE` clause an index can serve
/// (migrations/sqlite/0011, migrations/postgres/0003) and its values.
///
/// 3 or more characters: a substring of the email. SQLite looks the
/// search's trigrams up in the FTS5 table `users_email_search` (a phrase
/// query: every trigram, in order) and checks each candidate with
/// `instr()`; PostgreSQL runs `LIKE '%…%'` on its GIN trigram index. 1 or
/// 2 characters have no trigram to look up: such a search reads every
/// email (`instr()` on SQLite, the same `LIKE` on PostgreSQL). It is the
/// one query that does, and only administrators can run it; the contract
/// says a search matches any part of the email, so it is not narrowed to a
/// prefix. In every case `%`, `_` and `\` are plain characters.
enum Search {
    /// SQLite, 3 or more characters: the FTS5 query and the search.
    Trigrams { query: String, search: String },
    /// SQLite, 1 or 2 characters: every email, by `instr()`.
    Scan(String),
    /// PostgreSQL: the `LIKE` pattern.
    Like(String),
}

impl Search {
    fn new(backend: Backend, search: &str) -> Search {
        let short = search.chars().count() < 3;
        match backend {
            Backend::Sqlite if short => Search::Scan(search.to_string()),
            Backend::Sqlite => Search::Trigrams {
                query: format!("\"{}\"", search.replace('"', "\"\"")),
                search: search.to_string(),
            },
            Backend::Postgres => {
                let escaped = search
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                Search::Like(format!("%{escaped}%"))
            }
        }
    }

    /// The `WHERE` clause on the users table (not aliased).
    fn filter(&self) -> &'static str {
        match self {
            Search::Trigrams { .. } => {
                "WHERE rowid IN (SELECT rowid FROM users_email_search \
                 WHERE users_email_search MATCH ?) AND instr(email, ?) > 0"
            }
            Search::Scan(_) => "WHERE instr(email, ?) > 0",
            Search::Like(_) => "WHERE email LIKE ? ESCAPE '\\'",
        }
    }

    /// The query counting every match, and its values.
    ///
    /// On SQLite a search of printable ASCII without upper case counts the
    /// FTS5 index's matches alone, without reading each candidate's email:
    /// stored emails are printable lower-case ASCII (`EmailAddress::parse`,
    /// which the list applies to every row it shows), and on such text the
    /// trigram match, which folds only `A`–`Z`, is exactly the substring
    /// match. That saves a lookup of every matching user, tens of thousands
    /// for a broad search at a million users. Any other search counts with
    /// the page's `WHERE` (PostgreSQL's too: its trigram index is lossy, so
    /// every candidate is checked in the table).
    fn count(&self) -> (String, Vec<String>) {
        match self {
            Search::Trigrams { query, search }
                if search
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()) =>
            {
                let count =
                    "SELECT COUNT(*) FROM users_email_search WHERE users_email_search MATCH ?";
                (count.to_string(), vec![query.clone()])
            }
            _ => (
                format!("SELECT COUNT(*) FROM users {}", self.filter()),
                self.values(),
            ),
        }
    }

    fn values(&self) -> Vec<String> {
        match self {
            Search::Trigrams { query, search } => vec![query.clone(), search.clone()],
            Search::Scan(search) => vec![search.clone()],
            Search::Like(pattern) => vec![pattern.clone()],
        }
    }
}
