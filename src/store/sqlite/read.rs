//! SQL for message lookups and the streamed export.

use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{params, Connection, Row};
use tokio::sync::mpsc;

use super::{admin::insert_audit, ReadPool, SqliteStore};
use crate::store::read::{RowEncoder, EXPORT_CHUNK_BYTES};
use crate::store::{AuditEntry, EventFilter, EventRow, MessageRow, StoreError};

const EVENT_COLUMNS: &str = "id, client_id, channel, direction, provider_message_id, phone, \
     email, status, provider_status, error_code, event_at, received_at, source_ip, text, media, \
     reply_to, payload FROM events";

/// One client's events in the index's order, so rows stream without a sort.
const EXPORT_QUERY: &str = "WHERE client_id = ?1 AND received_at >= ?2 AND received_at < ?3 \
     AND (?4 IS NULL OR channel = ?4) AND (?5 IS NULL OR direction = ?5) \
     AND (?6 IS NULL OR status = ?6) ORDER BY received_at, id";

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        client_id: r.get(1)?,
        channel: r.get(2)?,
        direction: r.get(3)?,
        provider_message_id: r.get(4)?,
        phone: r.get(5)?,
        email: r.get(6)?,
        status: r.get(7)?,
        provider_status: r.get(8)?,
        error_code: r.get(9)?,
        event_at: r.get(10)?,
        received_at: r.get(11)?,
        source_ip: r.get(12)?,
        text: r.get(13)?,
        media: r.get(14)?,
        reply_to: r.get(15)?,
        payload: r.get(16)?,
    })
}

/// How an export run ended.
enum Ended {
    /// Every row was handed over.
    Complete,
    /// The consumer went away.
    Aborted,
}

impl SqliteStore {
    pub(crate) async fn message_history(
        &self,
        client: String,
        id: String,
    ) -> Result<(Vec<MessageRow>, Vec<EventRow>), StoreError> {
        self.readers
            .read(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT recipient, channel, direction, status, provider_status, error_code, \
                     first_seen_at, last_event_at, last_received_at, event_count FROM messages \
                     WHERE client_id = ?1 AND provider_message_id = ?2 ORDER BY recipient",
                )?;
                let messages = stmt
                    .query_map(params![client, id], |r| {
                        Ok(MessageRow {
                            recipient: r.get(0)?,
                            channel: r.get(1)?,
                            direction: r.get(2)?,
                            status: r.get(3)?,
                            provider_status: r.get(4)?,
                            error_code: r.get(5)?,
                            first_seen_at: r.get(6)?,
                            last_event_at: r.get(7)?,
                            last_received_at: r.get(8)?,
                            event_count: r.get(9)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mut stmt = conn.prepare(&format!(
                    "SELECT {EVENT_COLUMNS} WHERE client_id = ?1 AND provider_message_id = ?2 \
                     ORDER BY coalesce(event_at, received_at), id"
                ))?;
                let events = stmt
                    .query_map(params![client, id], event_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((messages, events))
            })
            .await
    }

    pub(crate) fn export_events(
        &self,
        filter: EventFilter,
        header: Vec<u8>,
        encode: RowEncoder,
        mut audit: AuditEntry,
        tx: mpsc::Sender<Result<Bytes, StoreError>>,
    ) {
        let pool = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let mut rows = 0i64;
            let ended = stream(&pool, &filter, header, encode, &tx, &mut rows);
            audit.rows = Some(rows);
            audit.outcome = match &ended {
                Ok(Ended::Complete) => "ok",
                Ok(Ended::Aborted) => "aborted",
                Err(_) => "storage_unavailable",
            }
            .to_string();
            let audited = pool
                .opener
                .open(false)
                .and_then(|conn| insert_audit(&conn, &audit));
            let failure = match (ended, audited) {
                (Err(e), _) | (Ok(_), Err(e)) => Some(e),
                (Ok(_), Ok(())) => None,
            };
            if let Some(e) = failure {
                tracing::error!(error = %e, "export failed");
                let _ = tx.blocking_send(Err(StoreError::Unavailable(e.to_string())));
            }
        });
    }
}

/// Reads, encodes and sends every matching row; counts rows in `rows`.
fn stream(
    pool: &ReadPool,
    filter: &EventFilter,
    header: Vec<u8>,
    mut encode: RowEncoder,
    tx: &mpsc::Sender<Result<Bytes, StoreError>>,
    rows: &mut i64,
) -> rusqlite::Result<Ended> {
    let conn = pool.opener.open(true)?;
    // One read transaction: every client's rows come from one snapshot.
    conn.execute_batch("BEGIN")?;
    let clients = match &filter.clients {
        Some(c) => c.clone(),
        None => all_clients(&conn)?,
    };
    let mut buf = header;
    let mut stmt = conn.prepare(&format!("SELECT {EVENT_COLUMNS} {EXPORT_QUERY}"))?;
    for client in clients {
        let mut cursor = stmt.query(params![
            client,
            filter.from.unwrap_or(i64::MIN),
            filter.to.unwrap_or(i64::MAX),
            filter.channel,
            filter.direction,
            filter.status
        ])?;
        while let Some(row) = cursor.next()? {
            encode(&event_from_row(row)?, &mut buf);
            *rows += 1;
            if buf.len() >= EXPORT_CHUNK_BYTES {
                let chunk = Bytes::from(std::mem::replace(
                    &mut buf,
                    Vec::with_capacity(EXPORT_CHUNK_BYTES + 4096),
                ));
                if tx.blocking_send(Ok(chunk)).is_err() {
                    return Ok(Ended::Aborted);
                }
            }
        }
    }
    if !buf.is_empty() && tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
        return Ok(Ended::Aborted);
    }
    Ok(Ended::Complete)
}

fn all_clients(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT DISTINCT client_id FROM events ORDER BY client_id")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}
