//! Versioned migrations from `migrations/postgres/`, applied at start-up.
//! Receivers starting together serialize on a transaction-level advisory
//! lock (safe behind a transaction pooler): the first applies, the others
//! then find nothing to do. Each migration and its `schema_migrations` row
//! commit together.

use super::{open_error, partitions};
use crate::store::StoreError;

/// Migration scripts; index + 1 is the version each one produces.
const MIGRATIONS: &[&str] = &[include_str!("../../../migrations/postgres/0001_init.sql")];

/// The schema version this binary expects.
pub(crate) const LATEST: u32 = MIGRATIONS.len() as u32;

/// Advisory-lock key of schema changes (migrations and partition creation).
pub(crate) const SCHEMA_LOCK: i64 = 0x6175_7468_6b65_7901;

/// Connects, brings the schema up to [`LATEST`] and creates the coming
/// months' partitions; returns the version before and after.
pub(crate) async fn migrate(config: tokio_postgres::Config) -> Result<(u32, u32), StoreError> {
    let (mut client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| open_error(format!("cannot connect: {e}")))?;
    let conn = tokio::spawn(connection);
    let result = apply(&mut client).await;
    drop(client);
    let _ = conn.await;
    let before = result.map_err(open_error)?;
    Ok((before, LATEST))
}

async fn apply(client: &mut tokio_postgres::Client) -> Result<u32, String> {
    let err = |e: tokio_postgres::Error| e.to_string();
    let tx = client.transaction().await.map_err(err)?;
    // "already exists, skipping" notices are not news on every start.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
           version integer PRIMARY KEY, \
           applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(err)?;
    let before: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(err)?
        .get(0);
    let before = u32::try_from(before).unwrap_or(0);
    if before > LATEST {
        return Err(format!(
            "database schema is version {before}, newer than this binary ({LATEST}); upgrade authkey-receiver"
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(before as usize) {
        let version = i32::try_from(i + 1).expect("few migrations");
        tx.batch_execute(sql)
            .await
            .map_err(|e| format!("migration {version} failed: {e}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(err)?;
    }
    partitions::create_ahead(&tx, chrono::Utc::now())
        .await
        .map_err(err)?;
    tx.commit().await.map_err(err)?;
    Ok(before)
}
