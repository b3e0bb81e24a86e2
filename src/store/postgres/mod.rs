//! PostgreSQL backend: several receivers share one database. Each receiver
//! runs its PostgreSQL work on a small runtime of its own (so the store works
//! the same from actix workers, blocking threads and the CLI), with a
//! deadpool of tokio-postgres connections and one writer task doing group
//! commit. Design and measurements: docs/postgres.md.

mod admin;
pub(crate) mod archive;
mod migrate;
mod partitions;
mod read;
mod writer;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::mpsc;

use super::{Job, Readiness, StoreError};
use crate::archive::files::create_private_dir;
use crate::config::StorageSettings;
use crate::metrics::WriterStats;

pub(crate) use writer::WriterTask;

/// Worker threads of the backend's runtime: the writer and the connections
/// are I/O-bound, so two are plenty on any machine.
const RUNTIME_THREADS: usize = 2;

/// The runtime PostgreSQL work runs on. Dropped without blocking, so the
/// last handle may go away anywhere (even inside another runtime).
pub(crate) struct PgRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl PgRuntime {
    fn new() -> std::io::Result<Arc<PgRuntime>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("postgres")
            .enable_all()
            .build()?;
        Ok(Arc::new(PgRuntime {
            runtime: Some(runtime),
        }))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("runtime lives until drop")
            .handle()
    }

    /// Runs `fut` on the backend's runtime and waits for it from a thread
    /// that is not driving async tasks (a blocking-pool thread, the CLI's
    /// main thread, or a scoped thread made for the purpose).
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.handle().block_on(fut)
    }

    /// Runs `fut` on the backend's runtime from async code.
    pub(crate) async fn run<T, F>(&self, fut: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.handle()
            .spawn(fut)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    /// Runs `fut` to completion from any thread, async or not, by waiting on
    /// a scoped thread: for start-up, which is synchronous.
    fn block_on_anywhere<T: Send, F: Future<Output = T> + Send>(&self, fut: F) -> T {
        std::thread::scope(|s| {
            s.spawn(|| self.block_on(fut))
                .join()
                .expect("postgres start-up thread panicked")
        })
    }
}

impl Drop for PgRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Connection settings parsed from `storage.postgres_url`.
pub(crate) fn pg_config(settings: &StorageSettings) -> Result<tokio_postgres::Config, StoreError> {
    let url = settings
        .postgres_url
        .as_deref()
        .ok_or_else(|| open_error("storage.postgres_url is not set"))?;
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| open_error(format!("storage.postgres_url: {e}")))?;
    config.connect_timeout(settings.postgres_timeout);
    config.application_name("authkey-receiver");
    Ok(config)
}

/// A start-up failure. The URL is never shown: it may hold a password.
fn open_error(message: impl Into<String>) -> StoreError {
    StoreError::Open {
        path: "postgres (storage.postgres_url)".into(),
        message: message.into(),
    }
}

/// A failure while serving: the database cannot be reached or refused.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("postgres: {e}"))
}

fn make_pool(
    config: tokio_postgres::Config,
    settings: &StorageSettings,
) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.postgres_pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.postgres_timeout))
        .create_timeout(Some(settings.postgres_timeout))
        .recycle_timeout(Some(settings.postgres_timeout))
        .build()
        .map_err(|e| open_error(e.to_string()))
}

/// The PostgreSQL store as handlers see it.
#[derive(Clone)]
pub(crate) struct PgStore {
    rt: Arc<PgRuntime>,
    pool: Pool,
    jobs: mpsc::Sender<Job>,
    data_dir: PathBuf,
    timeout: Duration,
    stats: WriterStats,
    size: Arc<AtomicU64>,
}

/// Connects once and applies pending migrations (under the migration lock);
/// returns the version before and after.
pub(crate) fn migrate_only(settings: &StorageSettings) -> Result<(u32, u32), StoreError> {
    let config = pg_config(settings)?;
    let rt = PgRuntime::new().map_err(|e| open_error(e.to_string()))?;
    rt.block_on_anywhere(migrate::migrate(config))
}

impl PgStore {
    pub(crate) fn open(settings: &StorageSettings) -> Result<(Self, WriterTask), StoreError> {
        let config = pg_config(settings)?;
        // The pseudonym key and the archive lock still live on local disk.
        create_private_dir(&settings.data_dir)
            .map_err(|e| open_error(format!("data_dir {}: {e}", settings.data_dir.display())))?;
        let rt = PgRuntime::new().map_err(|e| open_error(e.to_string()))?;
        rt.block_on_anywhere(migrate::migrate(config.clone()))?;
        let pool = {
            let _enter = rt.handle().enter();
            make_pool(config, settings)?
        };
        let (jobs, rx) = mpsc::channel(settings.queue_capacity);
        let stats = WriterStats::new();
        let writer = WriterTask::spawn(
            &rt,
            pool.clone(),
            rx,
            jobs.clone(),
            settings.batch_max_events,
            settings.postgres_timeout,
            stats.clone(),
        );
        let size = Arc::new(AtomicU64::new(0));
        rt.handle()
            .spawn(sample_size(pool.clone(), Arc::downgrade(&size)));
        Ok((
            PgStore {
                rt,
                pool,
                jobs,
                data_dir: settings.data_dir.clone(),
                timeout: settings.postgres_timeout,
                stats,
                size,
            },
            writer,
        ))
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

    /// Runs `f` with a pooled connection on the backend's runtime, within
    /// `postgres_timeout`.
    pub(crate) async fn with_client<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + Send,
    {
        let (pool, timeout) = (self.pool.clone(), self.timeout);
        self.rt
            .run(async move {
                let client = pool.get().await.map_err(unavailable)?;
                tokio::time::timeout(timeout, f(client))
                    .await
                    .map_err(|_| unavailable(format!("no answer within {timeout:?}")))?
                    .map_err(unavailable)
            })
            .await
    }

    /// Schema version, and free space where archive files and the
    /// pseudonym key live.
    pub(crate) async fn readiness(&self) -> Result<Readiness, StoreError> {
        let schema_version = self
            .with_client(|c| async move {
                let row = c
                    .query_one(
                        "SELECT coalesce(max(version), 0) FROM schema_migrations",
                        &[],
                    )
                    .await?;
                Ok(row.get::<_, i32>(0))
            })
            .await?;
        let free_mb = super::free_mb(self.data_dir.clone()).await?;
        Ok(Readiness {
            schema_version: u32::try_from(schema_version).unwrap_or(0),
            free_mb,
        })
    }

    /// Size of the database in PostgreSQL, as last sampled (0 before the
    /// first sample or while it cannot be asked).
    pub(crate) fn database_size_bytes(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }
}

/// How often the database size behind the `authkey_database_bytes` gauge is
/// sampled: `pg_database_size` walks the data directory, so not per scrape.
const SIZE_SAMPLE_PERIOD: Duration = Duration::from_secs(30);

/// Samples the database size until the store is gone.
async fn sample_size(pool: Pool, size: Weak<AtomicU64>) {
    loop {
        let sampled = match pool.get().await {
            Ok(c) => c
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await
                .map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0))
                .unwrap_or(0),
            Err(_) => 0,
        };
        match size.upgrade() {
            Some(s) => s.store(sampled, Ordering::Relaxed),
            None => return,
        }
        tokio::time::sleep(SIZE_SAMPLE_PERIOD).await;
    }
}
