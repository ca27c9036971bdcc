//! Timestamps as stored: fixed-width RFC 3339 text in UTC on SQLite (text
//! order is time order), `timestamptz` on PostgreSQL.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::postgres::Postgres;
use sqlx::sqlite::Sqlite;

/// A time as bound to and read from a time column (see [`super::db`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ts(DateTime<Utc>);

impl Ts {
    pub fn time(self) -> DateTime<Utc> {
        self.0
    }
}

/// A time, as bound to a time column.
pub fn ts(t: DateTime<Utc>) -> Ts {
    Ts(t)
}

/// The text SQLite stores for a time: fixed-width RFC 3339 UTC.
pub fn stored_text(t: DateTime<Utc>) -> String {
    // The text of `%Y-%m-%dT%H:%M:%S%.6fZ`, without parsing that format on
    // every call (it showed in the profile of every authenticated request).
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Parses a time as SQLite stores it.
fn parse_text(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("bad timestamp in database: {s}"))?
        .with_timezone(&Utc))
}

/// What a stored time is read from.
pub trait StoredTime {
    fn stored_time(&self) -> anyhow::Result<DateTime<Utc>>;
}

impl StoredTime for Ts {
    fn stored_time(&self) -> anyhow::Result<DateTime<Utc>> {
        Ok(self.0)
    }
}

impl StoredTime for str {
    fn stored_time(&self) -> anyhow::Result<DateTime<Utc>> {
        parse_text(self)
    }
}

impl StoredTime for String {
    fn stored_time(&self) -> anyhow::Result<DateTime<Utc>> {
        parse_text(self)
    }
}

/// The time a column held.
pub fn parse_ts<T: StoredTime + ?Sized>(t: &T) -> anyhow::Result<DateTime<Utc>> {
    t.stored_time()
}

impl sqlx::Type<Sqlite> for Ts {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <String as sqlx::Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Sqlite> for Ts {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<Sqlite>>::decode(value)?;
        Ok(Ts(parse_text(text)?))
    }
}

impl sqlx::Type<Postgres> for Ts {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <DateTime<Utc> as sqlx::Type<Postgres>>::type_info()
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for Ts {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Ts(<DateTime<Utc> as sqlx::Decode<Postgres>>::decode(
            value,
        )?))
    }
}

impl rusqlite::types::FromSql for Ts {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        parse_text(text)
            .map(Ts)
            .map_err(|e| rusqlite::types::FromSqlError::Other(e.into()))
    }
}

impl rusqlite::ToSql for Ts {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(stored_text(self.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_timestamps_are_fixed_width_and_round_trip() {
        for micros in [
            0_i64,
            1,
            999_999,
            1_764_123_456_000_000,
            1_764_123_456_789_012,
        ] {
            let t = DateTime::from_timestamp_micros(micros).expect("in range");
            let text = stored_text(t);
            assert_eq!(text, t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
            assert_eq!(text.len(), "2026-11-26T02:18:11.123456Z".len());
            assert_eq!(parse_ts(text.as_str()).unwrap(), t);
        }
    }
}
