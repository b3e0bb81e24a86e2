//! Readers for the people who read the data: one message's history and the
//! streamed event export. Rows leave the store unmasked; masking is the
//! caller's (see `crate::export`).

use std::path::PathBuf;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{dispatch, AuditEntry, Store, StoreError};

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

/// Whether an archived row passes the filters the SQL applies to live rows
/// (client and time are applied by the archive reader).
pub(crate) fn archived_row_matches(filter: &EventFilter, row: &EventRow) -> bool {
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
