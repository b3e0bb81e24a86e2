//! Black-box tests: real HTTP on a random loopback port, real SQLite files.

mod access;
mod archive;
mod archive_crash;
mod archive_support;
mod callbacks;
mod config_cli;
mod crash;
mod errors;
mod handshakes;
mod helpers;
mod limits;
mod message_state;
mod providers;
mod secret_files;
mod signatures;
mod storage_faults;
mod tls;
