//! Black-box tests: real HTTP on a random loopback port, real SQLite files.

mod access;
mod archive;
mod archive_crash;
mod archive_export;
mod archive_support;
mod backup;
mod callbacks;
mod config_cli;
mod crash;
mod deploy;
mod errors;
mod handshakes;
mod helpers;
mod limits;
mod message_state;
mod observability;
mod openapi;
mod privacy;
mod privacy_cli;
mod providers;
mod secret_files;
mod shutdown;
mod signatures;
mod storage_faults;
mod tls;
