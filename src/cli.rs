//! Command line (clap derive); the doc comments are the help text.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::access::tokens::Role;
use crate::export::Format;

use crate::domain::ClientId;

/// Durable receiver for Authkey delivery reports and inbound messages.
#[derive(Debug, Parser)]
#[command(name = "authkey-receiver", version)]
pub struct Cli {
    /// Configuration file (TOML); the embedded default is used without one.
    #[arg(
        long,
        global = true,
        env = "AUTHKEY_RECEIVER_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (and the in-process pruning task).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Archive expired rows to gzip NDJSON files and delete them; delete
    /// archive files older than archive.keep_months. For cron.
    Archive(ArchiveArgs),
    /// Re-check archive files against SHA256SUMS and archive_files; exit 1
    /// naming each bad or missing file.
    VerifyArchive {
        /// Directory to check (default: archive.dir).
        dir: Option<PathBuf>,
    },
    /// Inspect configuration.
    Config {
        /// Which check.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage the API tokens of /v1/exports and /v1/messages.
    Token {
        /// What to do with tokens.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Export stored events, masked, to a file or standard output (audited as
    /// the local user).
    Export(ExportArgs),
    /// Print the audit log, oldest first, tab-separated.
    Audit {
        /// Only rows at or after this time (RFC 3339, or a date).
        #[arg(long, value_name = "RFC3339")]
        since: Option<String>,
    },
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token; it is printed once, alone on the last line.
    Create {
        /// Unique name: the actor in the audit log.
        #[arg(long)]
        name: String,
        /// What the token may do.
        #[arg(long, value_enum)]
        role: Role,
        /// Limit the token to this client (repeat for several); all without.
        #[arg(long = "client", value_name = "ID")]
        clients: Vec<String>,
        /// Add a TOTP second factor (printed as an otpauth:// URI); needed
        /// for unmasked data.
        #[arg(long)]
        totp: bool,
    },
    /// List tokens (names, roles, scopes; never the tokens).
    List,
    /// Revoke a token by name.
    Revoke {
        /// Name given at creation.
        name: String,
    },
}

/// `export` options: the filters of `GET /v1/exports`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this client (repeat for several); all without.
    #[arg(long = "client", value_name = "ID")]
    pub clients: Vec<String>,
    /// Received at or after (RFC 3339, or a date meaning midnight UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// Received before (RFC 3339, or a date).
    #[arg(long)]
    pub to: Option<String>,
    /// Only this channel.
    #[arg(long)]
    pub channel: Option<String>,
    /// Only `status` or `inbound` events.
    #[arg(long)]
    pub direction: Option<String>,
    /// Only this normalized status.
    #[arg(long)]
    pub status: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// Write here (created with mode 0600) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// After the database rows, the matching rows of the archive files.
    #[arg(long)]
    pub include_archive: bool,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Load and validate the configuration; exit 2 naming the bad key.
    Check,
    /// Print the embedded default configuration, with comments.
    PrintDefault,
}

/// `archive` options.
#[derive(Debug, clap::Args)]
pub struct ArchiveArgs {
    /// Clock for the retention policy (RFC 3339), for back-fills and tests;
    /// default: now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub now: Option<DateTime<Utc>>,
    /// Print what would be archived and deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this client (the audit log is then left alone).
    #[arg(long, value_name = "ID")]
    pub client: Option<ClientId>,
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2027-03-01T00:00:00Z"))
}
