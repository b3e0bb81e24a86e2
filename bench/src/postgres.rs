//! The PostgreSQL rows: a throwaway cluster from `scripts/pg-scratch`
//! (fsync and synchronous_commit on), a fresh database per measurement, and
//! one or two receivers (own data dirs, one database) under the same
//! closed-loop load and request mix as the SQLite row, the connections split
//! between them. The durability check counts the rows in PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::load::{self, LoadResult};
use crate::writer::WriterTotals;
use crate::Bench;

const PG_SCRATCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg-scratch");

/// A running scratch cluster in `<scratch>/pg`; when dropped it is stopped
/// and the whole scratch dir deleted, so a run that fails half-way (or is
/// interrupted) leaves no postmaster and no data behind.
struct Cluster {
    scratch: PathBuf,
    dir: PathBuf,
    /// Superuser URL of the `postgres` database.
    url: String,
}

impl Cluster {
    /// Whether `pg-scratch` finds PostgreSQL binaries.
    fn installed() -> bool {
        Command::new(PG_SCRATCH)
            .arg("bin")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start(scratch: &Path) -> Result<Cluster> {
        let dir = scratch.join("pg");
        let out = Command::new(PG_SCRATCH)
            .arg("start")
            .arg(&dir)
            .output()
            .context("run scripts/pg-scratch")?;
        // Stopped by the guard even if the start only half worked.
        let cluster = Cluster {
            scratch: scratch.to_path_buf(),
            dir,
            url: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        };
        if !out.status.success() {
            bail!(
                "pg-scratch start failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(cluster)
    }

    /// Creates an empty database; returns its URL.
    async fn database(&self, name: &str) -> Result<String> {
        connect(&self.url)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        url_of(self, name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stopped = Command::new(PG_SCRATCH)
            .arg("stop")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = Command::new(PG_SCRATCH)
                .arg("kill")
                .arg(&self.dir)
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connect to {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// One PostgreSQL measurement: the load summed over its receivers.
pub struct PgRun {
    pub name: String,
    pub load: LoadResult,
    pub writer: WriterTotals,
    pub nodes: usize,
}

impl Bench {
    /// Whether to measure PostgreSQL: yes when its binaries are installed;
    /// without them an error, unless `--postgres-optional` allows skipping
    /// (never under CI). Asked first, so a missing PostgreSQL fails early.
    pub(crate) fn postgres_wanted(&self) -> Result<bool> {
        if Cluster::installed() {
            return Ok(true);
        }
        if std::env::var_os("CI").is_some() {
            bail!("no PostgreSQL binaries, and CI needs the PostgreSQL rows");
        }
        if !self.args.postgres_optional {
            bail!("no PostgreSQL binaries (install postgresql, set PG_BIN, or pass --postgres-optional)");
        }
        println!("PostgreSQL rows skipped: no PostgreSQL binaries (--postgres-optional)\n");
        Ok(false)
    }

    /// One receiver, then two, on one cluster.
    pub(crate) async fn postgres_runs(&mut self) -> Result<(PgRun, PgRun)> {
        let scratch = self.scratch("postgres")?;
        let cluster = Cluster::start(&scratch)?;
        let one = self.pg_receivers(&cluster, &scratch, 1).await?;
        let two = self.pg_receivers(&cluster, &scratch, 2).await?;
        Ok((one, two))
    }

    /// `nodes` receivers on a fresh database, each with its share of the
    /// connections, then the durability check over all of them.
    async fn pg_receivers(
        &mut self,
        cluster: &Cluster,
        scratch: &Path,
        nodes: usize,
    ) -> Result<PgRun> {
        let name = format!("bench_{nodes}_nodes");
        let url = cluster.database(&name).await?;
        let mut servers = Vec::new();
        for n in 0..nodes {
            let dir = scratch.join(format!("{name}_{n}"));
            std::fs::create_dir_all(&dir)?;
            servers.push(self.start_receiver(&dir, Some(&url))?);
        }
        let tasks: Vec<_> = servers
            .iter()
            .enumerate()
            .map(|(n, server)| {
                let mut cfg = self.load(server.addr, None, &format!("pg{nodes}n{n}"));
                cfg.connections = share(self.args.connections, nodes, n);
                tokio::spawn(load::run(cfg))
            })
            .collect();
        let mut total: Option<LoadResult> = None;
        for task in tasks {
            let result = task.await?;
            match total.as_mut() {
                Some(t) => t.merge(result),
                None => total = Some(result),
            }
        }
        let load = total.context("no receiver")?;
        let mut writer = WriterTotals::default();
        for server in &servers {
            writer.scrape(server.addr).await?;
        }
        for server in servers {
            server.terminate()?;
        }
        let rows: i64 = connect(&url)
            .await?
            .query_one("SELECT count(*) FROM events", &[])
            .await?
            .get(0);
        let run = if nodes == 1 {
            "PostgreSQL, 1 node".to_string()
        } else {
            format!("PostgreSQL, {nodes} nodes")
        };
        self.check_durability(&run, rows as u64, &[&load]);
        Ok(PgRun {
            name: run,
            load,
            writer,
            nodes,
        })
    }
}

impl Bench {
    /// Archive and masked export on PostgreSQL, like the SQLite rows: a
    /// fresh database on a new scratch cluster, migrated by the receiver,
    /// filled server-side; then callback latency during an archive run on a
    /// second filled database.
    pub(crate) async fn postgres_archive(&mut self) -> Result<()> {
        let scratch = self.scratch("pg-archive")?;
        let cluster = Cluster::start(&scratch)?;
        let (dir, config, url) = self.pg_filled(&cluster, &scratch, "bench_archive").await?;
        let (export, archive) = self.export_then_archive(&dir, &config)?;
        self.archive_table("PostgreSQL", &export, &archive);
        if archive.success {
            let left: i64 = connect(&url)
                .await?
                .query_one("SELECT count(*) FROM events", &[])
                .await?
                .get(0);
            self.check_archived("PostgreSQL", left as u64);
        }
        let (dir, config, url) = self.pg_filled(&cluster, &scratch, "bench_during").await?;
        let server = self.start_receiver(&dir, Some(&url))?;
        self.latency_during_archive("PostgreSQL", server, &config)
            .await
    }

    /// A data dir and config for database `name`, migrated by
    /// `authkey-receiver migrate` and filled with expired rows.
    async fn pg_filled(
        &self,
        cluster: &Cluster,
        scratch: &Path,
        name: &str,
    ) -> Result<(PathBuf, PathBuf, String)> {
        let url = cluster.database(name).await?;
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir)?;
        let config = self.write_config(&dir, crate::procs::free_addr()?, Some(&url))?;
        let migrated = Command::new(self.receiver_bin())
            .arg("--config")
            .arg(&config)
            .arg("migrate")
            .stdout(Stdio::null())
            .status()?;
        if !migrated.success() {
            bail!("migrate of {name} on PostgreSQL failed");
        }
        crate::fill::expired_rows_postgres(&connect(&url).await?, self.rows).await?;
        Ok((dir, config, url))
    }
}

/// URL of database `name` on `cluster`.
fn url_of(cluster: &Cluster, name: &str) -> Result<String> {
    let (server, _) = cluster.url.rsplit_once('/').context("cluster URL")?;
    Ok(format!("{server}/{name}"))
}

/// Connections of receiver `n` out of `nodes`: an even split, the
/// remainder to the first ones.
fn share(connections: usize, nodes: usize, n: usize) -> usize {
    connections / nodes + usize::from(n < connections % nodes)
}
