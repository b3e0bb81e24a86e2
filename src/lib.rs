//! authkey-receiver: a durable webhook receiver for Authkey delivery reports
//! and inbound WhatsApp/RCS messages.
//!
//! # Layout
//!
//! - [`cli`]: command-line definition; `main.rs` only dispatches.
//! - [`config`]: typed settings; embedded default, file, env, `validate()`.
//! - [`telemetry`]: the tracing subscriber.
//! - [`startup`]: [`startup::Application`] — build (bind, open store), then run.
//! - [`http`]: endpoints, one file per family, errors mapped in `http/error.rs`.
//! - [`access`]: allowlists and URL tokens.
//! - [`ingest`]: provider payloads → normalized [`ingest::Event`]s.
//! - [`store`]: the only place with SQL: schema, migrations, group-commit
//!   writer, readers.
//! - [`domain`]: typed values shared by all of the above.
//!
//! The path of one callback: `http::callbacks` → `access` → `ingest::parse`
//! → `store::Store::ingest` (writer thread, one transaction per batch) → 200.
#![forbid(unsafe_code)]

pub mod access;
pub mod cli;
pub mod commands;
pub mod config;
pub mod domain;
pub mod export;
pub mod http;
pub mod ingest;
pub mod mask;
pub mod startup;
pub mod store;
pub mod telemetry;
