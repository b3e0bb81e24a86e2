//! The pruning task inside `serve`: runs the archive job every
//! `retention.interval` (first run at start-up) on the blocking pool. It
//! takes the same lock as the `archive` command, so when cron is already
//! running it skips that round. Stopping goes through [`PruningTask::stop`]
//! or, failing that, its drop guard: both set a flag the job checks between
//! files and delete batches, every one of which is a safe point.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::archive::{run, Outcome, RunOptions};
use crate::config::Settings;
use crate::metrics::Metrics;

/// The running task; dropping it asks it to stop.
pub struct PruningTask {
    stop: Arc<Stop>,
    handle: Option<JoinHandle<()>>,
}

/// Shared between the task and its owner.
struct Stop {
    /// Read by the archive job at its safe points.
    flag: AtomicBool,
    /// Wakes the task while it sleeps between runs.
    wake: Notify,
}

impl Stop {
    fn signal(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }
}

impl PruningTask {
    /// Starts the task on the current tokio runtime; `None` when
    /// `retention.interval` is zero (turned off).
    pub fn spawn(settings: Arc<Settings>, metrics: Metrics) -> Option<PruningTask> {
        let period = settings.retention.interval;
        if period.is_zero() {
            return None;
        }
        let stop = Arc::new(Stop {
            flag: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let handle = tokio::spawn(pruning_loop(settings, metrics, Arc::clone(&stop), period));
        Some(PruningTask {
            stop,
            handle: Some(handle),
        })
    }

    /// Asks the task to stop and waits until the run in progress (if any)
    /// has reached a safe point.
    pub async fn stop(mut self) {
        self.stop.signal();
        if let Some(handle) = self.handle.take() {
            if handle.await.is_err() {
                tracing::error!("the pruning task panicked");
            }
        }
    }
}

impl Drop for PruningTask {
    fn drop(&mut self) {
        self.stop.signal();
    }
}

async fn pruning_loop(
    settings: Arc<Settings>,
    metrics: Metrics,
    stop: Arc<Stop>,
    period: std::time::Duration,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wake.notified() => {}
        }
        if stop.flag.load(Ordering::Relaxed) {
            break;
        }
        let s = Arc::clone(&settings);
        let flag = Arc::clone(&stop);
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let opts = RunOptions {
                now: Utc::now(),
                dry_run: false,
                client: None,
            };
            run(&s, &opts, &flag.flag)
        })
        .await;
        match result {
            Ok(Ok(Outcome::Done(s))) => {
                metrics.archive_succeeded(s.rows, s.bytes, started.elapsed());
                tracing::info!(
                    rows = s.rows,
                    files = s.files,
                    bytes = s.bytes,
                    files_deleted = s.files_deleted,
                    audit_rows = s.audit_rows,
                    interrupted = s.interrupted,
                    seconds = s.seconds,
                    "pruning run finished"
                )
            }
            Ok(Ok(Outcome::Busy(lock))) => tracing::info!(
                lock = %lock,
                "pruning run skipped: another archive run holds the lock"
            ),
            Ok(Err(e)) => {
                metrics.archive_failed(started.elapsed());
                tracing::error!(error = %e, "pruning run failed")
            }
            Err(e) => tracing::error!(error = %e, "pruning run panicked"),
        }
    }
}
