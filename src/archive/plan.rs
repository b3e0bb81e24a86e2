//! The dry run (`archive --dry-run`): what a run would archive and delete,
//! read through a read-only connection without the lock.

use super::files::{day_date, group_dir};
use super::job::{ArchiveError, RunOptions, Summary};
use crate::config::{ClientSettings, Settings};
use crate::retention::{client_cutoff_ms, cutoff_ms, AUDIT_LOG_MONTHS};
use crate::store::archive::{ArchiveDb, Kind};

/// The dry run: reads only, through a read-only connection, without the lock.
pub(super) fn plan(
    settings: &Settings,
    db: &ArchiveDb,
    clients: &[&ClientSettings],
    opts: &RunOptions,
) -> Result<Summary, ArchiveError> {
    let mut summary = Summary::default();
    for client in clients {
        let cutoff = client_cutoff_ms(client, opts.now);
        for kind in Kind::ALL {
            for g in db.expired_groups(kind, client.id.as_str(), cutoff)? {
                let day = day_date(g.day);
                summary.rows += g.rows;
                summary.files += 1;
                summary.lines.push(format!(
                    "would archive {} {kind} rows of {}/{} received {day} into {}/",
                    g.rows,
                    client.id,
                    g.channel,
                    group_dir(client.id.as_str(), &g.channel, day).display()
                ));
            }
        }
        if !client.legal_hold {
            let before = cutoff_ms(opts.now, settings.archive.keep_months);
            for f in db.files_created_before(client.id.as_str(), before)? {
                summary.files_deleted += 1;
                summary.lines.push(format!(
                    "would delete archive file {} ({} rows)",
                    f.path, f.rows
                ));
            }
        }
    }
    if opts.client.is_none() {
        summary.audit_rows = db.count_audit_before(cutoff_ms(opts.now, AUDIT_LOG_MONTHS))?;
    }
    Ok(summary)
}
