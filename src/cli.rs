//! Command line (clap derive); the doc comments are the help text.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

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
