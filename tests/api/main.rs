//! Black-box tests: real HTTP on a random loopback port, real databases:
//! SQLite files, or PostgreSQL with `AUTHKEY_TEST_POSTGRES_URL` (backend.rs).

mod access;
mod archive;
mod archive_crash;
mod archive_export;
mod archive_support;
mod backend;
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
mod pg_support;
mod postgres;
mod privacy;
mod privacy_cli;
mod providers;
mod secret_files;
mod shutdown;
mod signatures;
mod storage_faults;
mod test_db;
mod tls;
