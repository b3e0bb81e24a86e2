//! SQL for API tokens and the audit log. Admin writes are rare and each is
//! its own short transaction on a pooled connection, beside the writer's.

use tokio_postgres::{GenericClient, Row};

use super::PgStore;
use crate::store::{AuditEntry, NewToken, StoreError, TokenRecord};

const TOKEN_COLUMNS: &str =
    "id, name, role, clients, totp_secret, created_at, revoked_at, totp_locked_until FROM api_tokens";

const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, actor, role, action, client_id, filters, \
     rows, reason, source_ip, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Appends an audit row on `client` (a connection or a transaction).
pub(super) async fn insert_audit(
    client: &impl GenericClient,
    e: &AuditEntry,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            INSERT_AUDIT,
            &[
                &e.at,
                &e.actor,
                &e.role,
                &e.action,
                &e.client_id,
                &e.filters,
                &e.rows,
                &e.reason,
                &e.source_ip,
                &e.outcome,
            ],
        )
        .await
        .map(|_| ())
}

fn token_from_row(r: &Row) -> TokenRecord {
    let clients: Option<String> = r.get(3);
    TokenRecord {
        id: r.get(0),
        name: r.get(1),
        role: r.get(2),
        clients: clients.and_then(|c| serde_json::from_str(&c).ok()),
        totp_secret: r.get(4),
        created_at: r.get(5),
        revoked_at: r.get(6),
        totp_locked_until: r.get(7),
    }
}

impl PgStore {
    pub(crate) async fn create_token(
        &self,
        token: NewToken,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        self.with_client(move |mut c| async move {
            let tx = c.transaction().await?;
            let clients = token
                .clients
                .as_ref()
                .map(|c| serde_json::Value::from(c.clone()).to_string());
            let inserted = tx
                .execute(
                    "INSERT INTO api_tokens (name, token_hash, role, clients, totp_secret, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
                    &[
                        &token.name,
                        &token.hash.as_slice(),
                        &token.role,
                        &clients,
                        &token.totp_secret,
                        &token.created_at,
                    ],
                )
                .await?;
            if inserted == 1 {
                insert_audit(&*tx, &audit).await?;
            }
            tx.commit().await?;
            Ok(inserted == 1)
        })
        .await
    }

    pub(crate) async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.with_client(|c| async move {
            let rows = c
                .query(&format!("SELECT {TOKEN_COLUMNS} ORDER BY name"), &[])
                .await?;
            Ok(rows.iter().map(token_from_row).collect())
        })
        .await
    }

    pub(crate) async fn revoke_token(
        &self,
        name: String,
        at: i64,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        self.with_client(move |mut c| async move {
            let tx = c.transaction().await?;
            let changed = tx
                .execute(
                    "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                    &[&name, &at],
                )
                .await?;
            if changed == 1 {
                insert_audit(&*tx, &audit).await?;
            }
            tx.commit().await?;
            Ok(changed == 1)
        })
        .await
    }

    pub(crate) async fn token_by_hash(
        &self,
        hash: [u8; 32],
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.with_client(move |c| async move {
            let row = c
                .query_opt(
                    &format!("SELECT {TOKEN_COLUMNS} WHERE token_hash = $1"),
                    &[&hash.as_slice()],
                )
                .await?;
            Ok(row.as_ref().map(token_from_row))
        })
        .await
    }

    pub(crate) async fn use_totp_step(&self, id: i64, step: i64) -> Result<bool, StoreError> {
        self.with_client(move |c| async move {
            let changed = c
                .execute(
                    "UPDATE api_tokens SET totp_last_step = $2, totp_failures = 0 \
                     WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
                    &[&id, &step],
                )
                .await?;
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
        self.with_client(move |c| async move {
            c.execute(
                "UPDATE api_tokens SET \
                   totp_locked_until = CASE WHEN totp_failures + 1 >= $2 \
                     THEN $3 ELSE totp_locked_until END, \
                   totp_failures = CASE WHEN totp_failures + 1 >= $2 \
                     THEN 0 ELSE totp_failures + 1 END \
                 WHERE id = $1",
                &[&id, &max, &locked_until],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    pub(crate) async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.with_client(move |c| async move { insert_audit(&**c, &entry).await })
            .await
    }

    pub(crate) async fn audit_since(&self, since: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.with_client(move |c| async move {
            let rows = c
                .query(
                    "SELECT at, actor, role, action, client_id, filters, rows, reason, \
                     source_ip, outcome FROM audit_log WHERE at >= $1 ORDER BY at, id",
                    &[&since],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| AuditEntry {
                    at: r.get(0),
                    actor: r.get(1),
                    role: r.get(2),
                    action: r.get(3),
                    client_id: r.get(4),
                    filters: r.get(5),
                    rows: r.get(6),
                    reason: r.get(7),
                    source_ip: r.get(8),
                    outcome: r.get(9),
                })
                .collect())
        })
        .await
    }
}
