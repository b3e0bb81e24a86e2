//! Prometheus metrics, one registry per running service (so two services in
//! one test process never mix counts). Names and labels are documented in
//! docs/metrics.md; every label value comes from a closed set (routes,
//! configured clients, channels, status codes), never from a phone number,
//! token or other request data.
//!
//! The writer's own histograms live in [`WriterStats`], owned by the store and
//! registered here; gauges that describe state (queue depth, database size)
//! are read from the store when `/metrics` is scraped.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

use crate::domain::{Channel, ClientId};
use crate::store::{IngestOutcome, Store};

/// Prefix of every metric name.
const NAMESPACE: &str = "authkey_receiver";

/// Latency buckets in seconds: sub-millisecond to ten seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Events per commit: 1 to the default `storage.batch_max_events` and beyond.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2048.0, 4096.0,
];

/// Archive run durations in seconds.
const ARCHIVE_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];

/// Why a callback was refused before its body was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The client address is not in the allowlist.
    IpNotAllowed,
    /// The `?token=` URL token is missing or wrong.
    InvalidToken,
    /// A required signature (Standard Webhooks, Meta, RBM) is missing or wrong.
    InvalidSignature,
}

impl Denial {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::IpNotAllowed => "ip_not_allowed",
            Denial::InvalidToken => "invalid_token",
            Denial::InvalidSignature => "invalid_signature",
        }
    }
}

/// Histograms the store's writer thread records into; cheap to clone (the
/// clones share their counts).
#[derive(Clone)]
pub struct WriterStats {
    /// Events (and quarantined items) per committed transaction.
    pub batch_events: Histogram,
    /// Time to write and commit one transaction.
    pub commit_seconds: Histogram,
    /// Transactions that failed (each answered 503).
    pub commit_failures: IntCounter,
}

impl WriterStats {
    /// Fresh, unregistered histograms.
    pub fn new() -> Self {
        WriterStats {
            batch_events: histogram(
                "writer_batch_events",
                "Events and quarantined items per committed transaction",
                BATCH_BUCKETS,
            ),
            commit_seconds: histogram(
                "writer_commit_seconds",
                "Time to write and commit one transaction (group commit)",
                SECONDS_BUCKETS,
            ),
            commit_failures: IntCounter::with_opts(opts(
                "writer_commit_failures_total",
                "Transactions that failed to commit; their callbacks were answered 503",
            ))
            .expect("valid metric"),
        }
    }

    /// Records one committed transaction.
    pub fn committed(&self, items: usize, took: Duration) {
        self.batch_events.observe(items as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }
}

impl Default for WriterStats {
    fn default() -> Self {
        Self::new()
    }
}

/// The service's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    store: Store,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    events: IntCounterVec,
    denied: IntCounterVec,
    queue_depth: IntGauge,
    database_bytes: IntGauge,
    archive_runs: IntCounterVec,
    archive_rows: IntCounter,
    archive_bytes: IntCounter,
    archive_seconds: Histogram,
    archive_last_success: Gauge,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NAMESPACE)
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::from(opts(name, help)).buckets(buckets.to_vec()))
        .expect("valid metric")
}

impl Metrics {
    /// Creates the registry with every metric, including the store's writer
    /// histograms.
    pub fn new(store: &Store) -> Metrics {
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(opts(name, help), labels).expect("valid metric")
        };
        let requests = counter_vec(
            "http_requests_total",
            "HTTP requests answered, by route pattern, method, status code and channel",
            &["route", "method", "status", "channel"],
        );
        let request_seconds = HistogramVec::new(
            HistogramOpts::from(opts(
                "http_request_duration_seconds",
                "Time from request to response head, by route pattern",
            ))
            .buckets(SECONDS_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let events = counter_vec(
            "events_total",
            "Callback events by client, channel and outcome (accepted, duplicate, rejected)",
            &["client", "channel", "outcome"],
        );
        let denied = counter_vec(
            "access_denied_total",
            "Callbacks refused before their body was read, by client and reason",
            &["client", "reason"],
        );
        let queue_depth = IntGauge::with_opts(opts(
            "writer_queue_depth",
            "Batches waiting for the writer thread",
        ))
        .expect("valid metric");
        let database_bytes = IntGauge::with_opts(opts(
            "database_size_bytes",
            "Size of receiver.db plus its write-ahead log",
        ))
        .expect("valid metric");
        let archive_runs = counter_vec(
            "archive_runs_total",
            "Archive runs by outcome (ok, failed)",
            &["outcome"],
        );
        let archive_rows = IntCounter::with_opts(opts(
            "archive_rows_total",
            "Rows written to archive files and deleted from the database",
        ))
        .expect("valid metric");
        let archive_bytes = IntCounter::with_opts(opts(
            "archive_bytes_total",
            "Bytes of archive files written",
        ))
        .expect("valid metric");
        let archive_seconds = histogram(
            "archive_duration_seconds",
            "Duration of archive runs",
            ARCHIVE_BUCKETS,
        );
        let archive_last_success = Gauge::with_opts(opts(
            "archive_last_success_timestamp_seconds",
            "Unix time of the last archive run that succeeded; 0 if none since start",
        ))
        .expect("valid metric");
        let build_info = IntGauge::with_opts(
            opts("build_info", "Always 1; the version label names the build")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid metric");
        build_info.set(1);

        let registry = Registry::new();
        let writer = store.writer_stats();
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(requests.clone()),
            Box::new(request_seconds.clone()),
            Box::new(events.clone()),
            Box::new(denied.clone()),
            Box::new(queue_depth.clone()),
            Box::new(database_bytes.clone()),
            Box::new(writer.batch_events.clone()),
            Box::new(writer.commit_seconds.clone()),
            Box::new(writer.commit_failures.clone()),
            Box::new(archive_runs.clone()),
            Box::new(archive_rows.clone()),
            Box::new(archive_bytes.clone()),
            Box::new(archive_seconds.clone()),
            Box::new(archive_last_success.clone()),
            Box::new(build_info),
        ];
        for c in collectors {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            inner: Arc::new(Inner {
                registry,
                store: store.clone(),
                requests,
                request_seconds,
                events,
                denied,
                queue_depth,
                database_bytes,
                archive_runs,
                archive_rows,
                archive_bytes,
                archive_seconds,
                archive_last_success,
            }),
        }
    }

    /// Counts one answered HTTP request. `route` is the matched pattern (or
    /// `unmatched`), `channel` a known channel or `none`.
    pub fn request(
        &self,
        route: &str,
        method: &str,
        status: u16,
        channel: Option<Channel>,
        took: Duration,
    ) {
        let status = status.to_string();
        let channel = channel.map_or("none", Channel::as_str);
        self.inner
            .requests
            .with_label_values(&[route, method, status.as_str(), channel])
            .inc();
        self.inner
            .request_seconds
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    }

    /// Counts the events of one committed callback.
    pub fn events(&self, client: &ClientId, channel: Channel, outcome: &IngestOutcome) {
        let counts = [
            ("accepted", outcome.accepted),
            ("duplicate", outcome.duplicates),
            ("rejected", outcome.rejected),
        ];
        for (name, n) in counts {
            self.inner
                .events
                .with_label_values(&[client.as_str(), channel.as_str(), name])
                .inc_by(n as u64);
        }
    }

    /// Counts a callback refused by access control.
    pub fn access_denied(&self, client: &ClientId, reason: Denial) {
        self.inner
            .denied
            .with_label_values(&[client.as_str(), reason.as_str()])
            .inc();
    }

    /// Records an archive run that finished: `rows` moved, `bytes` of
    /// archive files written.
    pub fn archive_succeeded(&self, rows: u64, bytes: u64, took: Duration) {
        let inner = &self.inner;
        inner.archive_runs.with_label_values(&["ok"]).inc();
        inner.archive_rows.inc_by(rows);
        inner.archive_bytes.inc_by(bytes);
        inner.archive_seconds.observe(took.as_secs_f64());
        inner
            .archive_last_success
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }

    /// Records an archive run that failed.
    pub fn archive_failed(&self, took: Duration) {
        self.inner.archive_runs.with_label_values(&["failed"]).inc();
        self.inner.archive_seconds.observe(took.as_secs_f64());
    }

    /// Reads the state gauges and renders every metric in the Prometheus
    /// text format.
    pub fn render(&self) -> String {
        let inner = &self.inner;
        inner.queue_depth.set(inner.store.queue_depth() as i64);
        inner
            .database_bytes
            .set(inner.store.database_size_bytes() as i64);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&inner.registry.gather(), &mut out)
            .expect("text encoding into memory does not fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_reasons_match_the_api_error_codes() {
        assert_eq!(Denial::IpNotAllowed.as_str(), "ip_not_allowed");
        assert_eq!(Denial::InvalidToken.as_str(), "invalid_token");
        assert_eq!(Denial::InvalidSignature.as_str(), "invalid_signature");
    }

    #[test]
    fn writer_stats_record_batch_sizes_and_latencies() {
        let stats = WriterStats::new();
        stats.committed(3, Duration::from_millis(2));
        stats.committed(7, Duration::from_millis(4));
        assert_eq!(stats.batch_events.get_sample_count(), 2);
        assert_eq!(stats.batch_events.get_sample_sum(), 10.0);
        assert!((stats.commit_seconds.get_sample_sum() - 0.006).abs() < 1e-9);
    }
}
