//! Work for a backend's writer: the queue between handlers and the one
//! task or thread that commits (group commit), shared by both backends.

use tokio::sync::{mpsc, oneshot};

use super::{IngestBatch, IngestOutcome, StoreError};

/// Work for the writer.
pub(crate) enum Job {
    /// Store a request's events and quarantined items.
    Ingest {
        batch: IngestBatch,
        keys: Vec<[u8; 16]>,
        reply: oneshot::Sender<Result<IngestOutcome, StoreError>>,
    },
    /// Prove a durable write works.
    Probe(oneshot::Sender<Result<(), StoreError>>),
    /// Commit what is queued ahead, then stop.
    Shutdown,
}

impl Job {
    /// Wraps a batch, computing its dedup keys on the caller's thread so the
    /// writer does only SQL.
    pub(crate) fn ingest(
        batch: IngestBatch,
        reply: oneshot::Sender<Result<IngestOutcome, StoreError>>,
    ) -> Job {
        let keys = batch
            .events
            .iter()
            .map(|e| e.dedup_key(&batch.client))
            .collect();
        Job::Ingest { batch, keys, reply }
    }

    /// Items the job stores, for batch sizing (a probe counts as one).
    pub(crate) fn weight(&self) -> usize {
        match self {
            Job::Ingest { batch, .. } => batch.events.len() + batch.quarantined.len(),
            Job::Probe(_) | Job::Shutdown => 1,
        }
    }

    /// Events and quarantined items the job stores (probes store none).
    pub(crate) fn stored_items(&self) -> usize {
        match self {
            Job::Ingest { batch, .. } => batch.events.len() + batch.quarantined.len(),
            Job::Probe(_) | Job::Shutdown => 0,
        }
    }

    /// Answers the job with the batch's result (`outcome` for an ingest).
    pub(crate) fn answer(self, result: Result<IngestOutcome, StoreError>) {
        match self {
            Job::Ingest { reply, .. } => {
                let _ = reply.send(result);
            }
            Job::Probe(reply) => {
                let _ = reply.send(result.map(|_| ()));
            }
            Job::Shutdown => {}
        }
    }
}

/// Adds to `batch` (which holds the job just received) whatever else is
/// queued, up to `max_events` items: the group of one commit. True when a
/// `Shutdown` was met, so the writer stops after this commit.
pub(crate) fn gather(
    batch: &mut Vec<Job>,
    rx: &mut mpsc::Receiver<Job>,
    max_events: usize,
) -> bool {
    let mut stop = batch.iter().any(|j| matches!(j, Job::Shutdown));
    let mut events: usize = batch.iter().map(Job::weight).sum();
    while !stop && events < max_events {
        match rx.try_recv() {
            Ok(Job::Shutdown) => stop = true,
            Ok(job) => {
                events += job.weight();
                batch.push(job);
            }
            Err(_) => break,
        }
    }
    stop
}

/// Answers every job of a committed batch (`outcomes` holds one entry per
/// ingest job, in order) or of a failed one, and empties the batch.
pub(crate) fn answer_all(batch: &mut Vec<Job>, result: Result<Vec<IngestOutcome>, String>) {
    match result {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for job in batch.drain(..) {
                let outcome = match job {
                    Job::Ingest { .. } => outcomes.next().unwrap_or_default(),
                    _ => IngestOutcome::default(),
                };
                job.answer(Ok(outcome));
            }
        }
        Err(msg) => {
            for job in batch.drain(..) {
                job.answer(Err(StoreError::Unavailable(msg.clone())));
            }
        }
    }
}
