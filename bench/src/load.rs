//! A small HTTP/1.1 load generator with HDR histograms. Closed loop (each
//! connection sends as fast as answers come) or constant rate: each
//! connection owns every C-th slot of the schedule and latency is measured
//! from the slot's intended send time, so a stalled server shows up in the
//! percentiles (no coordinated omission, as in wrk2).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::mix::{Mix, Prepared};

/// What to send.
#[derive(Clone)]
pub struct LoadConfig {
    pub addr: SocketAddr,
    pub connections: usize,
    pub duration: Duration,
    /// Total requests per second; `None` = closed loop.
    pub rate: Option<f64>,
    pub prefix: String,
    pub token: String,
    /// Ends the run early when set.
    pub stop: Option<Arc<AtomicBool>>,
}

/// What came back.
pub struct LoadResult {
    pub elapsed: Duration,
    pub sent: u64,
    pub ok: u64,
    pub other_status: BTreeMap<u16, u64>,
    pub io_errors: u64,
    /// Events in requests answered 200.
    pub events_ok: u64,
    /// Sum of `accepted` over 200 answers.
    pub accepted: u64,
    /// Sum of `duplicates` over 200 answers.
    pub duplicates: u64,
    /// Events in retried requests answered 200 (all should be duplicates).
    pub retry_events_ok: u64,
    /// Latency in microseconds.
    pub hist: Histogram<u64>,
}

impl LoadResult {
    fn empty() -> Self {
        LoadResult {
            elapsed: Duration::ZERO,
            sent: 0,
            ok: 0,
            other_status: BTreeMap::new(),
            io_errors: 0,
            events_ok: 0,
            accepted: 0,
            duplicates: 0,
            retry_events_ok: 0,
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        }
    }

    /// Adds another run's counts; runs side by side take the longer time.
    pub fn merge(&mut self, o: LoadResult) {
        self.elapsed = self.elapsed.max(o.elapsed);
        self.sent += o.sent;
        self.ok += o.ok;
        for (k, v) in o.other_status {
            *self.other_status.entry(k).or_default() += v;
        }
        self.io_errors += o.io_errors;
        self.events_ok += o.events_ok;
        self.accepted += o.accepted;
        self.duplicates += o.duplicates;
        self.retry_events_ok += o.retry_events_ok;
        self.hist.add(o.hist).expect("same histogram bounds");
    }

    pub fn req_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn events_per_sec(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency percentile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Runs the load and merges every connection's result.
pub async fn run(cfg: LoadConfig) -> LoadResult {
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let mut tasks = Vec::new();
    for idx in 0..cfg.connections {
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(connection(idx, cfg, start, deadline)));
    }
    let mut total = LoadResult::empty();
    for t in tasks {
        total.merge(t.await.expect("load task"));
    }
    total.elapsed = start.elapsed();
    total
}

async fn connection(idx: usize, cfg: LoadConfig, start: Instant, deadline: Instant) -> LoadResult {
    let mut out = LoadResult::empty();
    let mut mix = Mix::new(
        idx as u64 + 1,
        format!("{}c{idx}", cfg.prefix),
        cfg.token.clone(),
    );
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(8192);
    let mut slot: u64 = 0;
    loop {
        let intended = match cfg.rate {
            Some(rate) => {
                start
                    + Duration::from_secs_f64(
                        (slot * cfg.connections as u64 + idx as u64) as f64 / rate,
                    )
            }
            None => Instant::now(),
        };
        let stopped = cfg.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
        if stopped || intended >= deadline || Instant::now() >= deadline {
            break;
        }
        slot += 1;
        if cfg.rate.is_some() {
            tokio::time::sleep_until(intended.into()).await;
        }
        let req = mix.next();
        out.sent += 1;
        let conn = match stream.take() {
            Some(s) => s,
            None => match TcpStream::connect(cfg.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s
                }
                Err(_) => {
                    out.io_errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        match exchange(conn, &req, &mut buf).await {
            Ok((conn, status, keep)) => {
                let micros = intended.elapsed().as_micros().max(1) as u64;
                out.hist.saturating_record(micros);
                if keep {
                    stream = Some(conn);
                }
                record(&mut out, &mut mix, &req, status, &buf);
            }
            Err(_) => out.io_errors += 1,
        }
    }
    out
}

fn record(out: &mut LoadResult, mix: &mut Mix, req: &Prepared, status: u16, body: &[u8]) {
    if status != 200 {
        *out.other_status.entry(status).or_default() += 1;
        return;
    }
    out.ok += 1;
    out.events_ok += req.events;
    if req.retry {
        out.retry_events_ok += req.events;
    }
    out.accepted += field(body, b"\"accepted\":");
    out.duplicates += field(body, b"\"duplicates\":");
    mix.acknowledged(req);
}

fn field(body: &[u8], name: &[u8]) -> u64 {
    let Some(at) = body.windows(name.len()).position(|w| w == name) else {
        return 0;
    };
    body[at + name.len()..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0, |n, b| n * 10 + u64::from(b - b'0'))
}

/// Sends one request and reads one response; leaves the body in `buf`.
async fn exchange(
    mut conn: TcpStream,
    req: &Prepared,
    buf: &mut Vec<u8>,
) -> std::io::Result<(TcpStream, u16, bool)> {
    conn.write_all(&req.bytes).await?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let keep = !head.contains("connection: close");
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..head_end);
    Ok((conn, status, keep))
}
