//! The PostgreSQL schema and `sesame copy --to postgres://…`. These tests
//! need a PostgreSQL server: they run when `SESAME_TEST_POSTGRES_URL` (a URL
//! whose role may `CREATE DATABASE`) is set, and otherwise say why they skip.

use std::collections::BTreeMap;

use sqlx::{Connection, PgConnection, PgPool, SqlitePool};

/// A fresh, empty PostgreSQL database for one test, or `None` (with the
/// reason printed) when no server is configured.
async fn fresh_postgres(test: &str) -> Option<String> {
    let Ok(admin_url) = std::env::var("SESAME_TEST_POSTGRES_URL") else {
        eprintln!("{test}: skipped, SESAME_TEST_POSTGRES_URL is not set");
        return None;
    };
    let name = format!("sesame_copy_{}", uuid::Uuid::now_v7().simple());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connect to SESAME_TEST_POSTGRES_URL: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    admin.close().await.ok();
    Some(with_database(&admin_url, &name))
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let mut url = reqwest::Url::parse(url).expect("SESAME_TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Every table (but sqlx's bookkeeping) and its columns in order, as a
/// fresh SQLite database has them after sesame's migrations.
async fn sqlite_schema() -> BTreeMap<String, Vec<String>> {
    let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
    sesame::store::MIGRATOR.run(&pool).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut schema = BTreeMap::new();
    for table in tables {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(&table)
                .fetch_all(&pool)
                .await
                .unwrap();
        schema.insert(table, columns);
    }
    schema
}

/// The same for a PostgreSQL database.
async fn postgres_schema(pool: &PgPool) -> BTreeMap<String, Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' \
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut schema: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (table, column) in rows {
        schema.entry(table).or_default().push(column);
    }
    schema
}

#[tokio::test]
async fn the_postgres_migrations_make_every_sqlite_table_and_column() {
    let Some(url) =
        fresh_postgres("the_postgres_migrations_make_every_sqlite_table_and_column").await
    else {
        return;
    };
    let pool = PgPool::connect(&url).await.unwrap();
    sesame::store::PG_MIGRATOR.run(&pool).await.unwrap();
    assert_eq!(postgres_schema(&pool).await, sqlite_schema().await);
    // Applying them again (every start does) changes nothing.
    sesame::store::PG_MIGRATOR.run(&pool).await.unwrap();
    pool.close().await;
}
