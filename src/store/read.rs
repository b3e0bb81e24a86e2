//! Readers for the people who read the data: one message's history and the
//! streamed event export. Rows leave the store unmasked; masking is the
//! caller's (see `crate::export`).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::archive::Kind;
use super::{dispatch, AuditEntry, Store, StoreError};
use crate::archive::reader::{event_row, read_rows};

/// Bytes gathered before a chunk is handed to the consumer.
pub const EXPORT_CHUNK_BYTES: usize = 64 * 1024;

/// Chunks in flight between the reader thread and the consumer; with
/// [`EXPORT_CHUNK_BYTES`] this bounds an export's memory.
pub const EXPORT_CHANNEL_CHUNKS: usize = 4;

/// One stored event, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Row id (insertion order).
    pub id: i64,
    /// Client the event was received for.
    pub client_id: String,
    /// Channel from the callback URL.
    pub channel: String,
    /// `status` or `inbound`.
    pub direction: String,
    /// Provider message id.
    pub provider_message_id: String,
    /// Phone in E.164.
    pub phone: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Normalized status.
    pub status: String,
    /// Status word as sent.
    pub provider_status: Option<String>,
    /// Error code as sent.
    pub error_code: Option<String>,
    /// Provider time, UTC Unix ms.
    pub event_at: Option<i64>,
    /// Receipt time, UTC Unix ms.
    pub received_at: i64,
    /// Address the callback came from.
    pub source_ip: String,
    /// Inbound text, button payload or reason.
    pub text: Option<String>,
    /// Inbound media reference.
    pub media: Option<String>,
    /// Message an inbound message answers.
    pub reply_to: Option<String>,
    /// The item as received (JSON).
    pub payload: String,
}

/// Current state of one message (one recipient of one provider message).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    /// Phone in E.164, else e-mail address.
    pub recipient: String,
    /// Channel.
    pub channel: String,
    /// `status` or `inbound`.
    pub direction: String,
    /// Normalized current status.
    pub status: String,
    /// Status word that set the current status.
    pub provider_status: Option<String>,
    /// Error code that came with it.
    pub error_code: Option<String>,
    /// Receipt time of the first event, UTC Unix ms.
    pub first_seen_at: i64,
    /// Latest provider time, UTC Unix ms.
    pub last_event_at: Option<i64>,
    /// Receipt time of the latest event, UTC Unix ms.
    pub last_received_at: i64,
    /// Events received for this message.
    pub event_count: i64,
}

/// Which events an export holds. Values are already validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventFilter {
    /// Clients to include; `None` means every client with events.
    pub clients: Option<Vec<String>>,
    /// Received at or after, UTC Unix ms.
    pub from: Option<i64>,
    /// Received before, UTC Unix ms.
    pub to: Option<i64>,
    /// Channel.
    pub channel: Option<String>,
    /// Direction.
    pub direction: Option<String>,
    /// Normalized status.
    pub status: Option<String>,
}

/// How an export run ended when nothing failed.
pub(crate) enum Ended {
    /// Every row was handed over.
    Complete,
    /// The consumer went away.
    Aborted,
}

/// Why an export stopped before its end; `E` is the backend's error.
pub(crate) enum ExportFailed<E> {
    /// The database failed.
    Db(E),
    /// An archive file could not be read or holds a row that is not an event.
    Archive(String),
}

impl<E: std::fmt::Display> std::fmt::Display for ExportFailed<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportFailed::Db(e) => write!(f, "{e}"),
            ExportFailed::Archive(e) => write!(f, "archive: {e}"),
        }
    }
}

/// The audit-log outcome of an export that ended so.
pub(crate) fn export_outcome<E>(ended: &Result<Ended, ExportFailed<E>>) -> &'static str {
    match ended {
        Ok(Ended::Complete) => "ok",
        Ok(Ended::Aborted) => "aborted",
        Err(ExportFailed::Db(_)) => "storage_unavailable",
        Err(ExportFailed::Archive(_)) => "archive_unreadable",
    }
}

/// The failure an export must report to its consumer, if the run or its
/// audit row failed.
pub(crate) fn export_failure<E: std::fmt::Display, A: std::fmt::Display>(
    ended: Result<Ended, ExportFailed<E>>,
    audited: Result<(), A>,
) -> Option<String> {
    match (ended, audited) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(_), Err(e)) => Some(e.to_string()),
        (Ok(_), Ok(())) => None,
    }
}

/// Encoded rows, gathered into chunks of about [`EXPORT_CHUNK_BYTES`], and
/// their count; the backend hands the chunks over its own way.
pub(crate) struct Chunks {
    buf: Vec<u8>,
    encode: RowEncoder,
    /// Rows encoded so far.
    pub(crate) rows: i64,
}

impl Chunks {
    /// Starts with `header` (the CSV header line, or nothing).
    pub(crate) fn new(header: Vec<u8>, encode: RowEncoder) -> Chunks {
        Chunks {
            buf: header,
            encode,
            rows: 0,
        }
    }

    /// Encodes one row; a full chunk to hand over, when one is ready.
    pub(crate) fn push(&mut self, row: &EventRow) -> Option<Bytes> {
        (self.encode)(row, &mut self.buf);
        self.rows += 1;
        if self.buf.len() < EXPORT_CHUNK_BYTES {
            return None;
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(EXPORT_CHUNK_BYTES + 4096));
        Some(Bytes::from(chunk))
    }

    /// What is left to hand over, if anything.
    pub(crate) fn rest(&mut self) -> Option<Bytes> {
        let rest = std::mem::take(&mut self.buf);
        (!rest.is_empty()).then(|| Bytes::from(rest))
    }
}

/// The archived events of `client` under `dir` that pass `filter` (the
/// reader applies client and time; this the rest of what the SQL applies to
/// live rows). A row that is not an event is an error.
pub(crate) fn archived_events<'a>(
    dir: &Path,
    client: &'a str,
    filter: &'a EventFilter,
) -> Result<impl Iterator<Item = Result<EventRow, String>> + 'a, String> {
    let rows =
        read_rows(dir, client, Kind::Events, filter.from, filter.to).map_err(|e| e.to_string())?;
    Ok(rows
        .map(move |row| {
            let row = row.map_err(|e| e.to_string())?;
            event_row(&row).map_err(|e| format!("an events row of client `{client}`: {e}"))
        })
        .filter(move |row| {
            row.as_ref()
                .map_or(true, |r| archived_row_matches(filter, r))
        }))
}

/// Whether an archived row passes the filters the SQL applies to live rows.
fn archived_row_matches(filter: &EventFilter, row: &EventRow) -> bool {
    let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    is(&filter.channel, &row.channel)
        && is(&filter.direction, &row.direction)
        && is(&filter.status, &row.status)
}

/// Turns one row into output bytes; runs on the reader thread.
pub type RowEncoder = Box<dyn FnMut(&EventRow, &mut Vec<u8>) + Send>;

impl Store {
    /// Current state and full event history of one provider message id
    /// (all its recipients), oldest event first.
    pub async fn message_history(
        &self,
        client: &str,
        provider_message_id: &str,
    ) -> Result<(Vec<MessageRow>, Vec<EventRow>), StoreError> {
        dispatch!(self, s => {
            s.message_history(client.to_string(), provider_message_id.to_string())
                .await
        })
    }

    /// Streams the events matching `filter` (per client, in received order)
    /// through `encode` into chunks of about [`EXPORT_CHUNK_BYTES`], read on
    /// a blocking thread and handed over a bounded channel, so memory stays
    /// flat whatever the row count. With `archive_dir`, the matching rows of
    /// the archive files follow the database rows, less those still in the
    /// database snapshot the export read (an archive run in progress; see
    /// docs/archive.md). When the stream ends — complete, or because the
    /// receiver was dropped — `audit` is written with the number of rows
    /// encoded (outcome `aborted` when cut short), before the channel closes.
    pub fn export_events(
        &self,
        filter: EventFilter,
        archive_dir: Option<PathBuf>,
        header: Vec<u8>,
        encode: RowEncoder,
        audit: AuditEntry,
    ) -> mpsc::Receiver<Result<Bytes, StoreError>> {
        let (tx, rx) = mpsc::channel(EXPORT_CHANNEL_CHUNKS);
        dispatch!(self, s => s.export_events(filter, archive_dir, header, encode, audit, tx));
        rx
    }
}
