//! Typed settings: the embedded default (`default.toml`), then the config file,
//! then `AUTHKEY_RECEIVER__SECTION__KEY` environment variables, then
//! [`Settings::validate`], which fails fast with a message naming the key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::access::proxies::ForwardedHeader;
use crate::access::{secrets, signatures};
use crate::domain::ClientId;

/// The embedded default configuration, printed by `config print-default`.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Prefix of the environment variables that override single keys.
pub const ENV_PREFIX: &str = "AUTHKEY_RECEIVER__";

/// The HTTP parser's own ceiling on a request head; `server.max_header_bytes`
/// may only lower it.
pub const MAX_HEADER_BYTES: usize = 131_072;

/// A configuration problem; the message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{origin} is not valid TOML: {message}")]
    Syntax {
        /// File name or environment variable.
        origin: String,
        /// The parser's one-line complaint.
        message: String,
    },
    /// A key is unknown, of the wrong type or out of range.
    #[error("invalid config key `{key}`: {message}")]
    Key {
        /// Dotted path of the key, e.g. `clients[1].class`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Everything the service can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP listener and request limits.
    pub server: ServerSettings,
    /// Where and how data is stored.
    pub storage: StorageSettings,
    /// How provider payloads are read.
    pub ingest: IngestSettings,
    /// The in-process pruning task.
    pub retention: RetentionSettings,
    /// Archive files for cold storage.
    pub archive: ArchiveSettings,
    /// Addresses allowed to post callbacks.
    pub allowlist: AllowlistSettings,
    /// Log output.
    pub log: LogSettings,
    /// How data is shown to the people who read it.
    pub privacy: PrivacySettings,
    /// The Authkey accounts whose callbacks this service receives.
    pub clients: Vec<ClientSettings>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address, e.g. `127.0.0.1:8080` or `[::]:8080`.
    pub listen: SocketAddr,
    /// Largest accepted body, in bytes.
    pub max_body_bytes: usize,
    /// Proxies allowed to set `X-Forwarded-For`.
    pub trusted_proxies: Vec<IpNet>,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Grace period for in-flight requests on shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Header a trusted proxy names the client in.
    pub forwarded_header: ForwardedHeader,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Deadline for the request head (and TLS handshake) after the connection opens.
    #[serde(with = "humantime_serde")]
    pub head_timeout: Duration,
    /// Deadline for the request body, from the end of its head.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// How long an idle connection is kept open; zero turns keep-alive off.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Most connections open at once, over all workers.
    pub max_connections: usize,
    /// Deepest JSON nesting accepted in a callback body.
    pub max_json_depth: usize,
    /// PEM certificate chain; with `tls_key`, the listener speaks HTTPS.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert` (must be mode 0600 or stricter).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Networks whose direct connections may read `/metrics`.
    pub metrics_allow: Vec<IpNet>,
}

/// How the SQLite writer syncs commits to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync on every commit: durable across power loss.
    Full,
    /// fsync at checkpoints only: durable across process crashes.
    Normal,
}

/// Which database engine holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// `receiver.db` in `data_dir`: one machine.
    Sqlite,
    /// A PostgreSQL database at `postgres_url`: several receivers share it.
    Postgres,
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// `sqlite` (default) or `postgres`.
    pub backend: StorageBackend,
    /// libpq-style URL or key=value string of the PostgreSQL database.
    #[serde(default)]
    pub postgres_url: Option<String>,
    /// File holding `postgres_url` (mode 0600 or stricter).
    #[serde(default)]
    pub postgres_url_file: Option<PathBuf>,
    /// Connections each receiver keeps to PostgreSQL (readers, archive and
    /// the writer's one).
    pub postgres_pool_size: usize,
    /// How long a PostgreSQL connection attempt or query may take before
    /// the request gets 503.
    #[serde(with = "humantime_serde")]
    pub postgres_timeout: Duration,
    /// Directory holding `receiver.db` (SQLite) and `pseudonym.key`.
    pub data_dir: PathBuf,
    /// SQLite `synchronous` pragma.
    pub synchronous: Synchronous,
    /// Largest number of events in one commit.
    pub batch_max_events: usize,
    /// Bounded queue between handlers and the writer.
    pub queue_capacity: usize,
    /// Free space below which `/readyz` fails, in MiB.
    pub min_free_mb: u64,
}

impl StorageSettings {
    /// Path of the SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("receiver.db")
    }
}

/// `[ingest]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    /// Zone of provider times that carry none.
    pub provider_timezone: chrono_tz::Tz,
    /// Country code for bare 10-digit national numbers.
    pub default_country_code: String,
}

/// `[retention]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Period of the pruning task; zero turns it off.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

/// `[archive]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSettings {
    /// Root directory of archive files.
    pub dir: PathBuf,
    /// Months an archive file is kept.
    pub keep_months: u32,
    /// Rows deleted per transaction by the archive job, so the write lock is
    /// held only briefly and callbacks keep flowing.
    pub batch_rows: usize,
}

/// `[allowlist]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistSettings {
    /// Networks allowed for clients without their own list.
    pub default: Vec<IpNet>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive.
    pub level: String,
}

/// `[privacy]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySettings {
    /// Trailing digits of a phone number left visible (0 to 4).
    pub mask_visible_digits: usize,
    /// Character that replaces hidden digits.
    pub mask_char: char,
}

impl PrivacySettings {
    /// The masker these settings describe.
    pub fn masker(&self) -> crate::mask::Masker {
        crate::mask::Masker::new(self.mask_visible_digits, self.mask_char)
    }
}

/// Retention class of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionClass {
    /// Kept 2 calendar months.
    Standard,
    /// Kept 12 calendar months.
    Banking,
}

/// One `[[clients]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// Name used in the callback URL path.
    pub id: ClientId,
    /// Retention class.
    pub class: RetentionClass,
    /// Months kept, overriding the class.
    #[serde(default)]
    pub retention_months: Option<u32>,
    /// Networks allowed for this client, replacing `allowlist.default`.
    #[serde(default)]
    pub allow: Option<Vec<IpNet>>,
    /// Secret the callback URL must carry as `?token=`.
    #[serde(default)]
    pub url_token: Option<String>,
    /// How the client encodes callback bodies; `None` means as is.
    #[serde(default)]
    pub encoding: Option<BodyEncoding>,
    /// Token answering Meta's `hub.challenge` subscription handshake.
    #[serde(default)]
    pub meta_verify_token: Option<String>,
    /// File holding `url_token`.
    #[serde(default)]
    pub url_token_file: Option<PathBuf>,
    /// Standard Webhooks secrets (`whsec_...`); any of them may sign, so a
    /// new one can be added before the old one is removed.
    #[serde(default, deserialize_with = "one_or_many")]
    pub signing_secret: Option<Vec<String>>,
    /// File holding `signing_secret`, one secret per line.
    #[serde(default)]
    pub signing_secret_file: Option<PathBuf>,
    /// Meta app secret: callbacks must carry a valid `X-Hub-Signature-256`.
    #[serde(default)]
    pub meta_app_secret: Option<String>,
    /// File holding `meta_app_secret`.
    #[serde(default)]
    pub meta_app_secret_file: Option<PathBuf>,
    /// Google RBM client token: callbacks must carry a valid `X-Goog-Signature`;
    /// it also answers RBM's `clientToken` handshake.
    #[serde(default)]
    pub rbm_client_token: Option<String>,
    /// File holding `rbm_client_token`.
    #[serde(default)]
    pub rbm_client_token_file: Option<PathBuf>,
    /// Never delete this client's archive files (`archive.keep_months` is ignored).
    #[serde(default)]
    pub legal_hold: bool,
}

/// Encoding of a client's callback bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    /// Hex digits of either case, two per byte.
    Base16,
}

/// Reads a string or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}

impl ClientSettings {
    /// Months this client's data is kept live.
    pub fn retention_months(&self) -> u32 {
        self.retention_months.unwrap_or(match self.class {
            RetentionClass::Standard => 2,
            RetentionClass::Banking => 12,
        })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_value(default_value()).expect("the embedded default config is valid")
    }
}

fn default_value() -> toml::Table {
    toml::from_str(DEFAULT_TOML).expect("the embedded default config is TOML")
}

impl Settings {
    /// Loads the default, then `file` if given, then overrides from `env`
    /// (pairs of name and value), and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut table = default_value();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let overlay: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
                origin: path.display().to_string(),
                message: one_line(e.message()),
            })?;
            merge(&mut table, overlay);
        }
        for (name, raw) in env {
            if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
                apply_env(&mut table, &name, rest, &raw)?;
            }
        }
        Settings::from_value(table)
    }

    fn from_value(table: toml::Table) -> Result<Settings, ConfigError> {
        let mut settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                ConfigError::key(key, one_line(&e.into_inner().to_string()))
            })?;
        settings.read_secret_files()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Fills each secret from its `*_file` key, and checks that the TLS key
    /// file is private. A key and its `_file` twin are mutually exclusive.
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        fn fill<T>(
            key: String,
            value: &mut Option<T>,
            file: Option<&Path>,
            read: impl Fn(&Path) -> Result<T, secrets::SecretFileError>,
        ) -> Result<(), ConfigError> {
            let Some(path) = file else {
                return Ok(());
            };
            if value.is_some() {
                return Err(ConfigError::key(
                    format!("{key}_file"),
                    format!("set either `{key}` or `{key}_file`, not both"),
                ));
            }
            *value = Some(
                read(path).map_err(|e| ConfigError::key(format!("{key}_file"), e.to_string()))?,
            );
            Ok(())
        }
        fill(
            "storage.postgres_url".into(),
            &mut self.storage.postgres_url,
            self.storage.postgres_url_file.as_deref(),
            secrets::read_secret,
        )?;
        if let Some(path) = &self.server.tls_key {
            secrets::ensure_private(path)
                .map_err(|e| ConfigError::key("server.tls_key", e.to_string()))?;
        }
        for (i, c) in self.clients.iter_mut().enumerate() {
            let key = |name: &str| format!("clients[{i}].{name}");
            fill(
                key("url_token"),
                &mut c.url_token,
                c.url_token_file.as_deref(),
                secrets::read_secret,
            )?;
            fill(
                key("signing_secret"),
                &mut c.signing_secret,
                c.signing_secret_file.as_deref(),
                secrets::read_secret_lines,
            )?;
            fill(
                key("meta_app_secret"),
                &mut c.meta_app_secret,
                c.meta_app_secret_file.as_deref(),
                secrets::read_secret,
            )?;
            fill(
                key("rbm_client_token"),
                &mut c.rbm_client_token,
                c.rbm_client_token_file.as_deref(),
                secrets::read_secret,
            )?;
        }
        Ok(())
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.max_body_bytes == 0 {
            return Err(ConfigError::key(
                "server.max_body_bytes",
                "must be at least 1",
            ));
        }
        self.validate_limits()?;
        if self.storage.batch_max_events == 0 {
            return Err(ConfigError::key(
                "storage.batch_max_events",
                "must be at least 1",
            ));
        }
        if self.storage.queue_capacity == 0 {
            return Err(ConfigError::key(
                "storage.queue_capacity",
                "must be at least 1",
            ));
        }
        if self.storage.backend == StorageBackend::Postgres {
            if self.storage.postgres_url.is_none() {
                return Err(ConfigError::key(
                    "storage.postgres_url",
                    "backend = \"postgres\" needs `postgres_url` or `postgres_url_file`",
                ));
            }
            if self.storage.postgres_pool_size < 2 {
                return Err(ConfigError::key(
                    "storage.postgres_pool_size",
                    "must be at least 2 (the writer holds one connection)",
                ));
            }
            if self.storage.postgres_timeout.is_zero() {
                return Err(ConfigError::key(
                    "storage.postgres_timeout",
                    "must be more than 0s",
                ));
            }
        }
        let cc = &self.ingest.default_country_code;
        if cc.is_empty() || cc.len() > 3 || !cc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::key(
                "ingest.default_country_code",
                format!("`{cc}` is not a country calling code (1 to 3 digits)"),
            ));
        }
        if self.archive.keep_months == 0 {
            return Err(ConfigError::key(
                "archive.keep_months",
                "must be at least 1",
            ));
        }
        if self.archive.batch_rows == 0 {
            return Err(ConfigError::key("archive.batch_rows", "must be at least 1"));
        }
        if self.privacy.mask_visible_digits > crate::mask::MAX_VISIBLE_DIGITS {
            return Err(ConfigError::key(
                "privacy.mask_visible_digits",
                format!("must be at most {}", crate::mask::MAX_VISIBLE_DIGITS),
            ));
        }
        let mc = self.privacy.mask_char;
        if mc.is_alphanumeric() || mc.is_whitespace() || mc.is_control() || mc == '+' {
            return Err(ConfigError::key(
                "privacy.mask_char",
                "must be a visible symbol that is not a letter, digit or `+`",
            ));
        }
        if self.clients.is_empty() {
            return Err(ConfigError::key("clients", "at least one client is needed"));
        }
        let mut seen = HashSet::new();
        for (i, client) in self.clients.iter().enumerate() {
            if !seen.insert(client.id.as_str()) {
                return Err(ConfigError::key(
                    format!("clients[{i}].id"),
                    format!("duplicate client id `{}`", client.id),
                ));
            }
            if client.retention_months == Some(0) {
                return Err(ConfigError::key(
                    format!("clients[{i}].retention_months"),
                    "must be at least 1",
                ));
            }
            for (name, value) in [
                ("url_token", &client.url_token),
                ("meta_verify_token", &client.meta_verify_token),
                ("meta_app_secret", &client.meta_app_secret),
                ("rbm_client_token", &client.rbm_client_token),
            ] {
                if value.as_deref().is_some_and(str::is_empty) {
                    return Err(ConfigError::key(
                        format!("clients[{i}].{name}"),
                        "must not be empty",
                    ));
                }
            }
            if let Some(list) = &client.signing_secret {
                if list.is_empty() {
                    return Err(ConfigError::key(
                        format!("clients[{i}].signing_secret"),
                        "must hold at least one secret",
                    ));
                }
                for (j, secret) in list.iter().enumerate() {
                    signatures::decode_signing_secret(secret).map_err(|m| {
                        ConfigError::key(format!("clients[{i}].signing_secret[{j}]"), m)
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Request limits and TLS: every limit must be a real one.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if !(1024..=MAX_HEADER_BYTES).contains(&s.max_header_bytes) {
            return Err(ConfigError::key(
                "server.max_header_bytes",
                format!("must be between 1024 and {MAX_HEADER_BYTES}"),
            ));
        }
        for (key, value) in [
            ("server.head_timeout", s.head_timeout),
            ("server.body_timeout", s.body_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::key(key, "must be more than 0s"));
            }
        }
        if s.max_connections == 0 {
            return Err(ConfigError::key(
                "server.max_connections",
                "must be at least 1",
            ));
        }
        if !(1..=crate::ingest::MAX_JSON_DEPTH).contains(&s.max_json_depth) {
            return Err(ConfigError::key(
                "server.max_json_depth",
                format!("must be between 1 and {}", crate::ingest::MAX_JSON_DEPTH),
            ));
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            return Err(ConfigError::key(
                "server.tls_cert",
                "tls_cert and tls_key must be set together",
            ));
        }
        Ok(())
    }

    /// The client with this id, if configured.
    pub fn client(&self, id: &str) -> Option<&ClientSettings> {
        self.clients.iter().find(|c| c.id.as_str() == id)
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lays `overlay` over `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Applies `AUTHKEY_RECEIVER__A__B=value`: segments are lower-cased keys, a
/// numeric segment indexes an array (`CLIENTS__0__URL_TOKEN`). The value is
/// read as a TOML value when it is one (`8080`, `true`, `["10.0.0.0/8"]`),
/// else as a string.
fn apply_env(
    table: &mut toml::Table,
    name: &str,
    rest: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    if segments.iter().any(String::is_empty) {
        return Err(ConfigError::key(name, "malformed variable name"));
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut slot = toml::Value::Table(std::mem::take(table));
    let result = set_path(&mut slot, &segments, value, name);
    if let toml::Value::Table(t) = slot {
        *table = t;
    }
    result
}

fn set_path(
    node: &mut toml::Value,
    segments: &[String],
    value: toml::Value,
    name: &str,
) -> Result<(), ConfigError> {
    let Some((head, tail)) = segments.split_first() else {
        *node = value;
        return Ok(());
    };
    let child = match node {
        toml::Value::Table(t) => t
            .entry(head.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new())),
        toml::Value::Array(items) => {
            let index: usize = head
                .parse()
                .map_err(|_| ConfigError::key(name, format!("`{head}` is not an array index")))?;
            if index == items.len() {
                items.push(toml::Value::Table(toml::Table::new()));
            }
            items.get_mut(index).ok_or_else(|| {
                ConfigError::key(name, format!("index {index} is past the end of the array"))
            })?
        }
        _ => {
            return Err(ConfigError::key(
                name,
                format!("`{head}` is below a key that is not a table"),
            ))
        }
    };
    set_path(child, tail, value, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load(Some(&path), Vec::new())
    }

    #[test]
    fn embedded_default_serves_loopback_with_one_standard_client() {
        let s = Settings::default();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.storage.data_dir, PathBuf::from("data"));
        assert_eq!(s.clients.len(), 1);
        assert_eq!(s.clients[0].id.as_str(), "default");
        assert_eq!(s.clients[0].retention_months(), 2);
        assert_eq!(s.storage.synchronous, Synchronous::Full);
    }

    #[test]
    fn postgres_needs_a_url_read_inline_or_from_a_private_file() {
        let key_of = |r: Result<Settings, ConfigError>| match r {
            Err(ConfigError::Key { key, .. }) => key,
            other => panic!("expected a key error, got {other:?}"),
        };
        assert_eq!(Settings::default().storage.backend, StorageBackend::Sqlite);
        let missing = load_str("[storage]\nbackend = \"postgres\"\n");
        assert_eq!(key_of(missing), "storage.postgres_url");
        let inline = load_str(
            "[storage]\nbackend = \"postgres\"\npostgres_url = \"postgres://u:p@db/authkey\"\n",
        )
        .unwrap();
        assert_eq!(
            inline.storage.postgres_url.as_deref(),
            Some("postgres://u:p@db/authkey")
        );

        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("postgres_url");
        std::fs::write(&file, "postgres://u:p@db/authkey\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let from_file = format!(
            "[storage]\nbackend = \"postgres\"\npostgres_url_file = \"{}\"\n",
            file.display()
        );
        assert_eq!(key_of(load_str(&from_file)), "storage.postgres_url_file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = load_str(&from_file).unwrap();
        assert_eq!(
            s.storage.postgres_url.as_deref(),
            Some("postgres://u:p@db/authkey")
        );
        let both = format!("{from_file}postgres_url = \"postgres://x@y/z\"\n");
        assert_eq!(key_of(load_str(&both)), "storage.postgres_url_file");
    }

    #[test]
    fn file_keys_override_defaults_and_clients_replace_the_list() {
        let s = load_str(
            "[server]\nmax_body_bytes = 10\n[[clients]]\nid = \"bank\"\nclass = \"banking\"\n",
        )
        .unwrap();
        assert_eq!(s.server.max_body_bytes, 10);
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.clients.len(), 1);
        assert_eq!(s.clients[0].retention_months(), 12);
    }

    #[test]
    fn environment_overrides_scalars_arrays_and_indexed_clients() {
        let env = vec![
            (
                "AUTHKEY_RECEIVER__SERVER__LISTEN".to_string(),
                "0.0.0.0:9000".to_string(),
            ),
            (
                "AUTHKEY_RECEIVER__ALLOWLIST__DEFAULT".to_string(),
                "[\"10.0.0.0/8\"]".to_string(),
            ),
            (
                "AUTHKEY_RECEIVER__CLIENTS__0__URL_TOKEN".to_string(),
                "s3cret".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let s = Settings::load(None, env).unwrap();
        assert_eq!(s.server.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(s.allowlist.default[0].to_string(), "10.0.0.0/8");
        assert_eq!(s.clients[0].url_token.as_deref(), Some("s3cret"));
    }

    #[test]
    fn errors_name_the_key_at_fault() {
        let cases = [
            ("[allowlist]\ndefault = [\"10.0.0.300/8\"]\n", "allowlist.default[0]"),
            ("[[clients]]\nid = \"a\"\nclass = \"gold\"\n", "clients[0].class"),
            ("[server]\nlisen = \"x\"\n", "server"),
            (
                "[[clients]]\nid = \"a\"\nclass = \"standard\"\n[[clients]]\nid = \"a\"\nclass = \"banking\"\n",
                "clients[1].id",
            ),
            ("[[clients]]\nid = \"a/b\"\nclass = \"standard\"\n", "clients[0].id"),
            (
                "[[clients]]\nid = \"a\"\nclass = \"standard\"\nencoding = \"base64\"\n",
                "clients[0].encoding",
            ),
            (
                "[[clients]]\nid = \"a\"\nclass = \"standard\"\nmeta_verify_token = \"\"\n",
                "clients[0].meta_verify_token",
            ),
        ];
        for (text, key) in cases {
            let err = load_str(text).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{text:?} gave {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let err = load_str("[server]\nlisen = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn provider_keys_load_from_file_and_environment() {
        let s = load_str(
            "[[clients]]\nid = \"wa\"\nclass = \"standard\"\nencoding = \"base16\"\nmeta_verify_token = \"m\"\nrbm_client_token = \"r\"\n",
        )
        .unwrap();
        assert_eq!(s.clients[0].encoding, Some(BodyEncoding::Base16));
        assert_eq!(s.clients[0].meta_verify_token.as_deref(), Some("m"));
        assert_eq!(s.clients[0].rbm_client_token.as_deref(), Some("r"));
        let env = vec![(
            "AUTHKEY_RECEIVER__CLIENTS__0__ENCODING".to_string(),
            "base16".to_string(),
        )];
        let s = Settings::load(None, env).unwrap();
        assert_eq!(s.clients[0].encoding, Some(BodyEncoding::Base16));
        assert_eq!(Settings::default().clients[0].encoding, None);
    }

    #[test]
    fn limits_must_be_real_and_tls_needs_both_files() {
        let cases = [
            ("[server]\nmax_header_bytes = 10\n", "server.max_header_bytes"),
            ("[server]\nhead_timeout = \"0s\"\n", "server.head_timeout"),
            ("[server]\nbody_timeout = \"0s\"\n", "server.body_timeout"),
            ("[server]\nmax_connections = 0\n", "server.max_connections"),
            ("[server]\nmax_json_depth = 65\n", "server.max_json_depth"),
            ("[server]\nforwarded_header = \"x-real-ip\"\n", "server.forwarded_header"),
            ("[server]\ntls_cert = \"c.pem\"\n", "server.tls_cert"),
            (
                "[[clients]]\nid = \"a\"\nclass = \"standard\"\nsigning_secret = \"whsec_c2hvcnQ=\"\n",
                "clients[0].signing_secret[0]",
            ),
            (
                "[[clients]]\nid = \"a\"\nclass = \"standard\"\nmeta_app_secret = \"\"\n",
                "clients[0].meta_app_secret",
            ),
        ];
        for (text, key) in cases {
            let err = load_str(text).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{text:?} gave {err}");
        }
        let s = load_str("[server]\nkeep_alive = \"0s\"\n[[clients]]\nid = \"a\"\nclass = \"standard\"\nsigning_secret = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n").unwrap();
        assert!(s.server.keep_alive.is_zero());
        assert_eq!(s.clients[0].signing_secret.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn privacy_settings_refuse_revealing_masks() {
        let s = Settings::default();
        assert_eq!(s.privacy.masker().phone("+919876543210"), "+91******3210");
        for (text, key) in [
            (
                "[privacy]\nmask_visible_digits = 5\n",
                "privacy.mask_visible_digits",
            ),
            ("[privacy]\nmask_char = \"7\"\n", "privacy.mask_char"),
            ("[privacy]\nmask_char = \" \"\n", "privacy.mask_char"),
            ("[privacy]\nmask_char = \"**\"\n", "privacy.mask_char"),
        ] {
            let err = load_str(text).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{text:?} gave {err}");
        }
        let s = load_str("[privacy]\nmask_visible_digits = 2\nmask_char = \"#\"\n").unwrap();
        assert_eq!(s.privacy.masker().phone("+919876543210"), "+91########10");
    }
}
