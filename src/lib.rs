//! authkey-receiver: a durable webhook receiver for Authkey delivery reports
//! and inbound WhatsApp/RCS messages.
//!
//! # Layout
//!
//! - [`cli`]: command-line definition; `main.rs` only dispatches.
//! - [`config`]: typed settings; embedded default, file, env, `validate()`.
//! - [`telemetry`]: the tracing subscriber and the per-request span
//!   (request id, client, channel, status, latency).
//! - [`metrics`]: the Prometheus registry served at `/metrics`.
//! - [`startup`]: [`startup::Application`] — build (bind, open store), then run.
//! - [`http`]: endpoints, one file per family, errors mapped in `http/error.rs`.
//! - [`access`]: allowlists, client address behind proxies, URL tokens,
//!   signatures, secret files; [`access::tokens`]: API tokens, roles, client
//!   scope and the TOTP second factor of the admin endpoints.
//! - [`tls`]: rustls server configuration from PEM files.
//! - [`ingest`]: provider payloads → normalized [`ingest::Event`]s: Authkey
//!   flat callbacks, Meta envelopes, RBM push bodies, SMPP receipts, Base16.
//! - [`store`]: the only place with SQL: schema, migrations, group-commit
//!   writer, readers.
//! - [`domain`]: typed values shared by all of the above.
//! - [`retention`]: how long rows stay live; the pruning task in `serve`.
//! - [`archive`]: the archive job, archive files, `verify-archive`, the
//!   archive reader for exports (docs/archive.md).
//! - [`mask`]: masking and pseudonyms (pure functions, plus the key file).
//! - [`export`]: what readers see: the masked or unmasked record of an event,
//!   export filters and CSV/NDJSON encoding.
//! - [`commands`]: `token`, `export` and `audit` subcommands.
//!
//! An export: `http::admin` → `access::tokens` (token, role, scope, TOTP) →
//! `store::Store::export_events` (rows read on a blocking thread, then with
//! `include_archive` the archive files' through `archive::reader`, masked and
//! encoded through `export::View`, streamed over a bounded channel) → chunked
//! response; the audit row is written when the stream ends.
//!
//! The path of one callback: `http::callbacks` → `access` → `ingest::parse`
//! → `store::Store::ingest` (writer thread, one transaction per batch) → 200.
#![forbid(unsafe_code)]

pub mod access;
pub mod archive;
pub mod cli;
pub mod commands;
pub mod config;
pub mod domain;
pub mod export;
pub mod http;
pub mod ingest;
pub mod mask;
pub mod metrics;
pub mod retention;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
