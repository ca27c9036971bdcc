//! `sesame copy --to postgres://…`: every row of a SQLite database into a
//! PostgreSQL one, so a self-hoster who outgrows one machine keeps every
//! account, session and signing key (tokens issued before keep verifying).
//!
//! The source is read in one read transaction (one consistent snapshot)
//! on a read-only connection of its own; the target is written in one
//! transaction, so a failed copy leaves it as it was. A target that holds
//! any user is refused before anything is written. Anything else it holds
//! (the signing key, counters and singleton keys an instance started on it
//! made) is replaced by the source's: the TOTP secrets, passkey decoys and
//! live tokens only work with the source's keys.
//!
//! Rows are read and written in batches: each batch is one `INSERT … SELECT
//! FROM UNNEST(…)` with one array parameter per column. Column types come
//! from the target's schema (the migrations in `migrations/postgres/`); the
//! values are converted on the way: text uuids to `uuid`, fixed-width
//! RFC 3339 text to `timestamptz`, blobs to `bytea`. Indexes other than
//! primary keys are dropped for the load and built again before the commit.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::postgres::{PgArguments, PgConnectOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Arguments, Connection, PgConnection, Row, SqliteConnection};
use uuid::Uuid;

use super::{MIGRATOR, PG_MIGRATOR, parse_ts};

/// Every table of the schema, in an order that inserts each row after the
/// rows it refers to (`users.referred_by` is checked at commit instead).
/// A table missing here fails the copy (and a test), never silently.
pub const TABLES: &[&str] = &[
    "users",
    "one_time_codes",
    "sessions",
    "refresh_tokens",
    "signing_keys",
    "outbox",
    "outbox_lease",
    "storage_probe",
    "login_failures",
    "code_failures",
    "email_reverts",
    "address_requests",
    "mfa_keys",
    "totp_credentials",
    "recovery_codes",
    "mfa_challenges",
    "passkeys",
    "passkey_challenges",
    "passkey_decoy_key",
];

/// Rows per `INSERT`.
const BATCH: usize = 5_000;

/// How many rows of one table were copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub rows: u64,
}

/// Copies every row of the SQLite database at `sqlite_url` into the
/// PostgreSQL database at `postgres_url` (migrated first), in one
/// transaction. Refuses a target that holds any user. `progress` is called
/// after each table.
pub async fn copy(
    sqlite_url: &str,
    postgres_url: &str,
    mut progress: impl FnMut(&Copied),
) -> anyhow::Result<Vec<Copied>> {
    let mut source = open_source(sqlite_url).await?;
    let target_options = PgConnectOptions::from_str(postgres_url)
        .context("--to is not a valid PostgreSQL URL (postgres://user@host:5432/database)")?;
    let mut target = PgConnection::connect_with(&target_options)
        .await
        .context("cannot connect to the PostgreSQL database given with --to")?;
    refuse_if_holding_users(&mut target).await?;
    PG_MIGRATOR
        .run(&mut target)
        .await
        .context("applying sesame's PostgreSQL migrations to the target")?;

    let mut read = source.begin().await.context("reading the source")?;
    check_tables(&mut read).await?;
    let mut write = target.begin().await?;
    sqlx::query(&format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        TABLES.join(", ")
    ))
    .execute(&mut *write)
    .await?;
    // Again under the lock: an instance may have signed someone up since.
    refuse_if_holding_users(&mut write).await?;
    sqlx::query(&format!("TRUNCATE {} RESTART IDENTITY", TABLES.join(", ")))
        .execute(&mut *write)
        .await?;
    sqlx::query("SET CONSTRAINTS users_referred_by_fkey DEFERRED")
        .execute(&mut *write)
        .await?;
    let indexes = drop_indexes(&mut write).await?;
    let mut counts = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let rows = copy_table(&mut read, &mut write, table)
            .await
            .with_context(|| format!("copying the table {table}"))?;
        let copied = Copied { table, rows };
        progress(&copied);
        counts.push(copied);
    }
    // The deferred checks first: PostgreSQL builds no index on a table
    // with checks pending.
    sqlx::query("SET CONSTRAINTS users_referred_by_fkey IMMEDIATE")
        .execute(&mut *write)
        .await
        .context("checking every referrer exists")?;
    for definition in indexes {
        sqlx::query(&definition)
            .execute(&mut *write)
            .await
            .with_context(|| format!("rebuilding an index: {definition}"))?;
    }
    continue_outbox_ids(&mut read, &mut write).await?;
    write
        .commit()
        .await
        .context("committing the copy on the target")?;
    read.rollback().await.ok();
    Ok(counts)
}

/// Opens the SQLite database read-only (never creating it) and checks that
/// it has exactly the migrations this sesame has: the columns then match.
async fn open_source(sqlite_url: &str) -> anyhow::Result<SqliteConnection> {
    if sqlite_url.starts_with("postgres:") || sqlite_url.starts_with("postgresql:") {
        bail!("SESAME_DATABASE_URL names PostgreSQL: `sesame copy` reads a SQLite database");
    }
    let options = SqliteConnectOptions::from_str(sqlite_url)
        .context("SESAME_DATABASE_URL is not a SQLite URL: `sesame copy` reads a SQLite database")?
        .create_if_missing(false)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30));
    let file = options.get_filename().to_owned();
    if !file.is_file() {
        bail!(
            "SESAME_DATABASE_URL: there is no database at {}",
            file.display()
        );
    }
    let mut source = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot open {} for reading", file.display()))?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut source)
            .await
            .with_context(|| format!("{} is not a sesame database", file.display()))?;
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    if applied != known {
        bail!(
            "{} has migrations {applied:?}, this sesame has {known:?}: run `sesame migrate` \
             with this version first (or copy with the version that made the database)",
            file.display()
        );
    }
    Ok(source)
}

/// Fails when the target has a `users` table with a row in it.
async fn refuse_if_holding_users(target: &mut PgConnection) -> anyhow::Result<()> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('users') IS NOT NULL")
        .fetch_one(&mut *target)
        .await
        .context("checking whether the target holds users")?;
    let holds = exists
        && sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM users)")
            .fetch_one(&mut *target)
            .await
            .context("checking whether the target holds users")?;
    if holds {
        bail!(
            "the target database already holds users: `sesame copy` only writes into a \
             database without any (nothing was written)"
        );
    }
    Ok(())
}

/// Drops the indexes of the copied tables that no constraint owns (all
/// but primary keys), returning their definitions: building an index once
/// over a filled table is much faster than growing it row by row. They are
/// made again before the commit, in the same transaction.
async fn drop_indexes(target: &mut PgConnection) -> anyhow::Result<Vec<String>> {
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) \
         FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid \
         WHERE t.relname = ANY($1) AND t.relnamespace = current_schema()::regnamespace \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
    )
    .bind(TABLES)
    .fetch_all(&mut *target)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(&format!("DROP INDEX {name}"))
            .execute(&mut *target)
            .await?;
    }
    Ok(indexes
        .into_iter()
        .map(|(_, definition)| definition)
        .collect())
}

/// Fails when the source has a table this copy does not know (or lacks
/// one it does): every row must move, or none.
async fn check_tables(source: &mut SqliteConnection) -> anyhow::Result<()> {
    let found: BTreeSet<String> = source_tables(source).await?.into_iter().collect();
    let known: BTreeSet<String> = TABLES.iter().map(|t| t.to_string()).collect();
    if found != known {
        bail!(
            "the source's tables differ from the ones `sesame copy` knows: unknown {:?}, \
             missing {:?}",
            found.difference(&known).collect::<Vec<_>>(),
            known.difference(&found).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// The tables of a SQLite database of sesame's (without sqlx's and SQLite's
/// own bookkeeping, nor the admin search's FTS5 index and its shadow
/// tables: derived from users, kept by triggers on SQLite and by a
/// pg_trgm index on PostgreSQL).
pub async fn source_tables(source: &mut SqliteConnection) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(source)
    .await?)
}

/// A column's type on the target, and so how its SQLite values convert.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Uuid,
    Time,
    Bytes,
    Int,
    Bool,
}

impl Kind {
    fn of(data_type: &str) -> anyhow::Result<Kind> {
        Ok(match data_type {
            "text" => Kind::Text,
            "uuid" => Kind::Uuid,
            "timestamp with time zone" => Kind::Time,
            "bytea" => Kind::Bytes,
            "bigint" => Kind::Int,
            "boolean" => Kind::Bool,
            other => bail!("no conversion to the PostgreSQL type {other}"),
        })
    }

    fn array(self) -> &'static str {
        match self {
            Kind::Text => "text[]",
            Kind::Uuid => "uuid[]",
            Kind::Time => "timestamptz[]",
            Kind::Bytes => "bytea[]",
            Kind::Int => "int8[]",
            Kind::Bool => "bool[]",
        }
    }
}

/// One batch of one column's values.
enum Values {
    Text(Vec<Option<String>>),
    Uuid(Vec<Option<Uuid>>),
    Time(Vec<Option<DateTime<Utc>>>),
    Bytes(Vec<Option<Vec<u8>>>),
    Int(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
}

impl Values {
    fn new(kind: Kind) -> Values {
        match kind {
            Kind::Text => Values::Text(Vec::with_capacity(BATCH)),
            Kind::Uuid => Values::Uuid(Vec::with_capacity(BATCH)),
            Kind::Time => Values::Time(Vec::with_capacity(BATCH)),
            Kind::Bytes => Values::Bytes(Vec::with_capacity(BATCH)),
            Kind::Int => Values::Int(Vec::with_capacity(BATCH)),
            Kind::Bool => Values::Bool(Vec::with_capacity(BATCH)),
        }
    }

    /// Appends column `i` of a source row, converted.
    fn push(&mut self, row: &SqliteRow, i: usize) -> anyhow::Result<()> {
        match self {
            Values::Text(v) => v.push(row.try_get(i)?),
            Values::Int(v) => v.push(row.try_get(i)?),
            Values::Bool(v) => v.push(row.try_get(i)?),
            Values::Bytes(v) => v.push(row.try_get(i)?),
            Values::Uuid(v) => {
                let text: Option<&str> = row.try_get(i)?;
                v.push(text.map(Uuid::parse_str).transpose()?);
            }
            Values::Time(v) => {
                let text: Option<&str> = row.try_get(i)?;
                v.push(text.map(parse_ts).transpose()?);
            }
        }
        Ok(())
    }

    /// Adds the batch as one array parameter and empties it.
    fn bind_into(&mut self, args: &mut PgArguments) -> anyhow::Result<()> {
        let added = match self {
            Values::Text(v) => args.add(std::mem::take(v)),
            Values::Uuid(v) => args.add(std::mem::take(v)),
            Values::Time(v) => args.add(std::mem::take(v)),
            Values::Bytes(v) => args.add(std::mem::take(v)),
            Values::Int(v) => args.add(std::mem::take(v)),
            Values::Bool(v) => args.add(std::mem::take(v)),
        };
        added.map_err(|e| anyhow::anyhow!("encoding a batch: {e}"))
    }
}

/// Copies one table; returns how many rows went.
async fn copy_table(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    table: &str,
) -> anyhow::Result<u64> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *target)
    .await?;
    let source_columns: BTreeSet<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
            .bind(table)
            .fetch_all(&mut *source)
            .await?
            .into_iter()
            .collect();
    let target_columns: BTreeSet<String> = columns.iter().map(|(name, _)| name.clone()).collect();
    if source_columns != target_columns {
        bail!("the columns differ: SQLite {source_columns:?}, PostgreSQL {target_columns:?}");
    }
    let kinds = columns
        .iter()
        .map(|(name, data_type)| Kind::of(data_type).with_context(|| format!("column {name}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let names = columns
        .iter()
        .map(|(name, _)| format!("\"{name}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let arrays = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| format!("${}::{}", i + 1, kind.array()))
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!("INSERT INTO {table} ({names}) SELECT * FROM UNNEST({arrays})");
    let select = format!("SELECT {names} FROM {table}");

    let mut batch: Vec<Values> = kinds.iter().map(|k| Values::new(*k)).collect();
    let mut in_batch = 0;
    let mut total = 0;
    let mut rows = sqlx::query(&select).fetch(&mut *source);
    while let Some(row) = rows.try_next().await? {
        for (i, values) in batch.iter_mut().enumerate() {
            values
                .push(&row, i)
                .with_context(|| format!("column {} of a row", columns[i].0))?;
        }
        in_batch += 1;
        if in_batch == BATCH {
            total += insert_batch(target, &insert, &mut batch).await?;
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        total += insert_batch(target, &insert, &mut batch).await?;
    }
    Ok(total)
}

async fn insert_batch(
    target: &mut PgConnection,
    insert: &str,
    batch: &mut [Values],
) -> anyhow::Result<u64> {
    let mut args = PgArguments::default();
    for values in batch.iter_mut() {
        values.bind_into(&mut args)?;
    }
    let done = sqlx::query_with(insert, args).execute(&mut *target).await?;
    Ok(done.rows_affected())
}

/// Makes the target's next outbox id follow the source's last one, as
/// SQLite's AUTOINCREMENT would (also past ids of rows since deleted).
async fn continue_outbox_ids(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
) -> anyhow::Result<()> {
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(n) FROM (SELECT MAX(id) AS n FROM outbox \
         UNION ALL SELECT seq FROM sqlite_sequence WHERE name = 'outbox')",
    )
    .fetch_one(&mut *source)
    .await?;
    if let Some(last) = last.filter(|n| *n > 0) {
        sqlx::query("SELECT setval(pg_get_serial_sequence('outbox', 'id'), $1)")
            .bind(last)
            .execute(&mut *target)
            .await?;
    }
    Ok(())
}
