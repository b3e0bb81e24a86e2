//! Black-box tests: real HTTP on a random loopback port, real SQLite files.

mod archive;
mod archive_crash;
mod archive_support;
mod callbacks;
mod config_cli;
mod crash;
mod errors;
mod helpers;
mod storage_faults;
