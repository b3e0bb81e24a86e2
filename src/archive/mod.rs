//! Archive files for cold storage: the archive job ([`run`]), the file
//! format and `SHA256SUMS` ([`files`]), the run lock shared with the
//! pruning task ([`lock`]), `verify-archive` ([`verify`]), reading rows back
//! for exports ([`reader`]), the CLI commands ([`command`]) and the crash
//! points used by tests ([`failpoint`]). Design: docs/archive.md.

pub mod command;
pub mod failpoint;
pub mod files;
mod job;
pub mod lock;
mod plan;
pub mod reader;
mod reconcile;
pub mod verify;

pub use job::{run, ArchiveError, Outcome, RunOptions, Summary};
