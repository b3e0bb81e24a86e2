//! The benchmark: one command that measures authkey-receiver against a bare
//! actix-web baseline in the same run and prints a Markdown table.
//! See docs/benchmarks.md. Run it through `bench/run.sh`, which builds the
//! release binaries first.

mod fill;
mod load;
mod mix;
mod procs;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use load::{LoadConfig, LoadResult};

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
    /// Where scratch data dirs go.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    scratch: PathBuf,
}

const WORKERS: usize = 2;
const TOKEN: &str = "bench-url-token-4f9c2a";

struct Bench {
    args: Args,
    bins: PathBuf,
    seconds: u64,
    rows: u64,
    failures: Vec<String>,
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
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench.run())?;
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

        let baseline = self.baseline().await?;
        let (receiver, constant) = self.receiver_runs().await?;
        println!(
            "## Throughput (closed loop, {} connections)\n",
            self.args.connections
        );
        println!("| server | req/s | events/s | p50 ms | p99 ms | p99.9 ms | non-200 | ratio to baseline |");
        println!("|---|---|---|---|---|---|---|---|");
        row("bare actix baseline", &baseline, 1.0);
        row(
            "authkey-receiver (synchronous=FULL)",
            &receiver,
            receiver.req_per_sec() / baseline.req_per_sec(),
        );
        println!(
            "\n## Constant rate {} req/s (latency from intended send time)\n",
            self.args.rate
        );
        println!("| server | achieved req/s | p50 ms | p99 ms | p99.9 ms | max ms | non-200 |");
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| authkey-receiver | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            constant.req_per_sec(),
            constant.ms(0.5),
            constant.ms(0.99),
            constant.ms(0.999),
            constant.hist.max() as f64 / 1000.0,
            non_ok(&constant)
        );
        self.archive_and_export()?;
        self.latency_during_archive().await?;
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
        let mut child = Command::new(self.bins.join("bench-baseline"))
            .args([addr.to_string(), WORKERS.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start bench-baseline (run bench/run.sh to build it)")?;
        procs::wait_listening(addr, &mut child)?;
        let result = load::run(self.load(addr, None, "base")).await;
        procs::terminate(child)?;
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

    /// Closed-loop throughput, then the constant-rate run, on one receiver;
    /// then checks rows against what the responses promised.
    async fn receiver_runs(&mut self) -> Result<(LoadResult, LoadResult)> {
        let dir = self.scratch("ingest")?;
        let (child, addr) = self.start_receiver(&dir)?;
        let closed = load::run(self.load(addr, None, "tp")).await;
        let mut cfg = self.load(addr, Some(self.args.rate), "cr");
        cfg.connections = cfg.connections.max(32);
        let constant = load::run(cfg).await;
        procs::terminate(child)?;
        let rows: u64 = rusqlite::Connection::open(dir.join("data/receiver.db"))?.query_row(
            "SELECT count(*) FROM events",
            [],
            |r| r.get(0),
        )?;
        let promised = closed.accepted + constant.accepted;
        let expected =
            closed.events_ok + constant.events_ok - closed.duplicates - constant.duplicates;
        let retries = closed.retry_events_ok + constant.retry_events_ok;
        let dups = closed.duplicates + constant.duplicates;
        println!("## Durability check\n");
        println!("| rows in events | sum of `accepted` | events in 200 answers − duplicates | retried events answered 200 | duplicates reported |");
        println!("|---|---|---|---|---|");
        println!("| {rows} | {promised} | {expected} | {retries} | {dups} |\n");
        if rows != promised || rows != expected {
            self.failures.push(format!(
                "rows in the database ({rows}) differ from acknowledged events ({promised} accepted, {expected} expected)"
            ));
        }
        if retries != dups {
            self.failures.push(format!(
                "{retries} retried events but {dups} duplicates reported"
            ));
        }
        if closed.ok == 0 {
            self.failures
                .push("the receiver answered no request with 200".into());
        }
        std::fs::remove_dir_all(&dir)?;
        Ok((closed, constant))
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
    /// url token on, 2 workers, warn-level logs. The in-process pruning task
    /// is off so that the `archive` command (as cron) does the archiving.
    fn write_config(&self, dir: &Path, addr: std::net::SocketAddr) -> Result<PathBuf> {
        let path = dir.join("config.toml");
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = \"{addr}\"\nworkers = {WORKERS}\n\n\
                 [storage]\ndata_dir = \"{data}\"\nsynchronous = \"full\"\nmin_free_mb = 0\n\n\
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

    fn start_receiver(&self, dir: &Path) -> Result<(Child, std::net::SocketAddr)> {
        let addr = procs::free_addr()?;
        let config = self.write_config(dir, addr)?;
        let mut child = Command::new(self.receiver_bin())
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start authkey-receiver")?;
        procs::wait_listening(addr, &mut child)?;
        Ok((child, addr))
    }

    /// Migrates a fresh data dir and fills it with expired rows.
    fn filled(&self, name: &str) -> Result<(PathBuf, PathBuf)> {
        let dir = self.scratch(name)?;
        let config = self.write_config(&dir, procs::free_addr()?)?;
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

    fn archive_and_export(&mut self) -> Result<()> {
        let (dir, config) = self.filled("archive")?;
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
                export_file,
            ],
        )?;
        let archive = procs::measure(Path::new("nice"), &self.archive_args(config))?;
        println!(
            "\n## Archive and masked export ({} events, each with its message row)\n",
            self.rows
        );
        println!("| job | rows | seconds | rows/s | peak RSS MB | result |");
        println!("|---|---|---|---|---|---|");
        for (name, rows, m) in [
            ("masked CSV export (`export`, events)", self.rows, &export),
            (
                "archive (`archive`, events + messages)",
                2 * self.rows,
                &archive,
            ),
        ] {
            let verdict = if m.success {
                "ok".to_string()
            } else {
                let reason = m.stderr.lines().last().unwrap_or("").to_string();
                self.failures.push(format!("{name} failed: {reason}"));
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
            let left: u64 = rusqlite::Connection::open(dir.join("data/receiver.db"))?.query_row(
                "SELECT count(*) FROM events",
                [],
                |r| r.get(0),
            )?;
            if left != 0 {
                self.failures
                    .push(format!("{left} expired rows left after archive"));
            }
            let out = archive.stdout.trim();
            let summary = out.rfind("archive: ").map_or(out, |at| &out[at..]);
            println!("\narchive summary: {summary}");
        }
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// Callback latency at a constant rate while an `archive` run (as cron
    /// would start it) moves every filled row out.
    async fn latency_during_archive(&mut self) -> Result<()> {
        let (dir, config) = self.filled("during")?;
        let (child, addr) = self.start_receiver(&dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let rate = 2000.0;
        let mut cfg = self.load(addr, Some(rate), "da");
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
        procs::terminate(child)?;
        println!(
            "\n## Callback latency during an archive run of {} rows ({rate} req/s)\n",
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
            self.failures.push("archive during load failed".into());
        }
        if during.ok == 0 {
            self.failures
                .push("no callback answered 200 during the archive run".into());
        }
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}

fn row(name: &str, r: &LoadResult, ratio: f64) {
    println!(
        "| {name} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {ratio:.2} |",
        r.req_per_sec(),
        r.events_per_sec(),
        r.ms(0.5),
        r.ms(0.99),
        r.ms(0.999),
        non_ok(r)
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
