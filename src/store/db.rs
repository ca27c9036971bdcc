//! One way to run a statement on either backend, SQLite or PostgreSQL.
//!
//! The store's SQL is written once, in the dialect both backends share,
//! with SQLite's `?` placeholders; [`query`] collects the values bound to
//! it and, at execution, builds the sqlx query of whichever backend the
//! executor belongs to. For PostgreSQL the placeholders become `$1…$n`
//! ([`numbered`]). Where the dialects differ the store picks the text by
//! [`Pool::backend`].
//!
//! The values carry what the column is ([`Value`]), because PostgreSQL's
//! columns are typed where SQLite's are text: an id is bound as `uuid`
//! there ([`id`]), a time as `timestamptz` ([`super::ts`]). Rows decode
//! through sqlx's `FromRow` on either backend, with [`Uid`] and [`Ts`] for
//! those two kinds of column.
//!
//! The cost, measured against the plain sqlx calls it replaced: one small
//! vector of values per statement and, on PostgreSQL, one copy of the SQL
//! text — nothing next to a round trip to the database.

use std::borrow::Cow;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteRow};
use sqlx::{FromRow, Row};

use super::time::Ts;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool of connections to either backend.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The key of the transaction-scoped advisory lock every PostgreSQL write
/// transaction takes first (see [`Pool::begin`]).
const WRITE_LOCK: i64 = 0x7365_7361_6d65; // "sesame"

impl Pool {
    pub fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a write transaction.
    ///
    /// On SQLite one writer connection per process serializes them, and
    /// the store's read-then-write transactions use [`Pool::begin_immediate`]
    /// against other processes. PostgreSQL runs transactions side by side
    /// at READ COMMITTED; so that every transaction the store wrote for
    /// SQLite keeps its meaning (a check it reads is still true when it
    /// writes), each takes one advisory lock for its duration: write
    /// transactions run one at a time across every instance, as on SQLite.
    /// Single statements outside a transaction do not take it.
    pub async fn begin(&self) -> sqlx::Result<Tx> {
        match self {
            Pool::Sqlite(pool) => Ok(Tx::Sqlite(pool.begin().await?)),
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(Tx::Postgres(tx))
            }
        }
    }

    /// Starts a write transaction that holds the write lock from its start:
    /// `BEGIN IMMEDIATE` on SQLite (a deferred one could find, at its first
    /// write, that another process wrote since its read, and fail with
    /// `SQLITE_BUSY` instead of waiting its turn); on PostgreSQL the same as
    /// [`Pool::begin`].
    pub async fn begin_immediate(&self) -> sqlx::Result<Tx> {
        match self {
            Pool::Sqlite(pool) => Ok(Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?)),
            Pool::Postgres(_) => self.begin().await,
        }
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Pool::Sqlite(pool) => pool.is_closed(),
            Pool::Postgres(pool) => pool.is_closed(),
        }
    }

    pub async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// A transaction on either backend; rolled back when dropped uncommitted.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub async fn commit(self) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Where a statement runs: a pool, or an open transaction.
pub enum Ex<'a> {
    Pool(&'a Pool),
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Pool> for Ex<'a> {
    fn from(pool: &'a Pool) -> Self {
        Ex::Pool(pool)
    }
}

impl<'a> From<&'a mut Tx> for Ex<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Ex::Tx(tx)
    }
}

/// A value bound to a placeholder, with the kind of column it is for.
#[derive(Debug, Clone)]
pub enum Value {
    Text(Option<String>),
    /// A UUID (text on SQLite, `uuid` on PostgreSQL).
    Id(Option<String>),
    /// A time (fixed-width RFC 3339 text on SQLite, `timestamptz` on PostgreSQL).
    Time(Option<DateTime<Utc>>),
    Bytes(Option<Vec<u8>>),
    Int(Option<i64>),
    Bool(Option<bool>),
}

/// What can be bound to a placeholder.
pub trait Bind {
    fn value(self) -> Value;
}

macro_rules! bind_as {
    ($variant:ident: $($ty:ty => |$v:ident| $conv:expr),* $(,)?) => {$(
        impl Bind for $ty {
            fn value(self) -> Value {
                let $v = self;
                Value::$variant(Some($conv))
            }
        }
        impl Bind for Option<$ty> {
            fn value(self) -> Value {
                Value::$variant(self.map(|$v| $conv))
            }
        }
    )*};
}

bind_as!(Text: &str => |v| v.to_owned(), String => |v| v, &String => |v| v.clone(), &&str => |v| (*v).to_owned());
bind_as!(Bytes: &[u8] => |v| v.to_vec(), Vec<u8> => |v| v, &Vec<u8> => |v| v.clone());
bind_as!(Int: i64 => |v| v, i32 => |v| i64::from(v), u32 => |v| i64::from(v));
bind_as!(Bool: bool => |v| v);
bind_as!(Time: Ts => |v| v.time(), &Ts => |v| v.time());

impl<const N: usize> Bind for &[u8; N] {
    fn value(self) -> Value {
        Value::Bytes(Some(self.to_vec()))
    }
}

impl<const N: usize> Bind for [u8; N] {
    fn value(self) -> Value {
        Value::Bytes(Some(self.to_vec()))
    }
}

/// An id bound as a UUID: `uuid` on PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct Id<'a>(pub &'a str);

/// Binds `s` as a UUID column's value.
pub fn id(s: &str) -> Id<'_> {
    Id(s)
}

/// Binds `s`, if any, as a UUID column's value.
pub fn opt_id(s: Option<&str>) -> Option<Id<'_>> {
    s.map(Id)
}

impl Bind for Id<'_> {
    fn value(self) -> Value {
        Value::Id(Some(self.0.to_owned()))
    }
}

impl Bind for Option<Id<'_>> {
    fn value(self) -> Value {
        Value::Id(self.map(|i| i.0.to_owned()))
    }
}

impl Bind for &Option<String> {
    fn value(self) -> Value {
        Value::Text(self.clone())
    }
}

impl Bind for Value {
    fn value(self) -> Value {
        self
    }
}

/// The SQL with SQLite's `?` and `?N` placeholders numbered as
/// PostgreSQL's `$N`; text inside quotes is left alone.
pub fn numbered(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 1;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    out.push_str(&next.to_string());
                    next += 1;
                } else {
                    out.push_str(&digits);
                }
            }
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn sqlite_query(
    sql: &str,
    values: Vec<Value>,
) -> sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    let mut q = sqlx::query(sql);
    for v in values {
        q = match v {
            Value::Text(v) | Value::Id(v) => q.bind(v),
            Value::Time(v) => q.bind(v.map(super::time::stored_text)),
            Value::Bytes(v) => q.bind(v),
            Value::Int(v) => q.bind(v),
            Value::Bool(v) => q.bind(v),
        };
    }
    q
}

fn pg_query(
    sql: &str,
    values: Vec<Value>,
) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
    let mut q = sqlx::query(sql);
    for v in values {
        q = match v {
            Value::Text(v) => q.bind(v),
            // Not a UUID (a path segment someone typed): the nil UUID,
            // which no row has, so the statement finds nothing — as the
            // text comparison does on SQLite.
            Value::Id(v) => {
                q.bind(v.map(|s| uuid::Uuid::parse_str(&s).unwrap_or(uuid::Uuid::nil())))
            }
            Value::Time(v) => q.bind(v),
            Value::Bytes(v) => q.bind(v),
            Value::Int(v) => q.bind(v),
            Value::Bool(v) => q.bind(v),
        };
    }
    q
}

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    rows: u64,
}

impl Done {
    pub fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A row of either backend.
pub enum AnyRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

/// What a row can be read as on both backends.
pub trait Decodes:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> Decodes for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// What a single column can be read as on both backends.
pub trait Scalar:
    for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
    + Send
    + Unpin
{
}
impl<T> Scalar for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
        + Send
        + Unpin
{
}

impl AnyRow {
    fn get<T: Decodes>(&self) -> sqlx::Result<T> {
        match self {
            AnyRow::Sqlite(row) => T::from_row(row),
            AnyRow::Postgres(row) => T::from_row(row),
        }
    }

    fn first<T: Scalar>(&self) -> sqlx::Result<T> {
        match self {
            AnyRow::Sqlite(row) => row.try_get(0),
            AnyRow::Postgres(row) => row.try_get(0),
        }
    }
}

/// Runs sqlx's `$method` of the query built for whichever backend `$ex` is
/// (SQLite's SQL as written, PostgreSQL's with numbered placeholders) on
/// that pool or transaction, and passes the answer through `$sqlite` or
/// `$pg`.
macro_rules! on_backend {
    ($query:expr, $ex:expr, $method:ident, $sqlite:expr, $pg:expr) => {{
        let Query { sql, values } = $query;
        match $ex.into() {
            Ex::Pool(Pool::Sqlite(pool)) => {
                ($sqlite)(sqlite_query(sql, values).$method(pool).await?)
            }
            Ex::Tx(Tx::Sqlite(tx)) => {
                ($sqlite)(sqlite_query(sql, values).$method(&mut **tx).await?)
            }
            Ex::Pool(Pool::Postgres(pool)) => {
                let sql = numbered(sql);
                ($pg)(pg_query(&sql, values).$method(pool).await?)
            }
            Ex::Tx(Tx::Postgres(tx)) => {
                let sql = numbered(sql);
                ($pg)(pg_query(&sql, values).$method(&mut **tx).await?)
            }
        }
    }};
}

/// A statement and the values bound to it so far.
#[must_use = "a query does nothing until it is executed"]
pub struct Query<'s> {
    sql: &'s str,
    values: Vec<Value>,
}

/// A statement to run on either backend (see the module's documentation).
pub fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        values: Vec::new(),
    }
}

/// A statement whose rows are read as `T`.
pub fn query_as<T: Decodes>(sql: &str) -> QueryAs<'_, T> {
    QueryAs {
        query: query(sql),
        row: PhantomData,
    }
}

/// A statement whose first column is read as `T`.
pub fn query_scalar<T: Scalar>(sql: &str) -> QueryScalar<'_, T> {
    QueryScalar {
        query: query(sql),
        row: PhantomData,
    }
}

impl<'s> Query<'s> {
    pub fn bind(mut self, value: impl Bind) -> Self {
        self.values.push(value.value());
        self
    }

    pub async fn execute<'e>(self, ex: impl Into<Ex<'e>>) -> sqlx::Result<Done> {
        let rows = on_backend!(
            self,
            ex,
            execute,
            |r: sqlx::sqlite::SqliteQueryResult| r.rows_affected(),
            |r: sqlx::postgres::PgQueryResult| r.rows_affected()
        );
        Ok(Done { rows })
    }

    pub async fn fetch_all<'e>(self, ex: impl Into<Ex<'e>>) -> sqlx::Result<Vec<AnyRow>> {
        Ok(on_backend!(
            self,
            ex,
            fetch_all,
            |rows: Vec<SqliteRow>| rows.into_iter().map(AnyRow::Sqlite).collect(),
            |rows: Vec<PgRow>| rows.into_iter().map(AnyRow::Postgres).collect()
        ))
    }

    pub async fn fetch_optional<'e>(self, ex: impl Into<Ex<'e>>) -> sqlx::Result<Option<AnyRow>> {
        Ok(on_backend!(
            self,
            ex,
            fetch_optional,
            |row: Option<SqliteRow>| row.map(AnyRow::Sqlite),
            |row: Option<PgRow>| row.map(AnyRow::Postgres)
        ))
    }

    pub async fn fetch_one<'e>(self, ex: impl Into<Ex<'e>>) -> sqlx::Result<AnyRow> {
        self.fetch_optional(ex)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

/// A [`Query`] whose rows are read as `T`.
#[must_use = "a query does nothing until it is executed"]
pub struct QueryAs<'s, T> {
    query: Query<'s>,
    row: PhantomData<fn() -> T>,
}

impl<'s, T: Decodes> QueryAs<'s, T> {
    pub fn bind(mut self, value: impl Bind) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub async fn fetch_all<'e>(self, ex: impl Into<Ex<'e>>) -> sqlx::Result<Vec<T>> {
        self.query
            .fetch_all(ex)
            .await?
            .iter()
            .map(AnyRow::get)
            .collect()
    }

    pub async fn fetch_optional<'e>(self, ex: impl Into<Ex<'e>>) -> sqlx::Result<Option<T>> {
        self.query
            .fetch_optional(ex)
            .await?
            .as_ref()
            .map(AnyRow::get)
            .transpose()
    }

    pub async fn fetch_one<'e>(self, ex: impl Into<Ex<'e>>) -> sqlx::Result<T> {
        self.query.fetch_one(ex).await?.get()
    }
}

/// A [`Query`] whose first column is read as `T`.
#[must_use = "a query does nothing until it is executed"]
pub struct QueryScalar<'s, T> {
    query: Query<'s>,
    row: PhantomData<fn() -> T>,
}

impl<'s, T: Scalar> QueryScalar<'s, T> {
    pub fn bind(mut self, value: impl Bind) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub async fn fetch_all<'e>(self, ex: impl Into<Ex<'e>>) -> sqlx::Result<Vec<T>> {
        self.query
            .fetch_all(ex)
            .await?
            .iter()
            .map(AnyRow::first)
            .collect()
    }

    pub async fn fetch_optional<'e>(self, ex: impl Into<Ex<'e>>) -> sqlx::Result<Option<T>> {
        self.query
            .fetch_optional(ex)
            .await?
            .as_ref()
            .map(AnyRow::first)
            .transpose()
    }

    pub async fn fetch_one<'e>(self, ex: impl Into<Ex<'e>>) -> sqlx::Result<T> {
        self.query.fetch_one(ex).await?.first()
    }
}

/// A UUID column read as the text the domain uses (lower-case, hyphenated):
/// text on SQLite, `uuid` on PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uid(pub String);

impl From<Uid> for String {
    fn from(id: Uid) -> String {
        id.0
    }
}

impl std::ops::Deref for Uid {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl sqlx::Type<Sqlite> for Uid {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <String as sqlx::Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Sqlite> for Uid {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Uid(<String as sqlx::Decode<Sqlite>>::decode(value)?))
    }
}

impl sqlx::Type<Postgres> for Uid {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <uuid::Uuid as sqlx::Type<Postgres>>::type_info()
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for Uid {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Uid(
            <uuid::Uuid as sqlx::Decode<Postgres>>::decode(value)?.to_string()
        ))
    }
}

impl rusqlite::types::FromSql for Uid {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        String::column_result(value).map(Uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(numbered("SELECT 1"), "SELECT 1");
        assert_eq!(
            numbered("UPDATE t SET a = ?, b = '?' WHERE c = ? AND d = \"x?\""),
            "UPDATE t SET a = $1, b = '?' WHERE c = $2 AND d = \"x?\""
        );
        assert_eq!(
            numbered("WHERE a = ?1 OR b = ?1 AND c = ?2"),
            "WHERE a = $1 OR b = $1 AND c = $2"
        );
    }
}
