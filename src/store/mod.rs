//! Storage: the only place with SQL. Handlers talk to [`Store`]; the backend
//! behind it (SQLite or PostgreSQL, by `storage.backend`) owns schema,
//! migrations, the group-commit writer and readers.

mod admin;
pub mod archive;
mod job;
mod postgres;
mod read;
mod sqlite;

pub use admin::{AuditEntry, NewToken, TokenRecord};
pub use read::{EventFilter, EventRow, MessageRow, RowEncoder};

use std::path::PathBuf;

use tokio::sync::oneshot;

pub(crate) use job::{answer_all, gather, Job};

use crate::config::{StorageBackend, StorageSettings};
use crate::domain::{Channel, ClientId};
use crate::ingest::Event;
use crate::metrics::WriterStats;

/// A storage failure. Every variant means "nothing was stored".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be written right now (disk full, I/O error, writer
    /// stopped); the caller should retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database could not be opened or migrated.
    #[error("cannot open database {path}: {message}")]
    Open {
        /// Database file.
        path: String,
        /// Why.
        message: String,
    },
}

/// A body or item kept in quarantine.
#[derive(Debug, Clone)]
pub struct Quarantined {
    /// Channel from the URL.
    pub channel: Channel,
    /// Declared content type.
    pub content_type: Option<String>,
    /// Machine code of the rejection.
    pub code: &'static str,
    /// Human reason.
    pub reason: String,
    /// Raw bytes.
    pub body: Vec<u8>,
}

/// Everything one request stores, committed together.
#[derive(Debug)]
pub struct IngestBatch {
    /// Client from the URL.
    pub client: ClientId,
    /// Receipt time, UTC Unix ms.
    pub received_at: i64,
    /// Address the request was judged by.
    pub source_ip: String,
    /// Valid events.
    pub events: Vec<Event>,
    /// Refused items or bodies.
    pub quarantined: Vec<Quarantined>,
}

/// What happened to a committed batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestOutcome {
    /// New events stored.
    pub accepted: usize,
    /// Events already stored before (provider retries).
    pub duplicates: usize,
    /// Items quarantined.
    pub rejected: usize,
}

/// What `/readyz` reports about storage.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    /// Schema version seen by a reader.
    pub schema_version: u32,
    /// Free space where the database lives, MiB.
    pub free_mb: u64,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Owns the writer; [`WriterHandle::shutdown`] flushes it and waits.
pub struct WriterHandle {
    inner: Writer,
}

enum Writer {
    Sqlite(sqlite::WriterThread),
    Postgres(postgres::WriterTask),
}

impl WriterHandle {
    /// Commits everything queued so far, then stops the writer.
    pub async fn shutdown(self) {
        match self.inner {
            Writer::Sqlite(w) => w.shutdown().await,
            Writer::Postgres(w) => w.shutdown().await,
        }
    }
}

/// Calls the same method on whichever backend the store is.
macro_rules! dispatch {
    ($self:expr, $s:ident => $call:expr) => {
        match &$self.backend {
            $crate::store::Backend::Sqlite($s) => $call,
            $crate::store::Backend::Postgres($s) => $call,
        }
    };
}
pub(crate) use dispatch;

impl Store {
    /// Opens (creating and migrating if needed) the store and starts its writer.
    pub fn open(settings: &StorageSettings) -> Result<(Store, WriterHandle), StoreError> {
        let (backend, writer) = match settings.backend {
            StorageBackend::Sqlite => {
                let (store, writer) = sqlite::SqliteStore::open(settings)?;
                (Backend::Sqlite(store), Writer::Sqlite(writer))
            }
            StorageBackend::Postgres => {
                let (store, writer) = postgres::PgStore::open(settings)?;
                (Backend::Postgres(store), Writer::Postgres(writer))
            }
        };
        Ok((Store { backend }, WriterHandle { inner: writer }))
    }

    /// Applies pending migrations without starting anything; returns the
    /// schema version before and after.
    pub fn migrate(settings: &StorageSettings) -> Result<(u32, u32), StoreError> {
        match settings.backend {
            StorageBackend::Sqlite => sqlite::migrate_only(settings),
            StorageBackend::Postgres => postgres::migrate_only(settings),
        }
    }

    /// Stores a batch; resolves only after it is durably committed.
    pub async fn ingest(&self, batch: IngestBatch) -> Result<IngestOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        dispatch!(self, s => s.submit(Job::ingest(batch, reply)).await?);
        rx.await.map_err(|_| writer_gone())?
    }

    /// The writer thread's batch-size and commit-latency histograms.
    pub fn writer_stats(&self) -> &WriterStats {
        dispatch!(self, s => s.writer_stats())
    }

    /// Batches queued for the writer right now.
    pub fn queue_depth(&self) -> usize {
        dispatch!(self, s => s.queue_depth())
    }

    /// Bytes the database occupies on disk (0 if it cannot be read).
    pub fn database_size_bytes(&self) -> u64 {
        dispatch!(self, s => s.database_size_bytes())
    }

    /// Proves the database takes a durable write and a reader can read it.
    pub async fn readiness(&self) -> Result<Readiness, StoreError> {
        let (reply, rx) = oneshot::channel();
        dispatch!(self, s => {
            s.submit(Job::Probe(reply)).await?;
            rx.await.map_err(|_| writer_gone())??;
            s.readiness().await
        })
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the writer has stopped".into())
}

/// Free space where the data directory lives, in MiB.
async fn free_mb(dir: PathBuf) -> Result<u64, StoreError> {
    let free = tokio::task::spawn_blocking(move || fs4::available_space(dir))
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
        .map_err(|e| StoreError::Unavailable(format!("cannot read free space: {e}")))?;
    Ok(free / (1024 * 1024))
}
