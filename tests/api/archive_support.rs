//! Shared by the archive tests: a data dir with four clients (standard,
//! banking, a 6-month override, a standard client under legal hold) filled
//! through the real HTTP endpoint, the real binary for `archive` runs, and
//! readers for what ended up in the database and in the archive files.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use authkey_receiver::config::Settings;
use chrono::{DateTime, Months, Utc};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::helpers::{backend_toml, spawn_app_in, TestApp, TestDb};
use crate::test_db::Value as Cell;

pub const CLIENTS: [&str; 4] = ["std", "bank", "custom", "hold"];
pub const TABLES: [&str; 3] = ["events", "messages", "rejected"];

pub struct Fixture {
    pub tmp: TempDir,
    pub config: PathBuf,
    pub app: TestApp,
}

fn config_text(data: &Path, batch_rows: usize) -> String {
    format!(
        r#"[storage]
data_dir = "{data}"
{backend}[archive]
dir = "{data}/archive"
batch_rows = {batch_rows}
[retention]
interval = "0s"
[[clients]]
id = "std"
class = "standard"
[[clients]]
id = "bank"
class = "banking"
[[clients]]
id = "custom"
class = "standard"
retention_months = 6
[[clients]]
id = "hold"
class = "standard"
legal_hold = true
"#,
        data = data.display(),
        backend = backend_toml(data),
    )
}

/// Starts the service on a fresh data dir and posts, for every client,
/// `per_client` SMS events (plus one bad item that is quarantined) and two
/// WhatsApp events.
pub async fn fixture(batch_rows: usize, per_client: usize) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, config_text(&data, batch_rows)).unwrap();
    let loaded = Settings::load(Some(&config), Vec::new()).unwrap();
    let app = spawn_app_in(&data, |s| {
        s.clients = loaded.clients.clone();
        s.retention.interval = Duration::ZERO;
        s.archive.batch_rows = batch_rows;
    })
    .await;
    for client in CLIENTS {
        for chunk in (0..per_client).collect::<Vec<_>>().chunks(500) {
            let mut items: Vec<Value> = chunk
                .iter()
                .map(|i| json!({"logid": format!("{client}-{i}"), "mobile": format!("9198765{i:05}"), "status": "sent", "note": "payload kept"}))
                .collect();
            items.push(json!({"nothing": "useful"}));
            let resp = app
                .post_callback(
                    client,
                    "sms",
                    "application/json",
                    Value::Array(items).to_string(),
                )
                .await;
            assert_eq!(resp.status().as_u16(), 200);
        }
        let body = format!(
            "[{{\"logid\":\"{client}-w\",\"mobile\":\"919876500001\",\"status\":\"read\"}},{{\"logid\":\"{client}-w\",\"mobile\":\"919876500002\",\"status\":\"delivered\"}}]"
        );
        let resp = app
            .post_callback(client, "whatsapp", "application/json", body)
            .await;
        assert_eq!(resp.status().as_u16(), 200);
    }
    Fixture { tmp, config, app }
}

/// `now` moved by whole calendar months, as RFC 3339.
pub fn months_ahead(n: u32) -> String {
    Utc::now()
        .checked_add_months(Months::new(n))
        .unwrap()
        .to_rfc3339()
}

pub fn at_months_ahead(n: u32) -> DateTime<Utc> {
    Utc::now().checked_add_months(Months::new(n)).unwrap()
}

impl Fixture {
    pub fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    pub fn archive_dir(&self) -> PathBuf {
        self.data().join("archive")
    }

    pub fn db(&self) -> TestDb {
        self.app.db()
    }

    /// Runs the real binary with this fixture's config.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("AUTHKEY_RECEIVER_FAILPOINT")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// Runs `archive`, asserting success; returns standard output.
    pub fn archive(&self, args: &[&str]) -> String {
        let mut all = vec!["archive"];
        all.extend_from_slice(args);
        let out = self.run(&all, &[]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "archive {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn count_all(&self, table: &str) -> i64 {
        self.db().count(table)
    }

    /// Every row of `table` for `client`, as the archive writes it.
    pub fn rows(&self, table: &str, client: &str) -> Vec<Value> {
        rows_of(&self.db(), table, client)
    }

    /// All rows of every client and table, keyed by (table, client).
    pub fn snapshot(&self) -> BTreeMap<(String, String), Vec<Value>> {
        let conn = self.db();
        let mut out = BTreeMap::new();
        for table in TABLES {
            for client in CLIENTS {
                out.insert(
                    (table.to_string(), client.to_string()),
                    rows_of(&conn, table, client),
                );
            }
        }
        out
    }
}

pub fn rows_of(db: &TestDb, table: &str, client: &str) -> Vec<Value> {
    let found = db.query_rows(
        &format!("SELECT * FROM {table} WHERE client_id = ?1 ORDER BY id"),
        &[client.into()],
    );
    found
        .rows
        .into_iter()
        .map(|row| {
            let obj = found
                .columns
                .iter()
                .zip(row)
                .map(|(name, cell)| {
                    let v = match cell {
                        Cell::Null => Value::Null,
                        Cell::Int(n) => json!(n),
                        Cell::Text(t) => json!(t),
                        Cell::Blob(b) => {
                            json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>())
                        }
                    };
                    (name.clone(), v)
                })
                .collect();
            Value::Object(obj)
        })
        .collect()
}

/// Every `*.ndjson.gz` under `root`, sorted.
pub fn archive_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if root.is_dir() {
        walk(root, &mut |p| {
            if p.to_string_lossy().ends_with(".ndjson.gz") {
                out.push(p.to_path_buf());
            }
        });
    }
    out.sort();
    out
}

/// Every file and directory under `root`.
pub fn walk(root: &Path, f: &mut dyn FnMut(&Path)) {
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        f(&path);
        if path.is_dir() {
            walk(&path, f);
        }
    }
}

/// The lines of one archive file, parsed.
pub fn lines(path: &Path) -> Vec<Value> {
    let file = std::fs::File::open(path).unwrap();
    std::io::BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

/// Archived rows of one client and table, from every file, by id.
pub fn archived(root: &Path, table: &str, client: &str) -> Vec<Value> {
    let mut rows: Vec<Value> = archive_files(&root.join(client))
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{table}-"))
        })
        .flat_map(|p| lines(p))
        .collect();
    rows.sort_by_key(|r| r["id"].as_i64().unwrap());
    rows
}

/// Runs `sha256sum -c SHA256SUMS` in every directory that holds archive
/// files; panics naming the directory that fails.
pub fn sha256sum_check_all(root: &Path) {
    let mut dirs: Vec<PathBuf> = archive_files(root)
        .iter()
        .map(|p| p.parent().unwrap().to_path_buf())
        .collect();
    dirs.dedup();
    for dir in dirs {
        let out = Command::new("sha256sum")
            .args(["-c", "--strict", "SHA256SUMS"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sha256sum -c failed in {}: {}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Files left over by a crashed run.
pub fn temp_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if root.is_dir() {
        walk(root, &mut |p| {
            if p.to_string_lossy().ends_with(".tmp") {
                out.push(p.to_path_buf());
            }
        });
    }
    out
}

/// Asserts that every row of `before` for the given clients is in exactly
/// one archive file line (byte-for-byte the same columns) and no longer in
/// the database; rows of other clients are untouched.
pub fn assert_moved_exactly_once(
    fx: &Fixture,
    before: &BTreeMap<(String, String), Vec<Value>>,
    moved: &[&str],
) {
    for ((table, client), rows) in before {
        let in_archive = archived(&fx.archive_dir(), table, client);
        let in_db = fx.rows(table, client);
        if moved.contains(&client.as_str()) {
            let expected = rows;
            assert_eq!(
                in_archive.len(),
                expected.len(),
                "{table} of {client}: archive holds {} rows, expected {}",
                in_archive.len(),
                expected.len()
            );
            assert_eq!(&in_archive, expected, "{table} of {client}");
            assert!(
                in_db.is_empty(),
                "{table} of {client} still in the database"
            );
        } else {
            assert!(
                in_archive.is_empty(),
                "{table} of {client} archived too early"
            );
            assert_eq!(&in_db, rows, "{table} of {client} changed");
        }
    }
}
