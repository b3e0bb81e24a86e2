//! SQL for message lookups and the streamed export.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{params, Connection, Row};
use tokio::sync::mpsc;

use super::{admin::insert_audit, ReadPool, SqliteStore};
use crate::store::read::{
    archived_events, export_failure, export_outcome, Chunks, Ended, ExportFailed, RowEncoder,
};
use crate::store::{AuditEntry, EventFilter, EventRow, MessageRow, StoreError};

const EVENT_COLUMNS: &str = "id, client_id, channel, direction, provider_message_id, phone, \
     email, status, provider_status, error_code, event_at, received_at, source_ip, text, media, \
     reply_to, payload FROM events";

/// An archived row still in the database: an archive run has written its
/// file but not yet deleted it. Id and receipt time together, because ids
/// are reused once the highest rows are deleted.
const LIVE_QUERY: &str = "SELECT 1 FROM events WHERE id = ?1 AND received_at = ?2";

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
        archive_dir: Option<PathBuf>,
        header: Vec<u8>,
        encode: RowEncoder,
        mut audit: AuditEntry,
        tx: mpsc::Sender<Result<Bytes, StoreError>>,
    ) {
        let pool = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let mut out = Out {
                chunks: Chunks::new(header, encode),
                tx: &tx,
            };
            let ended = stream(&pool, &filter, archive_dir.as_deref(), &mut out);
            audit.rows = Some(out.chunks.rows);
            audit.outcome = export_outcome(&ended).to_string();
            let audited = pool
                .opener
                .open(false)
                .and_then(|conn| insert_audit(&conn, &audit));
            if let Some(e) = export_failure(ended, audited) {
                tracing::error!(error = %e, "export failed");
                let _ = tx.blocking_send(Err(StoreError::Unavailable(e)));
            }
        });
    }
}

type Failed = ExportFailed<rusqlite::Error>;

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Self {
        ExportFailed::Db(e)
    }
}

/// Where encoded rows go: chunks, handed to the consumer from this thread.
struct Out<'a> {
    chunks: Chunks,
    tx: &'a mpsc::Sender<Result<Bytes, StoreError>>,
}

impl Out<'_> {
    /// Encodes one row; false when the consumer went away.
    fn push(&mut self, row: &EventRow) -> bool {
        match self.chunks.push(row) {
            Some(chunk) => self.tx.blocking_send(Ok(chunk)).is_ok(),
            None => true,
        }
    }

    /// Hands over what is left; false when the consumer went away.
    fn finish(&mut self) -> bool {
        match self.chunks.rest() {
            Some(rest) => self.tx.blocking_send(Ok(rest)).is_ok(),
            None => true,
        }
    }
}

/// Reads, encodes and sends every matching row: the database's, then (with
/// `archive_dir`) the archive files'.
fn stream(
    pool: &ReadPool,
    filter: &EventFilter,
    archive_dir: Option<&Path>,
    out: &mut Out<'_>,
) -> Result<Ended, Failed> {
    let conn = pool.opener.open(true)?;
    // One read transaction: every client's rows come from one snapshot, and
    // the archive rows are checked against that same snapshot.
    conn.execute_batch("BEGIN")?;
    let clients = match &filter.clients {
        Some(c) => c.clone(),
        None => all_clients(&conn)?,
    };
    let mut stmt = conn.prepare(&format!("SELECT {EVENT_COLUMNS} {EXPORT_QUERY}"))?;
    for client in &clients {
        let mut cursor = stmt.query(params![
            client,
            filter.from.unwrap_or(i64::MIN),
            filter.to.unwrap_or(i64::MAX),
            filter.channel,
            filter.direction,
            filter.status
        ])?;
        while let Some(row) = cursor.next()? {
            if !out.push(&event_from_row(row)?) {
                return Ok(Ended::Aborted);
            }
        }
    }
    if let Some(dir) = archive_dir {
        let mut live = conn.prepare(LIVE_QUERY)?;
        for client in &clients {
            for row in archived_events(dir, client, filter).map_err(ExportFailed::Archive)? {
                let row = row.map_err(ExportFailed::Archive)?;
                if live.exists(params![row.id, row.received_at])? {
                    continue;
                }
                if !out.push(&row) {
                    return Ok(Ended::Aborted);
                }
            }
        }
    }
    Ok(if out.finish() {
        Ended::Complete
    } else {
        Ended::Aborted
    })
}

/// Clients with live events or archived files, so an export of every client
/// also finds clients whose rows are all archived.
fn all_clients(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT client_id FROM events UNION SELECT client_id FROM archive_files ORDER BY 1",
    )?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}
