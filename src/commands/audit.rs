//! `audit [--since]`: the audit log, oldest first, one tab-separated line a row.

use std::process::ExitCode;

use super::{with_store, Failure};
use crate::config::Settings;
use crate::export::{parse_time, rfc3339};

/// Prints audit rows at or after `since`.
pub fn audit(since: Option<&str>, settings: &Settings) -> ExitCode {
    let since = match since.map(|s| parse_time("--since", s)).transpose() {
        Ok(s) => s.unwrap_or(i64::MIN),
        Err(m) => return super::report(Failure::usage(m)),
    };
    with_store(settings, |store| async move {
        println!("at\tactor\trole\taction\tclient\toutcome\trows\treason\tsource\tfilters");
        for r in store.audit_since(since).await? {
            let cells = [
                rfc3339(r.at),
                r.actor,
                r.role.unwrap_or_else(|| "-".into()),
                r.action,
                r.client_id.unwrap_or_else(|| "-".into()),
                r.outcome,
                r.rows.map_or("-".into(), |n| n.to_string()),
                r.reason.unwrap_or_else(|| "-".into()),
                r.source_ip.unwrap_or_else(|| "-".into()),
                r.filters.unwrap_or_else(|| "-".into()),
            ];
            let line: Vec<String> = cells
                .into_iter()
                .map(|c| c.replace(['\t', '\n', '\r'], " "))
                .collect();
            println!("{}", line.join("\t"));
        }
        Ok(())
    })
}
