//! What readers of the data get: export filters and formats, and the masked
//! (or, for owners with a reason and a second factor, unmasked) view of a
//! stored event. Shared by `GET /v1/exports`, `GET /v1/messages` and the
//! `export` command.
//!
//! The CSV columns, in this fixed order (docs/privacy.md):
//! `id, received_at, event_at, client_id, channel, direction,
//! provider_message_id, phone, email, pseudonym, status, provider_status,
//! error_code, text, media, reply_to, source_ip, payload`.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use crate::domain::Channel;
use crate::mask::{Masker, PseudonymKey};
use crate::store::{EventFilter, EventRow, RowEncoder};

/// Statuses an export may filter on.
const STATUSES: &[&str] = &[
    "queued",
    "sent",
    "delivered",
    "read",
    "failed",
    "expired",
    "rejected",
    "unknown",
    "received",
];

/// The export's columns, in order.
pub const COLUMNS: &[&str] = &[
    "id",
    "received_at",
    "event_at",
    "client_id",
    "channel",
    "direction",
    "provider_message_id",
    "phone",
    "email",
    "pseudonym",
    "status",
    "provider_status",
    "error_code",
    "text",
    "media",
    "reply_to",
    "source_ip",
    "payload",
];

/// Output format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header row (RFC 4180).
    #[default]
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl Format {
    /// Parses `csv` or `ndjson`.
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "ndjson" => Ok(Format::Ndjson),
            other => Err(format!("`format` must be csv or ndjson, not `{other}`")),
        }
    }

    /// HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    /// File name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

/// Reads an export bound: RFC 3339, or a date (midnight UTC).
pub fn parse_time(key: &str, value: &str) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_millis());
    }
    Err(format!(
        "`{key}` must be an RFC 3339 time (2026-05-28T00:00:00Z) or a date (2026-05-28), not `{value}`"
    ))
}

/// Checks the value filters of an export; times are parsed by the caller.
pub fn check_filter(filter: &EventFilter) -> Result<(), String> {
    if let Some(c) = &filter.channel {
        c.parse::<Channel>().map_err(|()| {
            format!("`channel` must be sms, whatsapp, rcs, voice or email, not `{c}`")
        })?;
    }
    if let Some(d) = &filter.direction {
        if d != "status" && d != "inbound" {
            return Err(format!("`direction` must be status or inbound, not `{d}`"));
        }
    }
    if let Some(s) = &filter.status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(format!(
                "`status` must be one of {}, not `{s}`",
                STATUSES.join(", ")
            ));
        }
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from >= to {
            return Err("`from` must be before `to`".into());
        }
    }
    Ok(())
}

/// The service's masking rules and pseudonym key, from which each reader's
/// [`View`] is made.
#[derive(Debug, Clone)]
pub struct Privacy {
    /// Masking rules from `[privacy]`.
    pub masker: Masker,
    /// Key loaded from the data dir.
    pub key: PseudonymKey,
}

impl Privacy {
    /// Loads (creating on first start) the pseudonym key in `data_dir`.
    pub fn load(settings: &crate::config::Settings) -> Result<Privacy, crate::mask::KeyError> {
        Ok(Privacy {
            masker: settings.privacy.masker(),
            key: PseudonymKey::load_or_create(&settings.storage.data_dir)?,
        })
    }

    /// The masker for places with no settings at hand (error messages).
    pub fn default_masker() -> Masker {
        Masker::default()
    }

    /// The view of a reader who may (`unmasked`) or may not see real values.
    pub fn view(&self, unmasked: bool) -> View {
        View {
            masker: self.masker,
            key: self.key.clone(),
            unmasked,
        }
    }
}

/// How rows are shown to one reader.
#[derive(Debug, Clone)]
pub struct View {
    /// Masking rules.
    pub masker: Masker,
    /// Pseudonym key.
    pub key: PseudonymKey,
    /// Real values (owner with reason and second factor) instead of masked.
    pub unmasked: bool,
}

/// One event as a reader sees it; field order is the column order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record<'a> {
    /// Row id.
    pub id: i64,
    /// Receipt time, RFC 3339 UTC.
    pub received_at: String,
    /// Provider time, RFC 3339 UTC.
    pub event_at: Option<String>,
    /// Client.
    pub client_id: Cow<'a, str>,
    /// Channel.
    pub channel: Cow<'a, str>,
    /// `status` or `inbound`.
    pub direction: Cow<'a, str>,
    /// Provider message id (never masked: it is how rows are joined).
    pub provider_message_id: Cow<'a, str>,
    /// Phone, masked unless unmasked.
    pub phone: Option<Cow<'a, str>>,
    /// E-mail, masked unless unmasked.
    pub email: Option<Cow<'a, str>>,
    /// Pseudonym of the phone (else the e-mail).
    pub pseudonym: Option<Cow<'a, str>>,
    /// Normalized status.
    pub status: Cow<'a, str>,
    /// Status word as sent.
    pub provider_status: Option<Cow<'a, str>>,
    /// Error code as sent (masked: providers put numbers in it).
    pub error_code: Option<Cow<'a, str>>,
    /// Inbound text, masked.
    pub text: Option<Cow<'a, str>>,
    /// Media reference, masked.
    pub media: Option<Cow<'a, str>>,
    /// Replied-to message id.
    pub reply_to: Option<Cow<'a, str>>,
    /// Provider address.
    pub source_ip: Cow<'a, str>,
    /// Raw payload (JSON), every string and number masked.
    pub payload: Cow<'a, str>,
}

/// UTC Unix ms as RFC 3339 with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

impl View {
    /// A stored phone or e-mail as this reader may see it.
    pub fn recipient(&self, value: &str) -> String {
        if self.unmasked {
            value.to_string()
        } else if value.contains('@') {
            self.masker.email(value)
        } else {
            self.masker.phone(value)
        }
    }

    fn text<'a>(&self, value: &'a Option<String>) -> Option<Cow<'a, str>> {
        value.as_deref().map(|v| {
            if self.unmasked {
                Cow::Borrowed(v)
            } else {
                Cow::Owned(self.masker.text(v))
            }
        })
    }

    fn person<'a>(&self, value: &'a Option<String>) -> Option<Cow<'a, str>> {
        value.as_deref().map(|v| {
            if self.unmasked {
                Cow::Borrowed(v)
            } else {
                Cow::Owned(self.recipient(v))
            }
        })
    }

    /// The reader's view of a stored event.
    pub fn record<'a>(&self, row: &'a EventRow) -> Record<'a> {
        let subject = row.phone.as_deref().or(row.email.as_deref());
        Record {
            id: row.id,
            received_at: rfc3339(row.received_at),
            event_at: row.event_at.map(rfc3339),
            client_id: Cow::Borrowed(&row.client_id),
            channel: Cow::Borrowed(&row.channel),
            direction: Cow::Borrowed(&row.direction),
            provider_message_id: Cow::Borrowed(&row.provider_message_id),
            phone: self.person(&row.phone),
            email: self.person(&row.email),
            pseudonym: subject.map(|s| Cow::Owned(self.key.pseudonym(s))),
            status: Cow::Borrowed(&row.status),
            provider_status: self.text(&row.provider_status),
            error_code: self.text(&row.error_code),
            text: self.text(&row.text),
            media: self.text(&row.media),
            reply_to: row.reply_to.as_deref().map(Cow::Borrowed),
            source_ip: Cow::Borrowed(&row.source_ip),
            payload: if self.unmasked {
                Cow::Borrowed(&row.payload)
            } else {
                Cow::Owned(self.masker.json_text(&row.payload))
            },
        }
    }

    /// The header bytes and row encoder of an export in `format`.
    pub fn encoder(self, format: Format) -> (Vec<u8>, RowEncoder) {
        match format {
            Format::Csv => {
                let mut header = COLUMNS.join(",").into_bytes();
                header.extend_from_slice(b"\r\n");
                let encode = move |row: &EventRow, out: &mut Vec<u8>| {
                    write_csv(&self.record(row), out);
                };
                (header, Box::new(encode))
            }
            Format::Ndjson => {
                let encode = move |row: &EventRow, out: &mut Vec<u8>| {
                    serde_json::to_writer(&mut *out, &self.record(row))
                        .expect("a record always serializes");
                    out.push(b'\n');
                };
                (Vec::new(), Box::new(encode))
            }
        }
    }
}

/// One CSV line (RFC 4180: fields with `,` `"` CR or LF are quoted).
fn write_csv(r: &Record, out: &mut Vec<u8>) {
    let id = r.id.to_string();
    let fields: [Option<&str>; 18] = [
        Some(&id),
        Some(&r.received_at),
        r.event_at.as_deref(),
        Some(&r.client_id),
        Some(&r.channel),
        Some(&r.direction),
        Some(&r.provider_message_id),
        r.phone.as_deref(),
        r.email.as_deref(),
        r.pseudonym.as_deref(),
        Some(&r.status),
        r.provider_status.as_deref(),
        r.error_code.as_deref(),
        r.text.as_deref(),
        r.media.as_deref(),
        r.reply_to.as_deref(),
        Some(&r.source_ip),
        Some(&r.payload),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let field = field.unwrap_or("");
        if field.contains([',', '"', '\r', '\n']) {
            out.push(b'"');
            out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(field.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> EventRow {
        EventRow {
            id: 7,
            client_id: "default".into(),
            channel: "whatsapp".into(),
            direction: "inbound".into(),
            provider_message_id: "wamid.1".into(),
            phone: Some("+919876543210".into()),
            email: None,
            status: "received".into(),
            provider_status: None,
            error_code: None,
            event_at: Some(1_779_942_731_000),
            received_at: 1_779_942_732_500,
            source_ip: "127.0.0.1".into(),
            text: Some("call me on 9876543210, \"now\"".into()),
            media: None,
            reply_to: None,
            payload: r#"{"from":"919876543210","text":{"body":"call me on 9876543210"}}"#.into(),
        }
    }

    fn view(unmasked: bool) -> View {
        View {
            masker: Masker::default(),
            key: PseudonymKey::from_bytes([7; 32]),
            unmasked,
        }
    }

    #[test]
    fn csv_rows_follow_the_header_and_hold_no_number() {
        let (header, mut encode) = view(false).encoder(Format::Csv);
        let mut out = header;
        encode(&row(), &mut out);
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next().unwrap(), COLUMNS.join(","));
        let line = lines.next().unwrap();
        assert!(line.starts_with(
            "7,2026-05-28T04:32:12.500Z,2026-05-28T04:32:11.000Z,default,whatsapp,inbound,wamid.1,+91******3210,,"
        ), "{line}");
        assert!(
            line.contains(r#""call me on ******3210, ""now""""#),
            "{line}"
        );
        assert!(
            !text.contains("9876543210") && !text.contains("98765"),
            "{text}"
        );
    }

    #[test]
    fn unmasked_view_shows_the_stored_values_and_the_same_pseudonym() {
        let row = row();
        let masked = view(false).record(&row);
        let real = view(true).record(&row);
        assert_eq!(real.phone.as_deref(), Some("+919876543210"));
        assert_eq!(real.payload, row.payload);
        assert_eq!(real.pseudonym, masked.pseudonym);
    }

    #[test]
    fn ndjson_lines_are_records_in_column_order() {
        let (header, mut encode) = view(false).encoder(Format::Ndjson);
        assert!(header.is_empty());
        let mut out = Vec::new();
        encode(&row(), &mut out);
        let line = String::from_utf8(out).unwrap();
        let keys: Vec<&str> = line
            .split("\":")
            .filter_map(|p| p.rsplit('"').next())
            .collect();
        assert_eq!(&keys[..3], &["id", "received_at", "event_at"]);
        assert!(!line.contains("98765"), "{line}");
    }

    #[test]
    fn filters_are_checked_with_clear_messages() {
        let bad = EventFilter {
            channel: Some("fax".into()),
            ..EventFilter::default()
        };
        assert!(check_filter(&bad).unwrap_err().contains("`channel`"));
        let bad = EventFilter {
            status: Some("lost".into()),
            ..EventFilter::default()
        };
        assert!(check_filter(&bad).unwrap_err().contains("`status`"));
        assert_eq!(parse_time("from", "2026-05-28").unwrap(), 1_779_926_400_000);
        assert!(parse_time("to", "yesterday").unwrap_err().contains("`to`"));
    }
}
