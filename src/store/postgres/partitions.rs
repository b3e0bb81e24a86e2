//! Monthly partitions of `events`, by UTC month of `received_at`. Each
//! receiver creates the coming months ahead of time (at start-up and then
//! hourly from the writer); the archive job drops a past month's partition
//! once every row in it has been archived and deleted.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use tokio_postgres::GenericClient;

use super::migrate::SCHEMA_LOCK;

/// Months created ahead of the current one.
pub(crate) const MONTHS_AHEAD: u32 = 2;

/// First instant of the month `offset` months after the month of `at`.
fn month_start(at: DateTime<Utc>, offset: u32) -> DateTime<Utc> {
    let months = at.year() * 12 + at.month0() as i32 + offset as i32;
    Utc.with_ymd_and_hms(
        months.div_euclid(12),
        months.rem_euclid(12) as u32 + 1,
        1,
        0,
        0,
        0,
    )
    .single()
    .expect("the first of a month exists")
}

/// Partition name of the month starting at `start`.
pub(crate) fn partition_name(start: DateTime<Utc>) -> String {
    format!("events_p{}", start.format("%Y%m"))
}

/// Creates the partitions of the current month and the next
/// [`MONTHS_AHEAD`], under the schema lock, in the caller's transaction. A
/// month whose rows already sit in `events_default` (a receiver ran past its
/// partitions) is left there, with a warning.
pub(crate) async fn create_ahead(
    tx: &impl GenericClient,
    now: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    for offset in 0..=MONTHS_AHEAD {
        let (from, to) = (month_start(now, offset), month_start(now, offset + 1));
        let name = partition_name(from);
        let exists = tx
            .query_opt("SELECT 1 FROM pg_class WHERE relname = $1", &[&name])
            .await?
            .is_some();
        if exists {
            continue;
        }
        let (from_ms, to_ms) = (from.timestamp_millis(), to.timestamp_millis());
        let stray = tx
            .query_opt(
                "SELECT 1 FROM events_default WHERE received_at >= $1 AND received_at < $2 LIMIT 1",
                &[&from_ms, &to_ms],
            )
            .await?
            .is_some();
        if stray {
            tracing::warn!(partition = %name, "rows of this month are in events_default; not creating its partition");
            continue;
        }
        tx.batch_execute(&format!(
            "CREATE TABLE {name} PARTITION OF events FOR VALUES FROM ({from_ms}) TO ({to_ms})"
        ))
        .await?;
        tracing::info!(partition = %name, "created partition");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_the_year() {
        let at = Utc.with_ymd_and_hms(2026, 11, 17, 5, 0, 0).unwrap();
        assert_eq!(partition_name(month_start(at, 0)), "events_p202611");
        assert_eq!(partition_name(month_start(at, 2)), "events_p202701");
        assert_eq!(
            month_start(at, 1),
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
        );
    }
}
