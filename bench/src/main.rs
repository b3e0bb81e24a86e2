//! The benchmark: one command that measures authkey-receiver on SQLite and
//! on PostgreSQL against a bare actix-web baseline in the same run and
//! prints Markdown tables.
//! See docs/benchmarks.md. Run it through `bench/run.sh`, which builds the
//! release binaries first.

mod fill;
mod load;
mod mix;
mod postgres;
mod procs;
mod writer;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;

use load::{LoadConfig, LoadResult};
use procs::{Measured, Server};
use writer::WriterTotals;

/// Benchmark authkey-receiver.
#[derive(Parser)]
struct Args {
    /// A few seconds and small fills: proves the harness works (CI).
    #[arg(long)]
    smoke: bool,
    /// Concurrent connections of the closed-loop runs.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of each throughput run.
    #[arg(long)]
    seconds: Option<u64>,
    /// Rows filled for the archive and export runs.
    #[arg(long)]
    rows: Option<u64>,
    /// Constant rate of the latency run, requests per second.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Where scratch data dirs and the PostgreSQL cluster go (the
    /// `postgres` user must reach it when run as root: keep it under /tmp).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    scratch: PathBuf,
    /// Throughput and constant-rate runs only: skips the archive and export
    /// runs on a large fill.
    #[arg(long)]
    only_throughput: bool,
    /// Skip the PostgreSQL rows when no PostgreSQL binaries are installed.
    /// Ignored under CI (`CI` set), where they must be.
    #[arg(long)]
    postgres_optional: bool,
}

const WORKERS: usize = 2;
const TOKEN: &str = "bench-url-token-4f9c2a";

struct Bench {
    args: Args,
    bins: PathBuf,
    seconds: u64,
    rows: u64,
    failures: Vec<String>,
    durability: Vec<Durability>,
}

/// Rows a run left in the database against what the answers promised.
struct Durability {
    run: String,
    rows: u64,
    /// Sum of `accepted` over the 200 answers.
    promised: u64,
    /// Events in 200-answered requests minus reported duplicates.
    expected: u64,
    /// Events in retried requests answered 200.
    retries: u64,
    /// Duplicates reported.
    duplicates: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bins = std::env::current_exe()?
        .parent()
        .context("binary directory")?
        .to_path_buf();
    let seconds = args.seconds.unwrap_or(if args.smoke { 2 } else { 15 });
    let rows = args
        .rows
        .unwrap_or(if args.smoke { 20_000 } else { 1_000_000 });
    let mut bench = Bench {
        args,
        bins,
        seconds,
        rows,
        failures: Vec::new(),
        durability: Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Ctrl-C drops the run, and with it the PostgreSQL cluster's guard.
    runtime.block_on(async {
        tokio::select! {
            done = bench.run() => done,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })?;
    if !bench.failures.is_empty() {
        for f in &bench.failures {
            eprintln!("FAILED: {f}");
        }
        std::process::exit(1);
    }
    Ok(())
}

impl Bench {
    async fn run(&mut self) -> Result<()> {
        println!("# authkey-receiver benchmark\n");
        println!(
            "machine: {} cores; {} connections, {} s per throughput run, {} rows for archive/export{}\n",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.args.connections,
            self.seconds,
            self.rows,
            if self.args.smoke { " (smoke)" } else { "" }
        );

        let postgres_wanted = self.postgres_wanted()?;
        let baseline = self.baseline().await?;
        let (receiver, sqlite_writer, constant) = self.receiver_runs().await?;
        let postgres = if postgres_wanted {
            Some(self.postgres_runs().await?)
        } else {
            None
        };
        self.print_durability();
        println!(
            "## Throughput (closed loop, {} connections)\n",
            self.args.connections
        );
        println!("| server | req/s | events/s | p50 ms | p99 ms | p99.9 ms | non-200 | ratio to baseline |");
        println!("|---|---|---|---|---|---|---|---|");
        row("bare actix baseline", &baseline, &baseline);
        row(
            "authkey-receiver, SQLite (synchronous=FULL)",
            &receiver,
            &baseline,
        );
        if let Some((one, two)) = &postgres {
            row("authkey-receiver, PostgreSQL, 1 node", &one.load, &baseline);
            row(
                "authkey-receivers, PostgreSQL, 2 nodes",
                &two.load,
                &baseline,
            );
        }
        println!("\n## Writers during the closed-loop runs (from /metrics)\n");
        println!("| run | commits/s | events per commit | ms per commit | writer busy |");
        println!("|---|---|---|---|---|");
        writer_row("SQLite, 1 node", &sqlite_writer, &receiver, 1);
        if let Some((one, two)) = &postgres {
            for run in [one, two] {
                writer_row(&run.name, &run.writer, &run.load, run.nodes);
            }
        }
        println!(
            "\n## Constant rate {} req/s (latency from intended send time)\n",
            self.args.rate
        );
        println!("| server | achieved req/s | p50 ms | p99 ms | p99.9 ms | max ms | non-200 |");
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| authkey-receiver, SQLite | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            constant.req_per_sec(),
            constant.ms(0.5),
            constant.ms(0.99),
            constant.ms(0.999),
            constant.hist.max() as f64 / 1000.0,
            non_ok(&constant)
        );
        if self.args.only_throughput {
            return Ok(());
        }
        self.archive_and_export().await?;
        if postgres_wanted {
            self.postgres_archive().await?;
        }
        Ok(())
    }

    fn receiver_bin(&self) -> PathBuf {
        self.bins.join("authkey-receiver")
    }

    /// `nice` arguments for an `archive` run at the priority the shipped
    /// systemd unit (`Nice=10`) and crontab give it.
    fn archive_args(&self, config: String) -> Vec<String> {
        vec![
            "-n".into(),
            "10".into(),
            self.receiver_bin().display().to_string(),
            "--config".into(),
            config,
            "archive".into(),
        ]
    }

    async fn baseline(&mut self) -> Result<LoadResult> {
        let addr = procs::free_addr()?;
        let server = Server::start(
            Command::new(self.bins.join("bench-baseline"))
                .args([addr.to_string(), WORKERS.to_string()]),
            addr,
        )
        .context("bench-baseline (run bench/run.sh to build it)")?;
        let result = load::run(self.load(addr, None, "base")).await;
        server.terminate()?;
        Ok(result)
    }

    fn load(&self, addr: std::net::SocketAddr, rate: Option<f64>, prefix: &str) -> LoadConfig {
        LoadConfig {
            addr,
            connections: self.args.connections,
            duration: Duration::from_secs(self.seconds),
            rate,
            prefix: prefix.to_string(),
            token: TOKEN.to_string(),
            stop: None,
        }
    }

    /// Closed-loop throughput, then the constant-rate run, on one receiver
    /// on SQLite; then checks rows against what the responses promised.
    async fn receiver_runs(&mut self) -> Result<(LoadResult, WriterTotals, LoadResult)> {
        let dir = self.scratch("ingest")?;
        let server = self.start_receiver(&dir, None)?;
        let closed = load::run(self.load(server.addr, None, "tp")).await;
        let mut writer = WriterTotals::default();
        writer.scrape(server.addr).await?;
        let mut cfg = self.load(server.addr, Some(self.args.rate), "cr");
        cfg.connections = cfg.connections.max(32);
        let constant = load::run(cfg).await;
        server.terminate()?;
        let rows: u64 = rusqlite::Connection::open(dir.join("data/receiver.db"))?.query_row(
            "SELECT count(*) FROM events",
            [],
            |r| r.get(0),
        )?;
        self.check_durability(
            "SQLite, 1 node (closed loop + constant rate)",
            rows,
            &[&closed, &constant],
        );
        std::fs::remove_dir_all(&dir)?;
        Ok((closed, writer, constant))
    }

    /// Compares the rows a run left with what its 200 answers promised;
    /// a mismatch fails the benchmark.
    fn check_durability(&mut self, run: &str, rows: u64, loads: &[&LoadResult]) {
        let sum = |f: fn(&LoadResult) -> u64| loads.iter().map(|l| f(l)).sum::<u64>();
        let d = Durability {
            run: run.to_string(),
            rows,
            promised: sum(|l| l.accepted),
            expected: sum(|l| l.events_ok) - sum(|l| l.duplicates),
            retries: sum(|l| l.retry_events_ok),
            duplicates: sum(|l| l.duplicates),
        };
        if d.rows != d.promised || d.rows != d.expected {
            self.failures.push(format!(
                "{run}: rows in the database ({}) differ from acknowledged events ({} accepted, {} expected)",
                d.rows, d.promised, d.expected
            ));
        }
        if d.retries != d.duplicates {
            self.failures.push(format!(
                "{run}: {} retried events but {} duplicates reported",
                d.retries, d.duplicates
            ));
        }
        if sum(|l| l.ok) == 0 {
            self.failures
                .push(format!("{run}: the receiver answered no request with 200"));
        }
        self.durability.push(d);
    }

    fn print_durability(&self) {
        println!("## Durability check\n");
        println!("| run | rows in events | sum of `accepted` | events in 200 answers − duplicates | retried events answered 200 | duplicates reported |");
        println!("|---|---|---|---|---|---|");
        for d in &self.durability {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                d.run, d.rows, d.promised, d.expected, d.retries, d.duplicates
            );
        }
        println!();
    }

    fn scratch(&self, name: &str) -> Result<PathBuf> {
        let dir = self
            .args
            .scratch
            .join(format!("authkey-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Writes the production-like config: synchronous=FULL, allowlist on,
    /// url token on, 2 workers, warn-level logs; the PostgreSQL backend when
    /// given a database URL. The in-process pruning task is off so that the
    /// `archive` command (as cron) does the archiving.
    fn write_config(
        &self,
        dir: &Path,
        addr: std::net::SocketAddr,
        postgres: Option<&str>,
    ) -> Result<PathBuf> {
        let path = dir.join("config.toml");
        let backend = match postgres {
            Some(url) => format!("backend = \"postgres\"\npostgres_url = \"{url}\"\n"),
            None => String::new(),
        };
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = \"{addr}\"\nworkers = {WORKERS}\n\n\
                 [storage]\n{backend}data_dir = \"{data}\"\nsynchronous = \"full\"\nmin_free_mb = 0\n\n\
                 [archive]\ndir = \"{archive}\"\n\n\
                 [retention]\ninterval = \"0s\"\n\n\
                 [allowlist]\ndefault = [\"127.0.0.0/8\"]\n\n\
                 [log]\nlevel = \"warn\"\n\n\
                 [[clients]]\nid = \"bench\"\nclass = \"standard\"\nurl_token = \"{TOKEN}\"\n",
                data = dir.join("data").display(),
                archive = dir.join("archive").display(),
            ),
        )?;
        Ok(path)
    }

    /// A receiver on a fresh data dir; on SQLite there, or on the
    /// PostgreSQL database at `postgres`.
    fn start_receiver(&self, dir: &Path, postgres: Option<&str>) -> Result<Server> {
        let addr = procs::free_addr()?;
        let config = self.write_config(dir, addr, postgres)?;
        Server::start(
            Command::new(self.receiver_bin())
                .arg("--config")
                .arg(&config)
                .arg("serve"),
            addr,
        )
    }

    /// Migrates a fresh data dir and fills it with expired rows.
    fn filled(&self, name: &str) -> Result<(PathBuf, PathBuf)> {
        let dir = self.scratch(name)?;
        let config = self.write_config(&dir, procs::free_addr()?, None)?;
        let migrated = Command::new(self.receiver_bin())
            .arg("--config")
            .arg(&config)
            .arg("migrate")
            .stdout(Stdio::null())
            .status()?;
        if !migrated.success() {
            bail!("migrate failed");
        }
        fill::expired_rows(&dir.join("data/receiver.db"), self.rows)?;
        Ok((dir, config))
    }

    /// Archive and export on SQLite, then callback latency during an
    /// archive run.
    async fn archive_and_export(&mut self) -> Result<()> {
        let (dir, config) = self.filled("archive")?;
        let (export, archive) = self.export_then_archive(&dir, &config)?;
        self.archive_table("SQLite", &export, &archive);
        if archive.success {
            let left: u64 = rusqlite::Connection::open(dir.join("data/receiver.db"))?.query_row(
                "SELECT count(*) FROM events",
                [],
                |r| r.get(0),
            )?;
            self.check_archived("SQLite", left);
        }
        std::fs::remove_dir_all(&dir)?;

        let (dir, config) = self.filled("during")?;
        let server = self.start_receiver(&dir, None)?;
        self.latency_during_archive("SQLite", server, &config)
            .await?;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// Times a masked CSV export of every filled event, then an `archive`
    /// run (as cron would start it), on the data `config` points at.
    fn export_then_archive(&self, dir: &Path, config: &Path) -> Result<(Measured, Measured)> {
        let config = config.display().to_string();
        let export_file = dir.join("export.csv").display().to_string();
        let export = procs::measure(
            &self.receiver_bin(),
            &[
                "--config".into(),
                config.clone(),
                "export".into(),
                "--client".into(),
                "bench".into(),
                "--format".into(),
                "csv".into(),
                "--output".into(),
                export_file.clone(),
            ],
        )?;
        let _ = std::fs::remove_file(&export_file);
        let archive = procs::measure(Path::new("nice"), &self.archive_args(config))?;
        Ok((export, archive))
    }

    /// Prints the archive and export rows; a failed job fails the benchmark.
    fn archive_table(&mut self, backend: &str, export: &Measured, archive: &Measured) {
        println!(
            "\n## Archive and masked export on {backend} ({} events, each with its message row)\n",
            self.rows
        );
        println!("| job | rows | seconds | rows/s | peak RSS MB | result |");
        println!("|---|---|---|---|---|---|");
        for (name, rows, m) in [
            ("masked CSV export (`export`, events)", self.rows, export),
            (
                "archive (`archive`, events + messages)",
                2 * self.rows,
                archive,
            ),
        ] {
            let verdict = if m.success {
                "ok".to_string()
            } else {
                let reason = m.stderr.lines().last().unwrap_or("").to_string();
                self.failures
                    .push(format!("{backend}: {name} failed: {reason}"));
                format!("failed: {reason}")
            };
            println!(
                "| {name} | {rows} | {:.2} | {:.0} | {:.1} | {verdict} |",
                m.seconds,
                rows as f64 / m.seconds,
                m.peak_rss_mb
            );
        }
        if archive.success {
            let out = archive.stdout.trim();
            let summary = out.rfind("archive: ").map_or(out, |at| &out[at..]);
            println!("\narchive summary: {summary}");
        }
    }

    /// Fails the benchmark when a successful archive run left expired rows.
    fn check_archived(&mut self, backend: &str, left: u64) {
        if left != 0 {
            self.failures
                .push(format!("{backend}: {left} expired rows left after archive"));
        }
    }

    /// Callback latency at a constant rate on `server` while an `archive`
    /// run (as cron would start it, with `config`) moves every filled row
    /// out. Stops the server.
    async fn latency_during_archive(
        &mut self,
        backend: &str,
        server: Server,
        config: &Path,
    ) -> Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        let rate = 2000.0;
        let mut cfg = self.load(server.addr, Some(rate), "da");
        cfg.connections = 32;
        cfg.duration = Duration::from_secs(600);
        cfg.stop = Some(Arc::clone(&stop));
        let load = tokio::spawn(load::run(cfg));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let args = self.archive_args(config.display().to_string());
        let archive =
            tokio::task::spawn_blocking(move || procs::measure(Path::new("nice"), &args)).await??;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let during = load.await?;
        server.terminate()?;
        println!(
            "\n## Callback latency on {backend} during an archive run of {} rows ({rate} req/s)\n",
            self.rows
        );
        println!("| archive seconds | archive result | requests | p50 ms | p99 ms | p99.9 ms | max ms | non-200 |");
        println!("|---|---|---|---|---|---|---|---|");
        println!(
            "| {:.2} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            archive.seconds,
            if archive.success { "ok" } else { "failed" },
            during.sent,
            during.ms(0.5),
            during.ms(0.99),
            during.ms(0.999),
            during.hist.max() as f64 / 1000.0,
            non_ok(&during)
        );
        if !archive.success {
            let reason = archive.stderr.lines().last().unwrap_or("");
            self.failures
                .push(format!("{backend}: archive during load failed: {reason}"));
        }
        if during.ok == 0 {
            self.failures.push(format!(
                "{backend}: no callback answered 200 during the archive run"
            ));
        }
        Ok(())
    }
}

fn row(name: &str, r: &LoadResult, baseline: &LoadResult) {
    println!(
        "| {name} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.2} |",
        r.req_per_sec(),
        r.events_per_sec(),
        r.ms(0.5),
        r.ms(0.99),
        r.ms(0.999),
        non_ok(r),
        r.req_per_sec() / baseline.req_per_sec()
    );
}

/// Writer busy is the share of the run each writer spent in transactions:
/// near 100% the single writer per receiver is the limit.
fn writer_row(name: &str, w: &WriterTotals, r: &LoadResult, nodes: usize) {
    let seconds = r.elapsed.as_secs_f64();
    println!(
        "| {name} | {:.0} | {:.1} | {:.2} | {:.0}% |",
        w.commits / seconds,
        w.events_per_commit(),
        w.ms_per_commit(),
        100.0 * w.seconds / (seconds * nodes as f64)
    );
}

fn non_ok(r: &LoadResult) -> String {
    let mut parts: Vec<String> = r
        .other_status
        .iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect();
    if r.io_errors > 0 {
        parts.push(format!("io×{}", r.io_errors));
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join(" ")
    }
}
