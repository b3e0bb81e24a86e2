//! SQL for API tokens and the audit log. Admin writes are rare, so each runs
//! on its own short-lived write connection on the blocking pool rather than
//! through the ingest writer's queue; SQLite's lock (with the busy timeout)
//! orders them against ingest commits.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::SqliteStore;
use crate::store::{AuditEntry, NewToken, StoreError, TokenRecord};

const TOKEN_COLUMNS: &str =
    "id, name, role, clients, totp_secret, created_at, revoked_at, totp_locked_until FROM api_tokens";

const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, actor, role, action, client_id, filters, \
     rows, reason, source_ip, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// Appends an audit row on `conn`.
pub(super) fn insert_audit(conn: &Connection, e: &AuditEntry) -> rusqlite::Result<()> {
    conn.execute(
        INSERT_AUDIT,
        params![
            e.at,
            e.actor,
            e.role,
            e.action,
            e.client_id,
            e.filters,
            e.rows,
            e.reason,
            e.source_ip,
            e.outcome
        ],
    )
    .map(|_| ())
}

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let clients: Option<String> = r.get(3)?;
    Ok(TokenRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        clients: clients.and_then(|c| serde_json::from_str(&c).ok()),
        totp_secret: r.get(4)?,
        created_at: r.get(5)?,
        revoked_at: r.get(6)?,
        totp_locked_until: r.get(7)?,
    })
}

impl SqliteStore {
    /// Runs `f` on a new write connection on the blocking thread pool.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let opener = self.readers.opener.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = opener.open(false)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
        .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    pub(crate) async fn create_token(
        &self,
        token: NewToken,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let clients = token
                .clients
                .as_ref()
                .map(|c| serde_json::Value::from(c.clone()).to_string());
            let inserted = tx.execute(
                "INSERT INTO api_tokens (name, token_hash, role, clients, totp_secret, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
                params![
                    token.name,
                    token.hash.as_slice(),
                    token.role,
                    clients,
                    token.totp_secret,
                    token.created_at
                ],
            )?;
            if inserted == 1 {
                insert_audit(&tx, &audit)?;
            }
            tx.commit()?;
            Ok(inserted == 1)
        })
        .await
    }

    pub(crate) async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.readers
            .read(|conn| {
                let mut stmt = conn.prepare(&format!("SELECT {TOKEN_COLUMNS} ORDER BY name"))?;
                let rows = stmt.query_map([], token_from_row)?;
                rows.collect()
            })
            .await
    }

    pub(crate) async fn revoke_token(
        &self,
        name: String,
        at: i64,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed = tx.execute(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                params![name, at],
            )?;
            if changed == 1 {
                insert_audit(&tx, &audit)?;
            }
            tx.commit()?;
            Ok(changed == 1)
        })
        .await
    }

    pub(crate) async fn token_by_hash(
        &self,
        hash: [u8; 32],
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.readers
            .read(move |conn| {
                conn.query_row(
                    &format!("SELECT {TOKEN_COLUMNS} WHERE token_hash = ?1"),
                    [hash.as_slice()],
                    token_from_row,
                )
                .optional()
            })
            .await
    }

    pub(crate) async fn use_totp_step(&self, id: i64, step: i64) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE api_tokens SET totp_last_step = ?2, totp_failures = 0 \
                 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                params![id, step],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    pub(crate) async fn totp_failed(
        &self,
        id: i64,
        max: i64,
        locked_until: i64,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE api_tokens SET \
                   totp_locked_until = CASE WHEN totp_failures + 1 >= ?2 \
                     THEN ?3 ELSE totp_locked_until END, \
                   totp_failures = CASE WHEN totp_failures + 1 >= ?2 \
                     THEN 0 ELSE totp_failures + 1 END \
                 WHERE id = ?1",
                params![id, max, locked_until],
            )
            .map(|_| ())
        })
        .await
    }

    pub(crate) async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.write(move |conn| insert_audit(conn, &entry)).await
    }

    pub(crate) async fn audit_since(&self, since: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.readers
            .read(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT at, actor, role, action, client_id, filters, rows, reason, \
                     source_ip, outcome FROM audit_log WHERE at >= ?1 ORDER BY at, id",
                )?;
                let rows = stmt.query_map([since], |r| {
                    Ok(AuditEntry {
                        at: r.get(0)?,
                        actor: r.get(1)?,
                        role: r.get(2)?,
                        action: r.get(3)?,
                        client_id: r.get(4)?,
                        filters: r.get(5)?,
                        rows: r.get(6)?,
                        reason: r.get(7)?,
                        source_ip: r.get(8)?,
                        outcome: r.get(9)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }
}
