//! Retention policy: how long each client's rows stay live, and the
//! in-process pruning task that applies it inside `serve`.
//!
//! Retention is counted in calendar months back from "now" and rounded down
//! to a UTC midnight, so a run only ever takes whole UTC days: every row is
//! kept at least its retention period, at most one day longer, and each day
//! goes into one archive file.

pub mod task;

use chrono::{DateTime, Months, TimeZone, Utc};

use crate::config::ClientSettings;

/// The audit log is kept this many months (contract §6).
pub const AUDIT_LOG_MONTHS: u32 = 12;

/// Start (UTC midnight, Unix ms) of the day that is `months` calendar months
/// before `now`: rows received before it have expired.
pub fn cutoff_ms(now: DateTime<Utc>, months: u32) -> i64 {
    let back = now
        .checked_sub_months(Months::new(months))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let midnight = back
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists");
    Utc.from_utc_datetime(&midnight).timestamp_millis()
}

/// Cut-off of a client's live rows.
pub fn client_cutoff_ms(client: &ClientSettings, now: DateTime<Utc>) -> i64 {
    cutoff_ms(now, client.retention_months())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cutoff_is_the_midnight_of_the_same_day_months_earlier() {
        let c = cutoff_ms(at("2026-12-04T15:30:00Z"), 2);
        assert_eq!(c, at("2026-10-04T00:00:00Z").timestamp_millis());
        let c = cutoff_ms(at("2026-12-04T00:00:00Z"), 12);
        assert_eq!(c, at("2025-12-04T00:00:00Z").timestamp_millis());
    }

    #[test]
    fn cutoff_clamps_to_the_end_of_a_shorter_month() {
        let c = cutoff_ms(at("2026-05-31T23:59:59Z"), 3);
        assert_eq!(c, at("2026-02-28T00:00:00Z").timestamp_millis());
    }

    #[test]
    fn class_and_override_give_the_months_kept() {
        let client: ClientSettings = toml::from_str("id = \"b\"\nclass = \"banking\"\n").unwrap();
        let now = at("2027-01-15T12:00:00Z");
        assert_eq!(
            client_cutoff_ms(&client, now),
            at("2026-01-15T00:00:00Z").timestamp_millis()
        );
        let client: ClientSettings =
            toml::from_str("id = \"b\"\nclass = \"banking\"\nretention_months = 6\n").unwrap();
        assert_eq!(
            client_cutoff_ms(&client, now),
            at("2026-07-15T00:00:00Z").timestamp_millis()
        );
    }
}
