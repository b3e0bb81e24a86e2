//! Which storage backend the suite runs on. By default every test keeps a
//! SQLite file in its data dir. With `AUTHKEY_TEST_POSTGRES_URL` set to a
//! superuser URL of a throwaway cluster (`scripts/test-postgres` starts one),
//! every data dir gets a fresh PostgreSQL database instead, the same one each
//! time that dir is used: by in-process settings, by the binary through its
//! environment, and by config files. So two processes, or a restart on the
//! same dir, share their data as they share a SQLite file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use authkey_receiver::config::{Settings, StorageBackend};

/// Superuser URL of a maintenance database; unset or empty: SQLite.
pub const POSTGRES_URL_VAR: &str = "AUTHKEY_TEST_POSTGRES_URL";

fn admin_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.is_empty())
}

/// Whether this run stores everything in PostgreSQL.
pub fn on_postgres() -> bool {
    admin_url().is_some()
}

/// For a test that only makes sense on SQLite: true (and says why) when
/// this run is on PostgreSQL, so the caller returns.
pub fn skip_on_postgres(why: &str) -> bool {
    let skip = on_postgres();
    if skip {
        eprintln!("SKIPPED on PostgreSQL: {why}");
    }
    skip
}

/// Runs `f` on a plain thread and hands back its result or its panic. The
/// sync `postgres` client drives its own runtime and panics when called (or
/// dropped) on a thread that runs a tokio runtime, as every test does.
pub fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// URL of the PostgreSQL database that holds the data of `data_dir`,
/// created on first use; `None` on SQLite.
pub fn postgres_url(data_dir: &Path) -> Option<String> {
    let admin = admin_url()?;
    static DATABASES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let mut databases = DATABASES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let url = databases
        .entry(data_dir.to_path_buf())
        .or_insert_with(|| create_database(&admin));
    Some(url.clone())
}

/// A new empty database `t_<16 hex>` on the cluster of `admin`; its URL.
fn create_database(admin: &str) -> String {
    let name = format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    off_runtime(|| {
        let mut client = postgres::Client::connect(admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}={admin}: {e}"));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    });
    let mut url = url::Url::parse(admin)
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is not a URL ({e}): {admin}"));
    url.set_path(&name);
    url.to_string()
}

/// Points `settings` (whose `storage.data_dir` is set) at this run's backend.
pub fn use_backend(settings: &mut Settings) {
    if let Some(url) = postgres_url(&settings.storage.data_dir) {
        settings.storage.backend = StorageBackend::Postgres;
        settings.storage.postgres_url = Some(url);
    }
}

/// Environment that points the binary with its data in `data_dir` at this
/// run's backend; empty on SQLite.
pub fn backend_env(data_dir: &Path) -> Vec<(&'static str, String)> {
    match postgres_url(data_dir) {
        Some(url) => vec![
            ("AUTHKEY_RECEIVER__STORAGE__BACKEND", "postgres".to_string()),
            ("AUTHKEY_RECEIVER__STORAGE__POSTGRES_URL", url),
        ],
        None => Vec::new(),
    }
}

/// `[storage]` lines of a config file for the data in `data_dir`; empty on
/// SQLite.
pub fn backend_toml(data_dir: &Path) -> String {
    match postgres_url(data_dir) {
        Some(url) => format!(
            "backend = \"postgres\"\npostgres_url = {}\n",
            toml::Value::String(url)
        ),
        None => String::new(),
    }
}
