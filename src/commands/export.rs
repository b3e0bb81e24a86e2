//! `export`: the masked export for operators on the host, to a file (mode
//! 0600) or standard output, audited as the local user.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde_json::json;

use super::{check_clients, local_actor, now_ms, with_store, Failure};
use crate::cli::ExportArgs;
use crate::config::Settings;
use crate::export::{check_filter, parse_time, Privacy};
use crate::store::{AuditEntry, EventFilter};

/// Runs `export`.
pub fn export(args: ExportArgs, settings: &Settings) -> ExitCode {
    let filter = match build_filter(&args, settings) {
        Ok(f) => f,
        Err(f) => return super::report(f),
    };
    with_store(settings, |store| async move {
        let privacy = Privacy::load(settings).map_err(Failure::runtime)?;
        let mut out: Box<dyn Write> = match &args.output {
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| {
                        Failure::runtime(format!("cannot write {}: {e}", path.display()))
                    })?,
            ),
            None => Box::new(std::io::stdout().lock()),
        };
        let audit = AuditEntry {
            at: now_ms(),
            actor: local_actor(),
            action: "export".into(),
            client_id: (filter.clients.as_ref().map(Vec::len) == Some(1))
                .then(|| args.clients[0].clone()),
            filters: Some(
                json!({
                    "filter": filter,
                    "format": args.format.extension(),
                    "unmasked": false,
                    "include_archive": args.include_archive,
                })
                .to_string(),
            ),
            source_ip: Some("local".into()),
            outcome: "ok".into(),
            ..AuditEntry::default()
        };
        let (head, mut encode) = privacy.view(false).encoder(args.format);
        let rows = Arc::new(AtomicI64::new(0));
        let counter = Arc::clone(&rows);
        let counted = Box::new(move |row: &_, out: &mut Vec<u8>| {
            counter.fetch_add(1, Ordering::Relaxed);
            encode(row, out);
        });
        let archive = args.include_archive.then(|| settings.archive.dir.clone());
        let mut rx = store.export_events(filter, archive, head, counted, audit);
        while let Some(chunk) = rx.recv().await {
            out.write_all(&chunk?)
                .map_err(|e| Failure::runtime(format!("cannot write the export: {e}")))?;
        }
        out.flush()
            .map_err(|e| Failure::runtime(format!("cannot write the export: {e}")))?;
        eprintln!("exported {} rows", rows.load(Ordering::Relaxed));
        Ok(())
    })
}

fn build_filter(args: &ExportArgs, settings: &Settings) -> Result<EventFilter, Failure> {
    check_clients(settings, &args.clients)?;
    let time = |key: &str, v: &Option<String>| {
        v.as_deref()
            .map(|v| parse_time(key, v))
            .transpose()
            .map_err(Failure::usage)
    };
    let filter = EventFilter {
        clients: (!args.clients.is_empty()).then(|| args.clients.clone()),
        from: time("--from", &args.from)?,
        to: time("--to", &args.to)?,
        channel: args.channel.clone(),
        direction: args.direction.clone(),
        status: args.status.clone(),
    };
    check_filter(&filter).map_err(Failure::usage)?;
    Ok(filter)
}
