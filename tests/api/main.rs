//! Black-box tests: real HTTP on a random loopback port, real SQLite files.

mod callbacks;
mod config_cli;
mod crash;
mod errors;
mod helpers;
mod privacy;
mod privacy_cli;
mod storage_faults;
