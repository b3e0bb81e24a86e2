//! One helper per endpoint, plus `spawn_app()`: the real `Application` on a
//! random loopback port with a fresh SQLite file in a temp dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use authkey_receiver::config::Settings;
use authkey_receiver::startup::Application;
use rusqlite::Connection;
use tempfile::TempDir;

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub data_dir: PathBuf,
    _tmp: Option<TempDir>,
}

/// Settings for tests: the embedded default on port 0 in a temp dir.
pub fn test_settings(data_dir: &Path) -> Settings {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.server.workers = 2;
    s.storage.data_dir = data_dir.to_path_buf();
    s.storage.min_free_mb = 0;
    s.archive.dir = data_dir.join("archive");
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

    pub fn db(&self) -> Connection {
        Connection::open(self.data_dir.join("receiver.db")).unwrap()
    }

    pub fn count(&self, table: &str) -> i64 {
        self.db()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
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
pub fn spawn_binary(data_dir: &Path, env: &[(&str, &str)]) -> (std::process::Child, SocketAddr) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
        .arg("serve")
        .env("AUTHKEY_RECEIVER__SERVER__LISTEN", "127.0.0.1:0")
        .env("AUTHKEY_RECEIVER__STORAGE__DATA_DIR", data_dir)
        .env("AUTHKEY_RECEIVER__ARCHIVE__DIR", data_dir.join("archive"))
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
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest
                .split(|c: char| c.is_whitespace() || c == '"')
                .next()
                .unwrap();
            break addr.parse().unwrap();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
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
