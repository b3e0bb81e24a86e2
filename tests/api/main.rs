//! Black-box tests: real HTTP on a random loopback port, real SQLite files.

mod backup;
mod callbacks;
mod config_cli;
mod crash;
mod deploy;
mod errors;
mod helpers;
mod observability;
mod openapi;
mod shutdown;
mod storage_faults;
