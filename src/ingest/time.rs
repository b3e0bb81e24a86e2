//! Provider times to UTC Unix milliseconds.

use chrono::{DateTime, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// Parses a provider time: `YYYY-MM-DD HH:MM:SS` (or with `T`, optional
/// fraction) read in `zone`; RFC 3339 with an offset; or Unix seconds (10
/// digits) / milliseconds (13 digits).
pub fn parse_provider_time(raw: &str, zone: Tz) -> Option<i64> {
    let s = raw.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().ok()?;
        return match s.len() {
            9 | 10 => Some(n * 1000),
            12 | 13 => Some(n),
            _ => None,
        };
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|dt| dt.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authkey_local_time_is_read_in_india() {
        // 19:21:21 IST is 13:51:21 UTC.
        let ms = parse_provider_time("2026-05-28 19:21:21", chrono_tz::Asia::Kolkata).unwrap();
        assert_eq!(ms, 1_779_976_281_000);
    }

    #[test]
    fn zoned_and_numeric_times() {
        let z = chrono_tz::Asia::Kolkata;
        assert_eq!(
            parse_provider_time("2026-05-28T13:51:21Z", z),
            Some(1_779_976_281_000)
        );
        assert_eq!(
            parse_provider_time("1694492482", z),
            Some(1_694_492_482_000)
        );
        assert_eq!(
            parse_provider_time("1694492482123", z),
            Some(1_694_492_482_123)
        );
        assert_eq!(parse_provider_time("yesterday", z), None);
        assert_eq!(parse_provider_time("2026-13-01 00:00:00", z), None);
    }
}
