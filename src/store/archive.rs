//! What the archive job asks of storage: expired rows grouped by file, the
//! rows themselves (streamed), batched deletes, the `archive_files` ledger and
//! the audit log. The SQL lives in `sqlite/archive.rs` and
//! `postgres/archive.rs`; [`ArchiveDb`] picks one by `storage.backend`.

use std::fmt;

use serde::ser::SerializeMap;

use super::postgres::archive::{PgArchiveDb, PgArchiveRow};
use super::sqlite::archive::{SqliteArchiveDb, SqliteArchiveRow};
use super::StoreError;
use crate::config::{StorageBackend, StorageSettings};

/// The archive job's connection to the configured backend.
pub enum ArchiveDb {
    /// `receiver.db`.
    Sqlite(SqliteArchiveDb),
    /// The shared PostgreSQL database.
    Postgres(Box<PgArchiveDb>),
}

/// One row on its way into an archive file: serializes as a JSON object
/// with every column by name; BLOB/bytea columns (`dedup_key`,
/// `rejected.body`) are lower-case hex.
pub enum ArchiveRow<'a, 'r> {
    /// A SQLite row.
    Sqlite(&'a SqliteArchiveRow<'r>),
    /// A PostgreSQL row.
    Postgres(&'a PgArchiveRow<'r>),
}

impl ArchiveRow<'_, '_> {
    /// The row's id.
    pub fn id(&self) -> i64 {
        match self {
            ArchiveRow::Sqlite(r) => r.id(),
            ArchiveRow::Postgres(r) => r.id(),
        }
    }

    /// The row's retention column (UTC Unix ms).
    pub fn at(&self) -> i64 {
        match self {
            ArchiveRow::Sqlite(r) => r.at(),
            ArchiveRow::Postgres(r) => r.at(),
        }
    }
}

impl serde::Serialize for ArchiveRow<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        match self {
            ArchiveRow::Sqlite(r) => r.serialize_into(&mut map)?,
            ArchiveRow::Postgres(r) => r.serialize_into(&mut map)?,
        }
        map.end()
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Calls the same method on whichever backend the connection is for.
macro_rules! both {
    ($self:expr, $db:ident => $call:expr) => {
        match $self {
            ArchiveDb::Sqlite($db) => $call,
            ArchiveDb::Postgres($db) => $call,
        }
    };
}

impl ArchiveDb {
    /// Opens the database for writing, creating and migrating it if needed.
    pub fn open(settings: &StorageSettings) -> Result<ArchiveDb, StoreError> {
        Ok(match settings.backend {
            StorageBackend::Sqlite => ArchiveDb::Sqlite(SqliteArchiveDb::open(settings)?),
            StorageBackend::Postgres => ArchiveDb::Postgres(Box::new(PgArchiveDb::open(settings)?)),
        })
    }

    /// Opens an existing database read-only; never creates or migrates.
    pub fn open_read_only(settings: &StorageSettings) -> Result<ArchiveDb, StoreError> {
        Ok(match settings.backend {
            StorageBackend::Sqlite => ArchiveDb::Sqlite(SqliteArchiveDb::open_read_only(settings)?),
            StorageBackend::Postgres => {
                ArchiveDb::Postgres(Box::new(PgArchiveDb::open_read_only(settings)?))
            }
        })
    }

    /// Takes the cluster-wide run lease (PostgreSQL); `Err(holder)` when
    /// another run on any node holds it. On SQLite the `archive.lock` flock
    /// already makes the run exclusive.
    pub fn try_lease(&mut self) -> Result<Result<(), String>, StoreError> {
        match self {
            ArchiveDb::Sqlite(_) => Ok(Ok(())),
            ArchiveDb::Postgres(db) => Ok(if db.try_lease()? {
                Ok(())
            } else {
                Err(format!(
                    "the PostgreSQL archive lease (held by {})",
                    db.lease_holder()
                ))
            }),
        }
    }

    /// Expired rows of `client` (time column before `cutoff_ms`), grouped by
    /// channel and UTC day, oldest first.
    pub fn expired_groups(
        &self,
        kind: Kind,
        client: &str,
        cutoff_ms: i64,
    ) -> Result<Vec<Group>, StoreError> {
        both!(self, db => db.expired_groups(kind, client, cutoff_ms))
    }

    /// Archive files already written for one group.
    pub fn files_for_group(
        &self,
        kind: Kind,
        client: &str,
        channel: &str,
        day: &str,
    ) -> Result<Vec<FileRecord>, StoreError> {
        both!(self, db => db.files_for_group(kind, client, channel, day))
    }

    /// Every recorded archive file, by path.
    pub fn all_files(&self) -> Result<Vec<FileRecord>, StoreError> {
        both!(self, db => db.all_files())
    }

    /// (file name, SHA-256) of every recorded file directly in `rel_dir`
    /// (relative to `archive.dir`, `/`-separated): what its `SHA256SUMS`
    /// must list.
    pub fn sums_for_dir(&self, rel_dir: &str) -> Result<Vec<(String, String)>, StoreError> {
        both!(self, db => db.sums_for_dir(rel_dir))
    }

    /// Recorded files of `client` written before `created_before_ms`.
    pub fn files_created_before(
        &self,
        client: &str,
        created_before_ms: i64,
    ) -> Result<Vec<FileRecord>, StoreError> {
        both!(self, db => db.files_created_before(client, created_before_ms))
    }

    /// Streams the rows of one group, in time then id order, to `sink`;
    /// returns how many rows were streamed.
    pub fn stream_group(
        &self,
        kind: Kind,
        client: &str,
        channel: &str,
        day: i64,
        mut sink: impl FnMut(&ArchiveRow<'_, '_>) -> std::io::Result<()>,
    ) -> Result<u64, StreamError> {
        match self {
            ArchiveDb::Sqlite(db) => {
                db.stream_group(kind, client, channel, day, |r| sink(&ArchiveRow::Sqlite(r)))
            }
            ArchiveDb::Postgres(db) => db.stream_group(kind, client, channel, day, |r| {
                sink(&ArchiveRow::Postgres(r))
            }),
        }
    }

    /// Rows of `kind` for `client`/`channel` whose id lies in
    /// `first_id..=last_id`, whatever their time.
    pub fn count_id_range(
        &self,
        kind: Kind,
        client: &str,
        channel: &str,
        first_id: i64,
        last_id: i64,
    ) -> Result<u64, StoreError> {
        both!(self, db => db.count_id_range(kind, client, channel, first_id, last_id))
    }

    /// Records a written file and deletes the first batch of its rows in
    /// one transaction: from this commit on, the file owns those rows.
    /// Returns the rows deleted.
    pub fn record_file(
        &mut self,
        file: &FileRecord,
        covered: &Covered<'_>,
        batch: usize,
    ) -> Result<u64, StoreError> {
        both!(self, db => db.record_file(file, covered, batch))
    }

    /// Deletes up to `batch` rows that an archive file holds, in one short
    /// transaction; 0 when none are left.
    pub fn delete_covered(
        &mut self,
        covered: &Covered<'_>,
        batch: usize,
    ) -> Result<u64, StoreError> {
        both!(self, db => db.delete_covered(covered, batch))
    }

    /// Forgets a deleted archive file and writes the audit row saying so,
    /// in one transaction.
    pub fn forget_file(&mut self, file: &FileRecord, at_ms: i64) -> Result<(), StoreError> {
        both!(self, db => db.forget_file(file, at_ms))
    }

    /// Audit-log rows older than `cutoff_ms`.
    pub fn count_audit_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        both!(self, db => db.count_audit_before(cutoff_ms))
    }

    /// Deletes up to `batch` audit-log rows older than `cutoff_ms`.
    pub fn prune_audit(&mut self, cutoff_ms: i64, batch: usize) -> Result<u64, StoreError> {
        both!(self, db => db.prune_audit(cutoff_ms, batch))
    }

    /// Writes one audit row summarising a run that changed something.
    pub fn audit_run(
        &mut self,
        at_ms: i64,
        client: Option<&str>,
        rows: u64,
        filters: &str,
    ) -> Result<(), StoreError> {
        both!(self, db => db.audit_run(at_ms, client, rows, filters))
    }

    /// Gives the space of deleted rows back after a run: SQLite hands free
    /// pages to the file system in small steps; PostgreSQL drops the
    /// partitions of past months that the run emptied. Returns pages freed
    /// or partitions dropped.
    pub fn reclaim_space(&mut self, now_ms: i64) -> Result<u64, StoreError> {
        match self {
            ArchiveDb::Sqlite(db) => db.incremental_vacuum(),
            ArchiveDb::Postgres(db) => db.drop_empty_partitions(now_ms),
        }
    }
}

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
