//! What the archive job asks of storage: expired rows grouped by file, the
//! rows themselves (streamed), batched deletes, the `archive_files` ledger and
//! the audit log. The SQL lives in `sqlite/archive.rs`.

use std::fmt;

pub use super::sqlite::archive::{ArchiveDb, ArchiveRow};
use super::StoreError;

/// One table the retention policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `events`, by `received_at`.
    Events,
    /// `messages`, by `last_received_at` (the latest event).
    Messages,
    /// `rejected` (quarantine), by `received_at`.
    Rejected,
}

impl Kind {
    /// Every kind, in the order the job archives them.
    pub const ALL: [Kind; 3] = [Kind::Events, Kind::Messages, Kind::Rejected];

    /// Table name, also the file-name prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::Messages => "messages",
            Kind::Rejected => "rejected",
        }
    }

    /// The column retention is measured on (UTC Unix ms).
    pub fn time_column(self) -> &'static str {
        match self {
            Kind::Events | Kind::Rejected => "received_at",
            Kind::Messages => "last_received_at",
        }
    }

    /// Parses a table name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Expired rows of one client, kind, channel and UTC day: one archive file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Table.
    pub kind: Kind,
    /// Channel column.
    pub channel: String,
    /// Days since the Unix epoch (UTC) of the rows' time column.
    pub day: i64,
    /// Rows in the group.
    pub rows: u64,
}

/// One row of `archive_files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Row id (0 before it is inserted).
    pub id: i64,
    /// Path relative to `archive.dir`.
    pub path: String,
    /// Table the rows came from.
    pub kind: Kind,
    /// Client.
    pub client_id: String,
    /// Channel.
    pub channel: String,
    /// `YYYY-MM-DD` (UTC) of the rows' time column.
    pub day: String,
    /// Lines in the file.
    pub rows: u64,
    /// Size of the file.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// Smallest row id in the file.
    pub first_id: i64,
    /// Largest row id in the file.
    pub last_id: i64,
    /// When the file was written (UTC Unix ms).
    pub created_at: i64,
    /// Newest value of the retention column in the file (UTC Unix ms).
    pub last_at: i64,
}

/// Which rows a batched delete may touch: those of one group inside an id
/// range that an archive file holds.
#[derive(Debug, Clone)]
pub struct Covered<'a> {
    /// Table.
    pub kind: Kind,
    /// Client.
    pub client_id: &'a str,
    /// Channel.
    pub channel: &'a str,
    /// Start of the day, UTC Unix ms (inclusive).
    pub from_ms: i64,
    /// End of the day or just past the newest row of the file, whichever
    /// is earlier, UTC Unix ms (exclusive): a row that arrived after the
    /// file was written is never taken for one of its rows, even if it
    /// reuses an id of the range.
    pub to_ms: i64,
    /// Smallest id in the file.
    pub first_id: i64,
    /// Largest id in the file.
    pub last_id: i64,
}

/// Why streaming rows into a sink stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sink (the archive file) failed.
    #[error(transparent)]
    Sink(#[from] std::io::Error),
}
