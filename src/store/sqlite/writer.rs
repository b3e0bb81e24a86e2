//! The writer thread: owns the write connection, drains the job queue into
//! one transaction per batch (group commit) and answers each job only after
//! its batch is committed.

use std::thread::JoinHandle;

use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::mpsc;

use super::checkpoint::Checkpointer;
use super::{Job, Opener};
use crate::metrics::WriterStats;
use crate::store::{answer_all, gather, IngestOutcome};

const INSERT_EVENT: &str =
    "INSERT INTO events (client_id, channel, direction, provider_message_id, \
     phone, email, status, provider_status, error_code, event_at, received_at, source_ip, text, \
     media, reply_to, payload, dedup_key) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
     ON CONFLICT (dedup_key) DO NOTHING";

/// The current state only climbs the status order; history stays in `events`.
const UPSERT_MESSAGE: &str = "INSERT INTO messages (client_id, provider_message_id, recipient, \
     channel, direction, status, status_rank, provider_status, error_code, first_seen_at, \
     last_event_at, last_received_at, event_count) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?10, 1) \
     ON CONFLICT (client_id, provider_message_id, recipient) DO UPDATE SET \
       status = CASE WHEN excluded.status_rank > status_rank THEN excluded.status ELSE status END, \
       provider_status = CASE WHEN excluded.status_rank > status_rank \
         THEN excluded.provider_status ELSE provider_status END, \
       error_code = CASE WHEN excluded.status_rank > status_rank \
         THEN excluded.error_code ELSE error_code END, \
       status_rank = max(status_rank, excluded.status_rank), \
       last_event_at = max(coalesce(last_event_at, excluded.last_event_at), \
         coalesce(excluded.last_event_at, last_event_at)), \
       last_received_at = max(last_received_at, excluded.last_received_at), \
       event_count = event_count + 1";

const INSERT_REJECTED: &str = "INSERT INTO rejected (client_id, channel, received_at, source_ip, \
     content_type, code, reason, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

const PROBE: &str = "INSERT INTO meta (key, value) VALUES ('ready_probe_at', ?1) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// The running writer thread.
pub(crate) struct WriterThread {
    handle: JoinHandle<()>,
    jobs: mpsc::Sender<Job>,
    checkpointer: Checkpointer,
}

impl WriterThread {
    pub(crate) fn spawn(
        opener: Opener,
        conn: Connection,
        rx: mpsc::Receiver<Job>,
        jobs: mpsc::Sender<Job>,
        max_events: usize,
        stats: WriterStats,
    ) -> std::io::Result<Self> {
        no_autocheckpoint(&conn).map_err(std::io::Error::other)?;
        let checkpointer = Checkpointer::spawn(opener.clone())?;
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                Writer {
                    opener,
                    conn: Some(conn),
                    max_events,
                    stats,
                }
                .run(rx)
            })?;
        Ok(WriterThread {
            handle,
            jobs,
            checkpointer,
        })
    }

    /// Queues a stop behind every job already queued, then waits for the
    /// thread to commit them and exit.
    pub(crate) async fn shutdown(self) {
        // If the queue is closed the thread is already gone.
        let _ = self.jobs.send(Job::Shutdown).await;
        let (handle, checkpointer) = (self.handle, self.checkpointer);
        let joined = tokio::task::spawn_blocking(move || {
            let joined = handle.join();
            checkpointer.stop();
            joined
        })
        .await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::error!("the sqlite writer thread panicked");
        }
    }
}

/// The checkpoint thread does checkpoints; commits of the writer never do.
fn no_autocheckpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "wal_autocheckpoint", 0)
}

struct Writer {
    opener: Opener,
    /// `None` after a failed commit: the next batch reopens, so a fault that
    /// has cleared (disk space freed) heals without a restart.
    conn: Option<Connection>,
    max_events: usize,
    stats: WriterStats,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            let stop = gather(&mut batch, &mut rx, self.max_events);
            self.commit_and_answer(&mut batch);
            if stop {
                break;
            }
        }
        tracing::info!("sqlite writer stopped");
    }

    fn commit_and_answer(&mut self, batch: &mut Vec<Job>) {
        let started = std::time::Instant::now();
        let result = self.connection().and_then(|conn| write_batch(conn, batch));
        match result {
            Ok(outcomes) => {
                let items = batch.iter().map(Job::stored_items).sum();
                self.stats.committed(items, started.elapsed());
                tracing::debug!(
                    jobs = batch.len(),
                    micros = started.elapsed().as_micros() as u64,
                    "committed batch"
                );
                answer_all(batch, Ok(outcomes));
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = batch.len(), "commit failed; answering 503");
                self.stats.commit_failures.inc();
                self.conn = None;
                answer_all(batch, Err(e.to_string()));
            }
        }
    }

    fn connection(&mut self) -> rusqlite::Result<&mut Connection> {
        if self.conn.is_none() {
            let conn = self.opener.open(false)?;
            no_autocheckpoint(&conn)?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connection was just opened"))
    }
}

/// Writes every job in one transaction; returns one outcome per ingest job.
fn write_batch(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<Vec<IngestOutcome>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    {
        let mut insert_event = tx.prepare_cached(INSERT_EVENT)?;
        let mut upsert_message = tx.prepare_cached(UPSERT_MESSAGE)?;
        let mut insert_rejected = tx.prepare_cached(INSERT_REJECTED)?;
        for job in jobs {
            match job {
                Job::Ingest { batch, keys, .. } => {
                    let mut outcome = IngestOutcome::default();
                    let client = batch.client.as_str();
                    for (e, key) in batch.events.iter().zip(keys) {
                        let inserted = insert_event.execute(params![
                            client,
                            e.channel.as_str(),
                            e.direction.as_str(),
                            e.provider_message_id,
                            e.phone,
                            e.email,
                            e.status.as_str(),
                            e.provider_status,
                            e.error_code,
                            e.event_at,
                            batch.received_at,
                            batch.source_ip,
                            e.text,
                            e.media,
                            e.reply_to,
                            e.payload,
                            &key[..],
                        ])?;
                        if inserted == 0 {
                            outcome.duplicates += 1;
                            continue;
                        }
                        outcome.accepted += 1;
                        upsert_message.execute(params![
                            client,
                            e.provider_message_id,
                            e.recipient(),
                            e.channel.as_str(),
                            e.direction.as_str(),
                            e.status.as_str(),
                            e.status.rank(),
                            e.provider_status,
                            e.error_code,
                            batch.received_at,
                            e.event_at,
                        ])?;
                    }
                    for q in &batch.quarantined {
                        insert_rejected.execute(params![
                            client,
                            q.channel.as_str(),
                            batch.received_at,
                            batch.source_ip,
                            q.content_type,
                            q.code,
                            q.reason,
                            q.body,
                        ])?;
                        outcome.rejected += 1;
                    }
                    outcomes.push(outcome);
                }
                Job::Probe(_) => {
                    tx.execute(
                        PROBE,
                        params![chrono::Utc::now().timestamp_millis().to_string()],
                    )?;
                }
                Job::Shutdown => {}
            }
        }
    }
    tx.commit()?;
    Ok(outcomes)
}
