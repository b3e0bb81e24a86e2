//! The writer task: drains the job queue into one transaction per batch
//! (group commit per receiver) and answers each job only after COMMIT
//! returned. Dedup is `INSERT INTO event_keys ... ON CONFLICT DO NOTHING`;
//! the rows go in with multi-row `UNNEST` inserts. Several receivers write
//! at once, so rows that take locks (keys, message states) are written in
//! key order: two batches never wait on each other in a cycle.
//!
//! A transaction costs two round trips: BEGIN with the key insert, then the
//! row inserts with COMMIT, each pair pipelined (sent before the first
//! answer comes back). Waiting for each statement's answer in turn took
//! five, and the writer spent about half of every commit between them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};
use tokio::sync::mpsc;

use super::{partitions, unavailable, PgRuntime};
use crate::metrics::WriterStats;
use crate::store::{answer_all, gather, IngestBatch, IngestOutcome, Job};

const INSERT_KEYS: &str = "INSERT INTO event_keys (dedup_key) \
     SELECT unnest($1::bytea[]) ON CONFLICT DO NOTHING RETURNING dedup_key";

const INSERT_EVENTS: &str = "INSERT INTO events (client_id, channel, direction, \
     provider_message_id, phone, email, status, provider_status, error_code, event_at, \
     received_at, source_ip, text, media, reply_to, payload, dedup_key) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::text[], \
     $13::text[], $14::text[], $15::text[], $16::text[], $17::bytea[])";

/// The current state only climbs the status order; history stays in
/// `events`. `greatest` skips NULLs, as the SQLite writer's coalesce does.
const UPSERT_MESSAGES: &str = "INSERT INTO messages (client_id, provider_message_id, recipient, \
     channel, direction, status, status_rank, provider_status, error_code, first_seen_at, \
     last_event_at, last_received_at, event_count) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::int8[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::int8[], \
     $13::int8[]) \
     ON CONFLICT (client_id, provider_message_id, recipient) DO UPDATE SET \
       status = CASE WHEN excluded.status_rank > messages.status_rank \
         THEN excluded.status ELSE messages.status END, \
       provider_status = CASE WHEN excluded.status_rank > messages.status_rank \
         THEN excluded.provider_status ELSE messages.provider_status END, \
       error_code = CASE WHEN excluded.status_rank > messages.status_rank \
         THEN excluded.error_code ELSE messages.error_code END, \
       status_rank = greatest(messages.status_rank, excluded.status_rank), \
       last_event_at = greatest(messages.last_event_at, excluded.last_event_at), \
       last_received_at = greatest(messages.last_received_at, excluded.last_received_at), \
       event_count = messages.event_count + excluded.event_count";

const INSERT_REJECTED: &str = "INSERT INTO rejected (client_id, channel, received_at, \
     source_ip, content_type, code, reason, body) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::bytea[])";

const PROBE: &str = "INSERT INTO meta (key, value) VALUES ('ready_probe_at', $1) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// How often the writer makes sure the coming months have partitions.
const PARTITION_CHECK: Duration = Duration::from_secs(3600);

/// The running writer task.
pub(crate) struct WriterTask {
    handle: tokio::task::JoinHandle<()>,
    jobs: mpsc::Sender<Job>,
    _rt: Arc<PgRuntime>,
}

impl WriterTask {
    pub(crate) fn spawn(
        rt: &Arc<PgRuntime>,
        pool: Pool,
        rx: mpsc::Receiver<Job>,
        jobs: mpsc::Sender<Job>,
        max_events: usize,
        timeout: Duration,
        stats: WriterStats,
    ) -> WriterTask {
        let writer = Writer {
            pool,
            client: None,
            max_events,
            timeout,
            stats,
            next_partition_check: Instant::now() + PARTITION_CHECK,
        };
        WriterTask {
            handle: rt.handle().spawn(writer.run(rx)),
            jobs,
            _rt: Arc::clone(rt),
        }
    }

    /// Queues a stop behind every job already queued, then waits for the
    /// task to commit them and exit.
    pub(crate) async fn shutdown(self) {
        let _ = self.jobs.send(Job::Shutdown).await;
        if self.handle.await.is_err() {
            tracing::error!("the postgres writer task panicked");
        }
    }
}

struct Writer {
    pool: Pool,
    /// `None` after a failure: the next batch takes a fresh connection, so
    /// the writer heals by itself when PostgreSQL is back.
    client: Option<Object>,
    max_events: usize,
    timeout: Duration,
    stats: WriterStats,
    next_partition_check: Instant,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.push(first);
            let stop = gather(&mut batch, &mut rx, self.max_events);
            self.maintain_partitions().await;
            self.commit_and_answer(&mut batch).await;
            if stop {
                break;
            }
        }
        tracing::info!("postgres writer stopped");
    }

    async fn commit_and_answer(&mut self, batch: &mut Vec<Job>) {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, async {
            if self.client.is_none() {
                self.client = Some(self.pool.get().await.map_err(unavailable)?);
            }
            let client = self.client.as_mut().expect("connection was just taken");
            write_batch(client, batch).await.map_err(unavailable)
        })
        .await
        .unwrap_or_else(|_| Err(unavailable(format!("no commit within {:?}", self.timeout))));
        match result {
            Ok(outcomes) => {
                let items = batch.iter().map(Job::stored_items).sum();
                self.stats.committed(items, started.elapsed());
                answer_all(batch, Ok(outcomes));
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = batch.len(), "commit failed; answering 503");
                self.stats.commit_failures.inc();
                // Never hand a connection in an unknown state back to the pool.
                if let Some(client) = self.client.take() {
                    drop(Object::take(client));
                }
                answer_all(batch, Err(e.to_string()));
            }
        }
    }

    /// Creates the coming months' partitions once an hour, in a transaction
    /// of its own; a failure is logged and tried again on the next batch.
    async fn maintain_partitions(&mut self) {
        if Instant::now() < self.next_partition_check {
            return;
        }
        let result = async {
            let mut client = self.pool.get().await.map_err(unavailable)?;
            let tx = client.transaction().await.map_err(unavailable)?;
            partitions::create_ahead(&*tx, chrono::Utc::now())
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)
        };
        match tokio::time::timeout(self.timeout, result).await {
            Ok(Ok(())) => self.next_partition_check = Instant::now() + PARTITION_CHECK,
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot create partitions"),
            Err(_) => tracing::warn!("cannot create partitions: timed out"),
        }
    }
}

/// One message's state folded from a batch's new events, in arrival order,
/// by the same rules the upsert applies against the stored state.
struct Folded<'a> {
    channel: &'a str,
    direction: &'a str,
    status: &'a str,
    rank: i64,
    provider_status: Option<&'a str>,
    error_code: Option<&'a str>,
    first_seen_at: i64,
    last_event_at: Option<i64>,
    last_received_at: i64,
    count: i64,
}

/// Column arrays of a multi-row insert.
#[derive(Default)]
struct EventColumns<'a> {
    client: Vec<&'a str>,
    channel: Vec<&'a str>,
    direction: Vec<&'a str>,
    message_id: Vec<&'a str>,
    phone: Vec<Option<&'a str>>,
    email: Vec<Option<&'a str>>,
    status: Vec<&'a str>,
    provider_status: Vec<Option<&'a str>>,
    error_code: Vec<Option<&'a str>>,
    event_at: Vec<Option<i64>>,
    received_at: Vec<i64>,
    source_ip: Vec<&'a str>,
    text: Vec<Option<&'a str>>,
    media: Vec<Option<&'a str>>,
    reply_to: Vec<Option<&'a str>>,
    payload: Vec<&'a str>,
    key: Vec<&'a [u8]>,
}

#[derive(Default)]
struct RejectedColumns<'a> {
    client: Vec<&'a str>,
    channel: Vec<&'a str>,
    received_at: Vec<i64>,
    source_ip: Vec<&'a str>,
    content_type: Vec<Option<&'a str>>,
    code: Vec<&'a str>,
    reason: Vec<&'a str>,
    body: Vec<&'a [u8]>,
}

/// Writes every job in one transaction; returns one outcome per ingest job.
async fn write_batch(
    client: &mut Object,
    jobs: &[Job],
) -> Result<Vec<IngestOutcome>, tokio_postgres::Error> {
    let ingests: Vec<(&IngestBatch, &[[u8; 16]])> = jobs
        .iter()
        .filter_map(|j| match j {
            Job::Ingest { batch, keys, .. } => Some((batch, keys.as_slice())),
            _ => None,
        })
        .collect();
    let mut keys: Vec<&[u8]> = ingests
        .iter()
        .flat_map(|(_, k)| k.iter().map(|k| &k[..]))
        .collect();
    keys.sort_unstable();
    keys.dedup();

    // The transaction is opened and closed by hand so that BEGIN and COMMIT
    // share a round trip with a statement. A failure anywhere hands the
    // error back and the caller drops the connection, so a transaction is
    // never left open on a pooled connection.
    let mut fresh: HashSet<Vec<u8>> = HashSet::with_capacity(keys.len());
    if keys.is_empty() {
        client.batch_execute("BEGIN").await?;
    } else {
        let stmt = client.prepare_cached(INSERT_KEYS).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&keys];
        let ((), rows) = tokio::try_join!(
            biased;
            client.batch_execute("BEGIN"),
            client.query(&stmt, &params)
        )?;
        fresh.extend(rows.iter().map(|row| row.get::<_, Vec<u8>>(0)));
    }

    let mut outcomes = Vec::with_capacity(ingests.len());
    let mut ev = EventColumns::default();
    let mut rj = RejectedColumns::default();
    let mut messages: BTreeMap<(&str, &str, &str), Folded<'_>> = BTreeMap::new();
    for (batch, batch_keys) in &ingests {
        let mut outcome = IngestOutcome::default();
        let client_id = batch.client.as_str();
        for (e, key) in batch.events.iter().zip(batch_keys.iter()) {
            // The first event holding a new key is stored; a second one in
            // the same batch is a retry like any other.
            if !fresh.remove(&key[..]) {
                outcome.duplicates += 1;
                continue;
            }
            outcome.accepted += 1;
            ev.client.push(client_id);
            ev.channel.push(e.channel.as_str());
            ev.direction.push(e.direction.as_str());
            ev.message_id.push(&e.provider_message_id);
            ev.phone.push(e.phone.as_deref());
            ev.email.push(e.email.as_deref());
            ev.status.push(e.status.as_str());
            ev.provider_status.push(e.provider_status.as_deref());
            ev.error_code.push(e.error_code.as_deref());
            ev.event_at.push(e.event_at);
            ev.received_at.push(batch.received_at);
            ev.source_ip.push(&batch.source_ip);
            ev.text.push(e.text.as_deref());
            ev.media.push(e.media.as_deref());
            ev.reply_to.push(e.reply_to.as_deref());
            ev.payload.push(&e.payload);
            ev.key.push(&key[..]);
            let rank = e.status.rank();
            messages
                .entry((client_id, e.provider_message_id.as_str(), e.recipient()))
                .and_modify(|m| {
                    if rank > m.rank {
                        m.status = e.status.as_str();
                        m.rank = rank;
                        m.provider_status = e.provider_status.as_deref();
                        m.error_code = e.error_code.as_deref();
                    }
                    m.last_event_at = m.last_event_at.max(e.event_at);
                    m.last_received_at = m.last_received_at.max(batch.received_at);
                    m.count += 1;
                })
                .or_insert(Folded {
                    channel: e.channel.as_str(),
                    direction: e.direction.as_str(),
                    status: e.status.as_str(),
                    rank,
                    provider_status: e.provider_status.as_deref(),
                    error_code: e.error_code.as_deref(),
                    first_seen_at: batch.received_at,
                    last_event_at: e.event_at,
                    last_received_at: batch.received_at,
                    count: 1,
                });
        }
        for q in &batch.quarantined {
            rj.client.push(client_id);
            rj.channel.push(q.channel.as_str());
            rj.received_at.push(batch.received_at);
            rj.source_ip.push(&batch.source_ip);
            rj.content_type.push(q.content_type.as_deref());
            rj.code.push(q.code);
            rj.reason.push(&q.reason);
            rj.body.push(&q.body);
            outcome.rejected += 1;
        }
        outcomes.push(outcome);
    }

    // Prepared first (once per connection: prepare_cached), so that each
    // request below goes out on its future's first poll; `biased` polls them
    // in order, so COMMIT is sent last.
    let events_stmt = if ev.client.is_empty() {
        None
    } else {
        Some(client.prepare_cached(INSERT_EVENTS).await?)
    };
    let messages_stmt = if messages.is_empty() {
        None
    } else {
        Some(client.prepare_cached(UPSERT_MESSAGES).await?)
    };
    let rejected_stmt = if rj.client.is_empty() {
        None
    } else {
        Some(client.prepare_cached(INSERT_REJECTED).await?)
    };
    let probe_stmt = if jobs.iter().any(|j| matches!(j, Job::Probe(_))) {
        Some(client.prepare_cached(PROBE).await?)
    } else {
        None
    };
    let now = chrono::Utc::now().timestamp_millis().to_string();
    let events = async {
        let Some(stmt) = &events_stmt else {
            return Ok(());
        };
        client
            .execute(
                stmt,
                &[
                    &ev.client,
                    &ev.channel,
                    &ev.direction,
                    &ev.message_id,
                    &ev.phone,
                    &ev.email,
                    &ev.status,
                    &ev.provider_status,
                    &ev.error_code,
                    &ev.event_at,
                    &ev.received_at,
                    &ev.source_ip,
                    &ev.text,
                    &ev.media,
                    &ev.reply_to,
                    &ev.payload,
                    &ev.key,
                ],
            )
            .await
            .map(drop)
    };
    let upsert = async {
        match &messages_stmt {
            Some(stmt) => upsert_messages(client, stmt, &messages).await,
            None => Ok(()),
        }
    };
    let rejected = async {
        let Some(stmt) = &rejected_stmt else {
            return Ok(());
        };
        client
            .execute(
                stmt,
                &[
                    &rj.client,
                    &rj.channel,
                    &rj.received_at,
                    &rj.source_ip,
                    &rj.content_type,
                    &rj.code,
                    &rj.reason,
                    &rj.body,
                ],
            )
            .await
            .map(drop)
    };
    let probe = async {
        match &probe_stmt {
            Some(stmt) => client.execute(stmt, &[&now]).await.map(drop),
            None => Ok(()),
        }
    };
    // PostgreSQL answers the COMMIT of a transaction that a failed
    // statement aborted with ROLLBACK, not with an error: every statement's
    // own result is checked, and try_join! returns the first failure.
    tokio::try_join!(
        biased;
        events,
        upsert,
        rejected,
        probe,
        client.batch_execute("COMMIT"),
    )?;
    Ok(outcomes)
}

/// Upserts the folded message states, in key order.
async fn upsert_messages(
    conn: &Object,
    stmt: &tokio_postgres::Statement,
    messages: &BTreeMap<(&str, &str, &str), Folded<'_>>,
) -> Result<(), tokio_postgres::Error> {
    let n = messages.len();
    let (mut client, mut id, mut recipient) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut channel, mut direction, mut status, mut rank) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut provider_status, mut error_code) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut first, mut last_event, mut last_received, mut count) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((c, i, r), m) in messages {
        client.push(*c);
        id.push(*i);
        recipient.push(*r);
        channel.push(m.channel);
        direction.push(m.direction);
        status.push(m.status);
        rank.push(m.rank);
        provider_status.push(m.provider_status);
        error_code.push(m.error_code);
        first.push(m.first_seen_at);
        last_event.push(m.last_event_at);
        last_received.push(m.last_received_at);
        count.push(m.count);
    }
    conn.execute(
        stmt,
        &[
            &client,
            &id,
            &recipient,
            &channel,
            &direction,
            &status,
            &rank,
            &provider_status,
            &error_code,
            &first,
            &last_event,
            &last_received,
            &count,
        ],
    )
    .await?;
    Ok(())
}
