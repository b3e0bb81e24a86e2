//! SQL for message lookups and the streamed export. An export reads one
//! REPEATABLE READ snapshot on a blocking thread (archive files are read
//! there too), streaming rows from a portal so memory stays flat.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use super::{admin::insert_audit, unavailable, PgStore};
use crate::store::read::{
    archived_events, export_failure, export_outcome, Chunks, Ended, ExportFailed, RowEncoder,
};
use crate::store::{AuditEntry, EventFilter, EventRow, MessageRow, StoreError};

const EVENT_COLUMNS: &str = "id, client_id, channel, direction, provider_message_id, phone, \
     email, status, provider_status, error_code, event_at, received_at, source_ip, text, media, \
     reply_to, payload FROM events";

/// An archived row still in the database (its file is written, its delete
/// not yet committed), by id and receipt time.
const LIVE_QUERY: &str = "SELECT 1 FROM events WHERE id = $1 AND received_at = $2";

/// One client's events in the index's order.
const EXPORT_QUERY: &str = "WHERE client_id = $1 AND received_at >= $2 AND received_at < $3 \
     AND ($4::text IS NULL OR channel = $4) AND ($5::text IS NULL OR direction = $5) \
     AND ($6::text IS NULL OR status = $6) ORDER BY received_at, id";

fn event_from_row(r: &Row) -> EventRow {
    EventRow {
        id: r.get(0),
        client_id: r.get(1),
        channel: r.get(2),
        direction: r.get(3),
        provider_message_id: r.get(4),
        phone: r.get(5),
        email: r.get(6),
        status: r.get(7),
        provider_status: r.get(8),
        error_code: r.get(9),
        event_at: r.get(10),
        received_at: r.get(11),
        source_ip: r.get(12),
        text: r.get(13),
        media: r.get(14),
        reply_to: r.get(15),
        payload: r.get(16),
    }
}

impl PgStore {
    pub(crate) async fn message_history(
        &self,
        client: String,
        id: String,
    ) -> Result<(Vec<MessageRow>, Vec<EventRow>), StoreError> {
        self.with_client(move |c| async move {
            let messages = c
                .query(
                    "SELECT recipient, channel, direction, status, provider_status, error_code, \
                     first_seen_at, last_event_at, last_received_at, event_count FROM messages \
                     WHERE client_id = $1 AND provider_message_id = $2 ORDER BY recipient",
                    &[&client, &id],
                )
                .await?
                .iter()
                .map(|r| MessageRow {
                    recipient: r.get(0),
                    channel: r.get(1),
                    direction: r.get(2),
                    status: r.get(3),
                    provider_status: r.get(4),
                    error_code: r.get(5),
                    first_seen_at: r.get(6),
                    last_event_at: r.get(7),
                    last_received_at: r.get(8),
                    event_count: r.get(9),
                })
                .collect();
            let events = c
                .query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} WHERE client_id = $1 AND provider_message_id = $2 \
                         ORDER BY coalesce(event_at, received_at), id"
                    ),
                    &[&client, &id],
                )
                .await?
                .iter()
                .map(event_from_row)
                .collect();
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
        let (rt, pool) = (self.rt.clone(), self.pool.clone());
        tokio::task::spawn_blocking(move || {
            rt.block_on(async move {
                let mut out = Out {
                    chunks: Chunks::new(header, encode),
                    tx: &tx,
                };
                let client = match pool.get().await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(unavailable(e))).await;
                        return;
                    }
                };
                let ended = stream(&client, &filter, archive_dir.as_deref(), &mut out).await;
                let _ = client.batch_execute("ROLLBACK").await;
                audit.rows = Some(out.chunks.rows);
                audit.outcome = export_outcome(&ended).to_string();
                let audited = insert_audit(&**client, &audit).await;
                if let Some(e) = export_failure(ended, audited) {
                    tracing::error!(error = %e, "export failed");
                    let _ = tx.send(Err(StoreError::Unavailable(e))).await;
                }
            })
        });
    }
}

type Failed = ExportFailed<tokio_postgres::Error>;

impl From<tokio_postgres::Error> for Failed {
    fn from(e: tokio_postgres::Error) -> Self {
        ExportFailed::Db(e)
    }
}

/// Where encoded rows go: chunks, handed to the consumer asynchronously.
struct Out<'a> {
    chunks: Chunks,
    tx: &'a mpsc::Sender<Result<Bytes, StoreError>>,
}

impl Out<'_> {
    /// Encodes one row; false when the consumer went away.
    async fn push(&mut self, row: &EventRow) -> bool {
        match self.chunks.push(row) {
            Some(chunk) => self.tx.send(Ok(chunk)).await.is_ok(),
            None => true,
        }
    }

    /// Hands over what is left; false when the consumer went away.
    async fn finish(&mut self) -> bool {
        match self.chunks.rest() {
            Some(rest) => self.tx.send(Ok(rest)).await.is_ok(),
            None => true,
        }
    }
}

/// Reads, encodes and sends every matching row: the database's, then (with
/// `archive_dir`) the archive files'.
async fn stream(
    client: &Client,
    filter: &EventFilter,
    archive_dir: Option<&Path>,
    out: &mut Out<'_>,
) -> Result<Ended, Failed> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let clients: Vec<String> = match &filter.clients {
        Some(c) => c.clone(),
        None => client
            .query(
                "SELECT client_id FROM events UNION SELECT client_id FROM archive_files ORDER BY 1",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    };
    let stmt = client
        .prepare(&format!("SELECT {EVENT_COLUMNS} {EXPORT_QUERY}"))
        .await?;
    let (from, to) = (
        filter.from.unwrap_or(i64::MIN),
        filter.to.unwrap_or(i64::MAX),
    );
    for c in &clients {
        let params: [&(dyn ToSql + Sync); 6] = [
            c,
            &from,
            &to,
            &filter.channel,
            &filter.direction,
            &filter.status,
        ];
        let rows = client.query_raw(&stmt, params).await?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.try_next().await? {
            if !out.push(&event_from_row(&row)).await {
                return Ok(Ended::Aborted);
            }
        }
    }
    if let Some(dir) = archive_dir {
        let live = client.prepare(LIVE_QUERY).await?;
        for c in &clients {
            for row in archived_events(dir, c, filter).map_err(ExportFailed::Archive)? {
                let row = row.map_err(ExportFailed::Archive)?;
                if client
                    .query_opt(&live, &[&row.id, &row.received_at])
                    .await?
                    .is_some()
                {
                    continue;
                }
                if !out.push(&row).await {
                    return Ok(Ended::Aborted);
                }
            }
        }
    }
    Ok(if out.finish().await {
        Ended::Complete
    } else {
        Ended::Aborted
    })
}
