//! Versioned migrations tracked in `PRAGMA user_version`. Migration 1 is
//! `schema.sql`; later ones are appended to [`MIGRATIONS`] and never edited.

use rusqlite::Connection;

/// Migration scripts; index + 1 is the version each one produces.
const MIGRATIONS: &[&str] = &[include_str!("../../../schema.sql")];

/// The schema version this binary expects.
pub(crate) const LATEST: u32 = MIGRATIONS.len() as u32;

/// Brings the database up to [`LATEST`]; returns the version it had.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, String> {
    let before: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if before > LATEST {
        return Err(format!(
            "database schema is version {before}, newer than this binary ({LATEST}); upgrade authkey-receiver"
        ));
    }
    if before == 0 {
        // Must precede the first table so archive runs can hand pages back.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(|e| e.to_string())?;
        // Setting WAL mode has already written the header, so the new mode
        // only takes effect after a VACUUM (instant on an empty file).
        conn.execute_batch("VACUUM").map_err(|e| e.to_string())?;
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(before as usize) {
        let version = i + 1;
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        tx.execute_batch(sql)
            .map_err(|e| format!("migration {version} failed: {e}"))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(before)
}
