//! Command line (clap derive); the doc comments are the help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
