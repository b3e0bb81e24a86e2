//! SQLite backend: WAL, one writer thread with group commit, readers on their
//! own connections (run through `spawn_blocking`, off the async executor).

mod admin;
pub(crate) mod archive;
mod checkpoint;
mod migrate;
mod read;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc;

pub(crate) use super::job::Job;

use super::{Readiness, StoreError};
use crate::archive::files::create_private_dir;
use crate::config::{StorageSettings, Synchronous};
use crate::metrics::WriterStats;

pub(crate) use writer::WriterThread;

/// How long a connection waits for another process's write lock (the
/// `archive` cron job) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Retry interval of a connection waiting for the write lock.
const BUSY_POLL: Duration = Duration::from_millis(1);

/// Waits for the write lock by polling every millisecond, up to
/// [`BUSY_TIMEOUT`]. SQLite's own busy timeout backs off to 100 ms sleeps, so
/// a writer waiting behind the archive job's delete batches kept missing the
/// short gaps between them and callbacks waited seconds (docs/benchmarks.md).
fn busy_poll(attempt: i32) -> bool {
    if Duration::from_millis(u64::try_from(attempt).unwrap_or(0)) >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(BUSY_POLL);
    true
}

/// Page cache of a writing connection, in KiB (SQLite's negative
/// `cache_size`); the default 2 MiB is far smaller than the indexes.
const WRITER_CACHE_KIB: i64 = -65_536;

/// Reader connections kept open for reuse.
const MAX_IDLE_READERS: usize = 4;

/// Opens connections with the service's pragmas.
#[derive(Clone)]
pub(crate) struct Opener {
    path: PathBuf,
    synchronous: Synchronous,
}

impl Opener {
    fn open(&self, read_only: bool) -> rusqlite::Result<Connection> {
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_handler(Some(busy_poll))?;
        if !read_only {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            let sync = match self.synchronous {
                Synchronous::Full => "FULL",
                Synchronous::Normal => "NORMAL",
            };
            conn.pragma_update(None, "synchronous", sync)?;
            // Index pages stay in the connection's cache instead of being
            // re-read through the OS on every insert.
            conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
        }
        Ok(conn)
    }
}

/// The SQLite store as handlers see it.
#[derive(Clone)]
pub(crate) struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<ReadPool>,
    data_dir: PathBuf,
    stats: WriterStats,
}

fn open_error(path: &Path, message: impl Into<String>) -> StoreError {
    StoreError::Open {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Creates the data dir, opens the write connection and migrates it.
fn open_writer(settings: &StorageSettings) -> Result<(Opener, Connection, u32), StoreError> {
    let path = settings.db_path();
    create_private_dir(&settings.data_dir).map_err(|e| open_error(&path, e.to_string()))?;
    let opener = Opener {
        path: path.clone(),
        synchronous: settings.synchronous,
    };
    let mut conn = opener
        .open(false)
        .map_err(|e| open_error(&path, e.to_string()))?;
    let before = migrate::migrate(&mut conn).map_err(|e| open_error(&path, e))?;
    Ok((opener, conn, before))
}

pub(crate) fn migrate_only(settings: &StorageSettings) -> Result<(u32, u32), StoreError> {
    let (_, _, before) = open_writer(settings)?;
    Ok((before, migrate::LATEST))
}

impl SqliteStore {
    pub(crate) fn open(settings: &StorageSettings) -> Result<(Self, WriterThread), StoreError> {
        let (opener, conn, _) = open_writer(settings)?;
        let (jobs, rx) = mpsc::channel(settings.queue_capacity);
        let stats = WriterStats::new();
        let writer = WriterThread::spawn(
            opener.clone(),
            conn,
            rx,
            jobs.clone(),
            settings.batch_max_events,
            stats.clone(),
        )
        .map_err(|e| open_error(&settings.db_path(), e.to_string()))?;
        let store = SqliteStore {
            jobs,
            readers: Arc::new(ReadPool {
                opener,
                idle: Mutex::new(Vec::new()),
            }),
            data_dir: settings.data_dir.clone(),
            stats,
        };
        Ok((store, writer))
    }

    /// Queues a job, waiting for room when the queue is full.
    pub(crate) async fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))
    }

    pub(crate) fn writer_stats(&self) -> &WriterStats {
        &self.stats
    }

    pub(crate) fn queue_depth(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// The database file plus its WAL: what a backup copies and what the
    /// disk holds.
    pub(crate) fn database_size_bytes(&self) -> u64 {
        let db = self.readers.opener.path.clone();
        let wal = db.with_extension("db-wal");
        [db, wal]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    pub(crate) async fn readiness(&self) -> Result<Readiness, StoreError> {
        let schema_version = self
            .readers
            .read(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
            .await?;
        Ok(Readiness {
            schema_version,
            free_mb: super::free_mb(self.data_dir.clone()).await?,
        })
    }
}

/// Read-only connections, reused across requests.
pub(crate) struct ReadPool {
    opener: Opener,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    /// Runs `f` on a reader connection on the blocking thread pool.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = match pool.idle.lock().expect("reader pool lock").pop() {
                Some(c) => c,
                None => pool.opener.open(true)?,
            };
            let result = f(&conn);
            let mut idle = pool.idle.lock().expect("reader pool lock");
            if result.is_ok() && idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
        .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}
