//! One helper per endpoint, plus `spawn_app()`: the real `Application` on a
//! random loopback port with a fresh database (a SQLite file in a temp dir,
//! or a PostgreSQL database: see backend.rs) for its data dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use authkey_receiver::config::Settings;
use authkey_receiver::startup::Application;
use tempfile::TempDir;

pub use crate::backend::{backend_env, backend_toml, on_postgres, skip_on_postgres};
pub use crate::test_db::{TestDb, Value};

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub data_dir: PathBuf,
    _tmp: Option<TempDir>,
}

/// Settings for tests: the embedded default on port 0 in a temp dir, on
/// this run's backend.
pub fn test_settings(data_dir: &Path) -> Settings {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.server.workers = 2;
    s.storage.data_dir = data_dir.to_path_buf();
    s.storage.min_free_mb = 0;
    s.archive.dir = data_dir.join("archive");
    crate::backend::use_backend(&mut s);
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let tmp = tempfile::tempdir().unwrap();
    let mut app = spawn_app_in(tmp.path(), configure).await;
    app._tmp = Some(tmp);
    app
}

/// Starts the app with its data in `dir` (which the caller owns).
pub async fn spawn_app_in(dir: &Path, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(dir);
    configure(&mut settings);
    settings.validate().expect("test settings are valid");
    let app = Application::build(settings).expect("the app builds");
    let addr = app.addr();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        http: reqwest::Client::new(),
        data_dir: dir.to_path_buf(),
        _tmp: None,
    }
}

/// Reads a sample body from tests/fixtures/payloads.
pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/payloads")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .trim_end()
        .to_string()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_callback(
        &self,
        client: &str,
        channel: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/callbacks/{client}/{channel}")))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, channel: &str, body: &str) -> reqwest::Response {
        self.post_callback("default", channel, "application/json", body.to_string())
            .await
    }

    pub async fn post_form(&self, channel: &str, body: &str) -> reqwest::Response {
        self.post_callback(
            "default",
            channel,
            "application/x-www-form-urlencoded",
            body.to_string(),
        )
        .await
    }

    pub async fn get_callback(
        &self,
        client: &str,
        channel: &str,
        query: &str,
    ) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/v1/callbacks/{client}/{channel}?{query}")))
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// The app's database, for assertions.
    pub fn db(&self) -> TestDb {
        TestDb::open(&self.data_dir)
    }

    pub fn count(&self, table: &str) -> i64 {
        self.db().count(table)
    }
}

/// Asserts status and returns the JSON body.
pub async fn json_with_status(resp: reqwest::Response, status: u16) -> serde_json::Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// The real binary, started with `serve` on a random port with its data in
/// `data_dir`; returns the child and its address, read off its log.
pub fn spawn_binary(data_dir: &Path, env: &[(&str, &str)]) -> (Running, SocketAddr) {
    let (child, addr, _) = spawn_binary_logged(data_dir, env);
    (child, addr)
}

/// Everything a spawned binary has written to standard error so far.
pub type CapturedLog = std::sync::Arc<std::sync::Mutex<String>>;

/// [`spawn_binary`], also keeping the child's log (standard error).
pub fn spawn_binary_logged(
    data_dir: &Path,
    env: &[(&str, &str)],
) -> (Running, SocketAddr, CapturedLog) {
    use std::io::{BufRead, BufReader};
    let log = CapturedLog::default();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
        .arg("serve")
        .env("AUTHKEY_RECEIVER__SERVER__LISTEN", "127.0.0.1:0")
        .env("AUTHKEY_RECEIVER__STORAGE__DATA_DIR", data_dir)
        .env("AUTHKEY_RECEIVER__ARCHIVE__DIR", data_dir.join("archive"))
        .envs(backend_env(data_dir))
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .unwrap();
        log.lock().unwrap().push_str(&format!("{line}\n"));
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest
                .split(|c: char| c.is_whitespace() || c == '"')
                .next()
                .unwrap();
            break addr.parse().unwrap();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    let keep = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            keep.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    (Running(child), addr, log)
}

/// A spawned receiver, killed (if it still runs) when dropped: a test that
/// fails half-way never leaves it running, holding the test run's output
/// open.
pub struct Running(std::process::Child);

impl std::ops::Deref for Running {
    type Target = std::process::Child;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the binary with `args` on the data in `data_dir`.
pub fn cli(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
        .args(args)
        .env_remove("AUTHKEY_RECEIVER_CONFIG")
        .env("AUTHKEY_RECEIVER__STORAGE__DATA_DIR", data_dir)
        .env("AUTHKEY_RECEIVER__ARCHIVE__DIR", data_dir.join("archive"))
        .envs(backend_env(data_dir))
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// A token made with `token create`, and its TOTP secret (base32) if any.
pub struct ApiToken {
    pub token: String,
    pub totp_secret: Option<String>,
}

/// A code for `secret` now, from pyotp (an implementation independent of
/// ours; installed by .ci/run).
pub fn pyotp_now(secret: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, pyotp; print(pyotp.TOTP(sys.argv[1]).now())",
            secret,
        ])
        .output()
        .expect("python3 runs (see .ci/run)");
    assert!(
        out.status.success(),
        "pyotp failed (pip install pyotp): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl TestApp {
    /// `token create --name NAME --role ROLE` plus `extra` arguments, with
    /// `env` (e.g. more clients) for the command's config.
    pub fn create_token(
        &self,
        name: &str,
        role: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ApiToken {
        let mut args = vec!["token", "create", "--name", name, "--role", role];
        args.extend_from_slice(extra);
        let out = cli(&self.data_dir, &args, env);
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let totp_secret = stdout
            .lines()
            .find(|l| l.starts_with("otpauth://"))
            .map(|uri| {
                let url = url::Url::parse(uri).unwrap();
                url.query_pairs()
                    .find(|(k, _)| k == "secret")
                    .unwrap()
                    .1
                    .into_owned()
            });
        ApiToken {
            token: stdout.trim_end().lines().last().unwrap().to_string(),
            totp_secret,
        }
    }

    /// `GET /v1/exports?{query}` with an optional bearer token and TOTP code.
    pub async fn export(
        &self,
        token: Option<&str>,
        totp: Option<&str>,
        query: &str,
    ) -> reqwest::Response {
        self.admin_get(&format!("/v1/exports?{query}"), token, totp)
            .await
    }

    /// `GET {path}` with an optional bearer token and TOTP code.
    pub async fn admin_get(
        &self,
        path: &str,
        token: Option<&str>,
        totp: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(code) = totp {
            req = req.header("x-totp", code);
        }
        req.send().await.unwrap()
    }

    /// Audit rows as (actor, role, action, outcome, rows, reason), oldest first.
    pub fn audit_rows(&self) -> Vec<AuditRow> {
        self.db()
            .rows(
                "SELECT actor, role, action, outcome, rows, reason, client_id, source_ip \
                 FROM audit_log ORDER BY id",
                &[],
            )
            .into_iter()
            .map(
                |(actor, role, action, outcome, rows, reason, client, source)| AuditRow {
                    actor,
                    role,
                    action,
                    outcome,
                    rows,
                    reason,
                    client,
                    source,
                },
            )
            .collect()
    }

    /// The latest audit row.
    pub fn last_audit(&self) -> AuditRow {
        self.audit_rows().pop().expect("an audit row")
    }
}

/// One audit-log row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub actor: String,
    pub role: Option<String>,
    pub action: String,
    pub outcome: String,
    pub rows: Option<i64>,
    pub reason: Option<String>,
    pub client: Option<String>,
    pub source: Option<String>,
}

/// Whether an outside program (nginx, openssl, schemathesis...) runs. Where it
/// does not, prints why the caller skips; under CI (`CI` set), where
/// `.ci/run` installs every such program, a missing one fails the test.
pub fn tool_available(program: &str, version_arg: &str) -> bool {
    let runs = std::process::Command::new(program)
        .arg(version_arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is not installed, but .ci/run installs it"
        );
        eprintln!("SKIPPED: {program} is not installed (.ci/run installs it)");
    }
    runs
}

/// Durability-test traffic: `workers` tasks post unique SMS callbacks to
/// `addr` until one is not answered 200 or the load is stopped, recording
/// every id answered 200.
pub struct Load {
    acked: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(addr: SocketAddr, workers: usize, prefix: &str) -> Load {
        use std::sync::atomic::Ordering;
        let load = Load {
            acked: Default::default(),
            stop: Default::default(),
            failed: Default::default(),
            tasks: Vec::new(),
        };
        let http = reqwest::Client::new();
        let tasks = (0..workers)
            .map(|worker| {
                let (http, prefix) = (http.clone(), prefix.to_string());
                let (acked, stop, failed) = (
                    std::sync::Arc::clone(&load.acked),
                    std::sync::Arc::clone(&load.stop),
                    std::sync::Arc::clone(&load.failed),
                );
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("{prefix}{worker}-{i}");
                        i += 1;
                        let sent = http
                            .post(format!("http://{addr}/v1/callbacks/default/sms"))
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(format!(
                                "logid={id}&mobile=919876500001&status=DELIVRD&time=2026-05-28+10:00:00"
                            ))
                            .timeout(std::time::Duration::from_secs(10))
                            .send()
                            .await;
                        match sent {
                            Ok(r) if r.status().as_u16() == 200 => {
                                acked.lock().unwrap().insert(id);
                            }
                            _ => {
                                failed.store(true, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        Load { tasks, ..load }
    }

    /// Waits until at least `n` callbacks were acknowledged.
    pub async fn until_acked(&self, n: usize) {
        while self.acked().len() < n {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The ids acknowledged so far.
    pub fn acked(&self) -> std::collections::HashSet<String> {
        self.acked.lock().unwrap().clone()
    }

    /// Whether a sender got anything but a 200 (and so stopped).
    pub fn failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the senders and returns every acknowledged id.
    pub async fn finish(self) -> std::collections::HashSet<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// The provider message ids of every stored event in `db`.
pub fn stored_ids(db: &TestDb) -> std::collections::HashSet<String> {
    db.col("SELECT provider_message_id FROM events", &[])
        .into_iter()
        .collect()
}
