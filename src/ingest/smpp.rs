//! SMPP 3.4 delivery receipts (appendix B): the text an SMSC puts in a
//! `deliver_sm` and SMS gateways pass on inside a field
//! (`id:IIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
//! stat:DDDDDDD err:E text:...`). Keys are matched case-insensitively.

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// The parts of a receipt the receiver uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The SMSC's message id.
    pub id: String,
    /// Message state word, e.g. `DELIVRD`.
    pub stat: Option<String>,
    /// Network error code as sent, e.g. `000`.
    pub err: Option<String>,
    /// `done date` as sent.
    pub done_date: Option<String>,
}

/// Receipt keys in their specified order; `text` runs to the end.
const KEYS: &[&str] = &[
    "id",
    "sub",
    "dlvrd",
    "submit date",
    "done date",
    "stat",
    "err",
    "text",
];

/// Reads a receipt; `None` when `text` is not one (it needs `id:` first and a
/// `stat:`).
pub fn parse_receipt(text: &str) -> Option<Receipt> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    if !lower.starts_with("id:") {
        return None;
    }
    // Message text may itself contain `stat:` or `err:`; keys after `text:`
    // are part of the text.
    let text_at = find_key(&lower, "text:").unwrap_or(lower.len());
    let mut found: Vec<(usize, usize, &str)> = KEYS
        .iter()
        .filter_map(|key| {
            let needle = format!("{key}:");
            find_key(&lower, &needle)
                .filter(|at| *key == "text" || *at < text_at)
                .map(|at| (at, at + needle.len(), *key))
        })
        .collect();
    found.sort_unstable();
    let value = |key: &str| -> Option<String> {
        let i = found.iter().position(|(_, _, k)| *k == key)?;
        let start = found[i].1;
        let end = found.get(i + 1).map_or(text.len(), |next| next.0);
        let v = text[start..end].trim();
        (!v.is_empty()).then(|| v.to_string())
    };
    let stat = value("stat")?;
    Some(Receipt {
        id: value("id")?,
        stat: Some(stat),
        err: value("err"),
        done_date: value("done date"),
    })
}

/// First occurrence of `needle` at the start or after whitespace.
fn find_key(haystack: &str, needle: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(rel) = haystack[from..].find(needle) {
        let at = from + rel;
        if at == 0 || haystack.as_bytes()[at - 1].is_ascii_whitespace() {
            return Some(at);
        }
        from = at + needle.len();
    }
    None
}

/// Reads `YYMMDDhhmm` or `YYMMDDhhmmss` in `zone`, as UTC Unix ms.
pub fn parse_done_date(raw: &str, zone: Tz) -> Option<i64> {
    let s = raw.trim();
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let format = match s.len() {
        10 => "%y%m%d%H%M",
        12 => "%y%m%d%H%M%S",
        _ => return None,
    };
    let naive = NaiveDateTime::parse_from_str(s, format).ok()?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|dt| dt.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_receipt_is_read_field_by_field() {
        let r = parse_receipt(
            "id:28bf7375bb54540ba03a sub:001 dlvrd:001 submit date:2605281001 \
             done date:2605281002 stat:DELIVRD err:000 text:Your OTP is 4821",
        )
        .unwrap();
        assert_eq!(r.id, "28bf7375bb54540ba03a");
        assert_eq!(r.stat.as_deref(), Some("DELIVRD"));
        assert_eq!(r.err.as_deref(), Some("000"));
        assert_eq!(r.done_date.as_deref(), Some("2605281002"));
    }

    #[test]
    fn keys_are_case_insensitive_and_text_cannot_fake_a_key() {
        let r = parse_receipt("ID:abc SUB:1 DLVRD:0 STAT:undeliv Text:err:5 stat:DELIVRD").unwrap();
        assert_eq!(r.id, "abc");
        assert_eq!(r.stat.as_deref(), Some("undeliv"));
        assert_eq!(r.err, None);
        assert_eq!(r.done_date, None);
    }

    #[test]
    fn text_that_is_not_a_receipt_is_none() {
        for t in [
            "",
            "hello",
            "id:",
            "id:abc sub:001",
            "stat:DELIVRD id:a",
            "id: stat:x",
        ] {
            assert_eq!(parse_receipt(t), None, "{t}");
        }
    }

    #[test]
    fn done_dates_with_and_without_seconds_are_read_in_the_provider_zone() {
        let z = chrono_tz::Asia::Kolkata;
        // 2026-05-28 10:02 IST is 04:32 UTC.
        assert_eq!(parse_done_date("2605281002", z), Some(1_779_942_720_000));
        assert_eq!(parse_done_date("260528100211", z), Some(1_779_942_731_000));
        assert_eq!(parse_done_date("2613281002", z), None);
        assert_eq!(parse_done_date("26052810", z), None);
        assert_eq!(parse_done_date("26052810O2", z), None);
    }
}
