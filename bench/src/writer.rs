//! The receivers' writer histograms, read from `/metrics` after a run: how
//! many transactions the group commit made, how many events each held and
//! how long each took. They tell a slow database from a starved writer.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sums over one or more receivers' writers.
#[derive(Default)]
pub struct WriterTotals {
    /// Committed transactions.
    pub commits: f64,
    /// Events and quarantined items in them.
    pub events: f64,
    /// Time spent writing and committing them.
    pub seconds: f64,
}

impl WriterTotals {
    /// Adds the writer histograms of the receiver at `addr`.
    pub async fn scrape(&mut self, addr: SocketAddr) -> Result<()> {
        let mut conn = TcpStream::connect(addr).await?;
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut text = String::new();
        conn.read_to_string(&mut text).await?;
        let value = |name: &str| -> Result<f64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("{name} missing from /metrics of {addr}"))
        };
        self.commits += value("authkey_receiver_writer_batch_events_count")?;
        self.events += value("authkey_receiver_writer_batch_events_sum")?;
        self.seconds += value("authkey_receiver_writer_commit_seconds_sum")?;
        Ok(())
    }

    pub fn events_per_commit(&self) -> f64 {
        self.events / self.commits.max(1.0)
    }

    pub fn ms_per_commit(&self) -> f64 {
        1000.0 * self.seconds / self.commits.max(1.0)
    }
}
