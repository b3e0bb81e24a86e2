//! Shared by the PostgreSQL tests: a throwaway cluster per test (started
//! with `scripts/pg-scratch`, killed and removed on drop), receivers as real
//! processes pointed at it, and synchronous queries against it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::helpers::{spawn_binary_logged, tool_available, CapturedLog, Running};

fn scratch_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-scratch")
}

/// `initdb` where `scripts/pg-scratch` looks for it: `$PG_BIN`, else the
/// newest /usr/lib/postgresql/*/bin, else the PATH.
fn initdb() -> String {
    if let Some(bin) = std::env::var_os("PG_BIN") {
        return Path::new(&bin).join("initdb").display().to_string();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin/initdb")))
        })
        .filter(|(_, p)| p.exists())
        .collect();
    found.sort();
    found
        .pop()
        .map_or_else(|| "initdb".into(), |(_, p)| p.display().to_string())
}

/// A PostgreSQL cluster of one test, in /tmp/authkey-pgtest-<random> (the
/// `postgres` user must reach it, so not inside a private temp dir).
pub struct PgCluster {
    dir: PathBuf,
    url: String,
}

impl PgCluster {
    /// Starts a fresh cluster; `None` (test skipped, with a message) when
    /// PostgreSQL is not installed and `CI` is not set.
    pub fn start() -> Option<PgCluster> {
        if !tool_available(&initdb(), "--version") {
            return None;
        }
        let dir = PathBuf::from(format!(
            "/tmp/authkey-pgtest-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let mut cluster = PgCluster {
            dir,
            url: String::new(),
        };
        cluster.url = cluster.scratch("start");
        Some(cluster)
    }

    /// Runs `pg-scratch CMD DIR`, asserting success; returns its last line.
    fn scratch(&self, cmd: &str) -> String {
        let out = Command::new(scratch_script())
            .arg(cmd)
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg-scratch {cmd} {} failed: {}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        stdout.lines().last().unwrap_or_default().to_string()
    }

    /// Stops the server at once (immediate shutdown: no checkpoint, every
    /// connection cut), as a crash would.
    pub fn kill(&self) {
        self.scratch("kill");
    }

    /// Starts the server again on the same data and port.
    pub fn restart(&self) {
        let url = self.scratch("start");
        assert_eq!(url, self.url, "the cluster came back on another port");
    }

    /// Runs `f` with a connection of the synchronous client on a thread of
    /// its own (that client panics inside a tokio runtime).
    pub fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
    ) -> T {
        let url = self.url.clone();
        let joined = std::thread::spawn(move || {
            let mut client =
                postgres::Client::connect(&url, postgres::NoTls).expect("connect to the cluster");
            f(&mut client)
        })
        .join();
        joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// `SELECT count(*)`-style query returning one bigint.
    pub fn count(&self, sql: &str) -> i64 {
        let sql = sql.to_string();
        self.with_db(move |db| db.query_one(&sql, &[]).unwrap().get(0))
    }

    /// Environment that points a receiver or command at this cluster.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AUTHKEY_RECEIVER__STORAGE__BACKEND", "postgres".into()),
            ("AUTHKEY_RECEIVER__STORAGE__POSTGRES_URL", self.url.clone()),
            ("AUTHKEY_RECEIVER__STORAGE__POSTGRES_TIMEOUT", "2s".into()),
            // Only the tests' own archive runs may take the archive lease.
            ("AUTHKEY_RECEIVER__RETENTION__INTERVAL", "0s".into()),
            // Readiness here is about PostgreSQL, not the shared disk.
            ("AUTHKEY_RECEIVER__STORAGE__MIN_FREE_MB", "0".into()),
        ]
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new(scratch_script())
            .arg("kill")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `env` as the `&[(&str, &str)]` the helpers take.
pub fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A receiver process (`serve`) on the cluster, with a data dir of its own;
/// killed on drop.
pub struct Node {
    // Dropped first: the process goes before its data dir.
    _child: Running,
    pub addr: SocketAddr,
    pub log: CapturedLog,
    _data_dir: TempDir,
}

impl Node {
    pub fn start(pg: &PgCluster) -> Node {
        let data_dir = tempfile::tempdir().unwrap();
        let env = pg.env();
        let (child, addr, log) = spawn_binary_logged(data_dir.path(), &env_refs(&env));
        Node {
            _child: child,
            addr,
            log,
            _data_dir: data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The end of the receiver's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}
