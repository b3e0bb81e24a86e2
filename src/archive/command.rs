//! The `archive` and `verify-archive` commands: run, print, pick the exit
//! status (0 success, 1 failure or a bad file, 2 bad command line).

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use chrono::Utc;

use super::verify::{verify as verify_tree, Ledger};
use super::{run, ArchiveError, Outcome, RunOptions};
use crate::cli::ArchiveArgs;
use crate::config::Settings;
use crate::store::archive::ArchiveDb;

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("authkey-receiver: {message}");
    ExitCode::from(code)
}

/// `archive [--now RFC3339] [--dry-run] [--client ID]`.
pub fn archive(settings: &Settings, args: &ArchiveArgs) -> ExitCode {
    let opts = RunOptions {
        now: args.now.unwrap_or_else(Utc::now),
        dry_run: args.dry_run,
        client: args.client.as_ref().map(|c| c.to_string()),
    };
    let summary = match run(settings, &opts, &AtomicBool::new(false)) {
        Ok(Outcome::Done(s)) => s,
        Ok(Outcome::Busy(lock)) => {
            println!("archive: another archive run holds {lock}; nothing done");
            return ExitCode::SUCCESS;
        }
        Err(e @ ArchiveError::UnknownClient(_)) => return fail(2, e),
        Err(e) => return fail(1, format!("archive failed: {e}")),
    };
    for line in &summary.lines {
        println!("{line}");
    }
    if opts.dry_run {
        println!(
            "archive --dry-run: would move {} rows into {} files, delete {} old archive files \
             and {} audit-log rows; nothing changed",
            summary.rows, summary.files, summary.files_deleted, summary.audit_rows
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "archive: {} rows, {} files, {} bytes, {:.2} s; {} old archive files deleted, \
         {} audit-log rows pruned, {} leftovers of an interrupted run cleaned up",
        summary.rows,
        summary.files,
        summary.bytes,
        summary.seconds,
        summary.files_deleted,
        summary.audit_rows,
        summary.leftovers_removed
    );
    if summary.unrecorded.is_empty() {
        return ExitCode::SUCCESS;
    }
    for path in &summary.unrecorded {
        eprintln!("authkey-receiver: {path} is not in archive_files and its rows are no longer in the database; kept for inspection");
    }
    ExitCode::from(1)
}

/// `verify-archive [DIR]`.
pub fn verify(settings: &Settings, dir: Option<&Path>) -> ExitCode {
    let live = &settings.archive.dir;
    let root = dir.unwrap_or(live);
    if !root.is_dir() {
        return fail(1, format!("{} is not a directory", root.display()));
    }
    let is_live = match (root.canonicalize(), live.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let ledger = match ArchiveDb::open_read_only(&settings.storage).and_then(|db| db.all_files()) {
        Ok(records) if is_live => Ledger::Live(records),
        Ok(records) => Ledger::Copy(records),
        Err(e) => {
            eprintln!("authkey-receiver: {e}; checking SHA256SUMS and file contents only");
            Ledger::None
        }
    };
    let report = match verify_tree(root, &ledger) {
        Ok(r) => r,
        Err(e) => return fail(1, format!("cannot read {}: {e}", root.display())),
    };
    for p in &report.problems {
        println!("FAILED {}: {}", p.path, p.reason);
    }
    println!(
        "verify-archive: {} files, {} rows checked under {}; {} problem(s)",
        report.files,
        report.rows,
        root.display(),
        report.problems.len()
    );
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
