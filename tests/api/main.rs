//! Black-box tests: real HTTP on a random loopback port, real SQLite files.

mod callbacks;
mod config_cli;
mod crash;
mod errors;
mod handshakes;
mod helpers;
mod message_state;
mod providers;
mod storage_faults;
