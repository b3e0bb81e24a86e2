//! Provider payloads → normalized [`Event`]s. Parsers see bytes and strings,
//! never HTTP types; one file per provider family.
//!
//! [`parse`] detects the body's shape (query string, form, bare SMPP receipt,
//! JSON object or array; per JSON item a Meta envelope, an RBM push body or
//! an Authkey flat object) and hands each item to the parser for its family.
//! An item that cannot be read becomes an [`ItemRejection`]; a body that
//! cannot be read at all is a [`Rejection`]. [`decode_base16`] undoes the
//! hex encoding some clients apply to the whole body.

mod authkey;
mod base16;
pub mod meta;
pub mod phone;
pub mod rbm;
pub mod smpp;
pub mod status;
pub mod time;

pub use base16::decode_base16;

use chrono_tz::Tz;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::domain::{Channel, ClientId, Direction, Status};

/// What the parsers need to know beyond the bytes.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Zone of provider times without one.
    pub provider_timezone: Tz,
    /// Country code for bare national numbers.
    pub default_country_code: String,
    /// Deepest JSON nesting accepted (`server.max_json_depth`, at most
    /// [`MAX_JSON_DEPTH`]).
    pub max_json_depth: usize,
}

/// One callback as received, with the URL token already removed.
#[derive(Debug, Clone, Copy)]
pub struct RawCallback<'a> {
    /// Channel from the URL path.
    pub channel: Channel,
    /// Query string without `token=`, if any.
    pub query: Option<&'a str>,
    /// Declared `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    /// Request body.
    pub body: &'a [u8],
}

/// One normalized event, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Channel from the URL path.
    pub channel: Channel,
    /// Status report or inbound message.
    pub direction: Direction,
    /// The provider's id for the message (Authkey `logid`).
    pub provider_message_id: String,
    /// Recipient or sender phone in E.164.
    pub phone: Option<String>,
    /// Recipient e-mail address (e-mail channel).
    pub email: Option<String>,
    /// Normalized status.
    pub status: Status,
    /// Status word as the provider sent it.
    pub provider_status: Option<String>,
    /// Error code as the provider sent it.
    pub error_code: Option<String>,
    /// Provider event time, UTC Unix ms.
    pub event_at: Option<i64>,
    /// Inbound text, button payload or list id.
    pub text: Option<String>,
    /// Media reference of an inbound message.
    pub media: Option<String>,
    /// Id of the message an inbound message replies to.
    pub reply_to: Option<String>,
    /// The item as received (JSON), unknown keys included.
    pub payload: String,
}

impl Event {
    /// The person this event is about: phone, else e-mail.
    pub fn recipient(&self) -> &str {
        self.phone
            .as_deref()
            .or(self.email.as_deref())
            .unwrap_or("")
    }

    /// Identity of the event for de-duplication (contract §3): the same
    /// message reporting the same provider status at the same provider time.
    /// Inbound messages are identified by their own id (and sender) alone: a
    /// redelivered inbound message is the same message whatever else changed.
    ///
    /// The key starts with the provider time in minutes (big-endian; 0 for
    /// inbound messages and events without a time), then 12 bytes of a
    /// SHA-256 of the identity. Events arrive roughly in time order, so new
    /// keys land near the end of the UNIQUE index and an archive run deletes
    /// a few contiguous stretches of it instead of pages all over it.
    pub fn dedup_key(&self, client: &ClientId) -> [u8; 16] {
        let mut h = Sha256::new();
        for part in [
            client.as_str(),
            self.direction.as_str(),
            &self.provider_message_id,
            self.recipient(),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let mut minute = 0u32;
        if self.direction == Direction::Status {
            h.update(self.provider_status.as_deref().unwrap_or("").as_bytes());
            h.update([0]);
            h.update(self.event_at.unwrap_or(i64::MIN).to_be_bytes());
            minute = self.event_at.map_or(0, |ms| {
                u32::try_from(ms.div_euclid(60_000).max(0)).unwrap_or(u32::MAX)
            });
        }
        let digest = h.finalize();
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&minute.to_be_bytes());
        key[4..].copy_from_slice(&digest[..12]);
        key
    }
}

/// Why a body or an item was refused: a machine code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable machine-readable code, e.g. `missing_message_id`.
    pub code: &'static str,
    /// What was wrong, for a person.
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

/// One item of a multi-item body that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRejection {
    /// Why.
    pub rejection: Rejection,
    /// The item's raw text, kept in quarantine.
    pub raw: String,
}

impl ItemRejection {
    pub(crate) fn new(code: &'static str, message: impl Into<String>, raw: String) -> Self {
        ItemRejection {
            rejection: Rejection::new(code, message),
            raw,
        }
    }
}

/// The result of reading a body that had a readable shape.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Valid events.
    pub events: Vec<Event>,
    /// Items that were refused.
    pub rejects: Vec<ItemRejection>,
    /// Provider notices that are not events (a Meta `errors` list, a change
    /// this receiver does not read): kept in quarantine for an operator, but
    /// the body is answered `200` so the provider does not retry it.
    pub notices: Vec<ItemRejection>,
    /// Items understood and deliberately not stored (RBM `IS_TYPING`).
    pub ignored: usize,
}

/// Reads a callback into events. `Err` means nothing in it could be read;
/// `Ok` always holds at least one event, rejection, notice or ignored item.
pub fn parse(raw: RawCallback<'_>, opts: &IngestOptions) -> Result<Parsed, Rejection> {
    let body = std::str::from_utf8(raw.body)
        .map_err(|e| Rejection::new("invalid_utf8", format!("body is not UTF-8: {e}")))?;
    let body = body.trim();
    let mut parsed = Parsed::default();
    if body.is_empty() {
        let query = raw
            .query
            .filter(|q| !q.is_empty())
            .ok_or_else(|| Rejection::new("empty_body", "no body and no query parameters"))?;
        parsed.push(authkey::parse_form(query, raw.channel, opts));
        return Ok(parsed);
    }
    match body_kind(raw.content_type, body)? {
        BodyKind::Form if smpp::parse_receipt(body).is_some() => {
            parsed.push(authkey::parse_receipt_body(body, raw.channel, opts));
        }
        BodyKind::Form => parsed.push(authkey::parse_form(body, raw.channel, opts)),
        BodyKind::Json => {
            for item in json_items(body, opts.max_json_depth)? {
                parse_json_item(item.get(), raw.channel, opts, &mut parsed);
            }
        }
    }
    if parsed.events.is_empty()
        && parsed.rejects.is_empty()
        && parsed.notices.is_empty()
        && parsed.ignored == 0
    {
        return Err(Rejection::new("no_events", "the body holds no events"));
    }
    Ok(parsed)
}

/// Sends one JSON item to its family's parser: a Meta envelope (`object` and
/// `entry`), an RBM push body (`message.data`), else an Authkey flat object.
fn parse_json_item(item: &str, channel: Channel, opts: &IngestOptions, parsed: &mut Parsed) {
    let envelope =
        if item.starts_with('{') && (item.contains("\"entry\"") || item.contains("\"message\"")) {
            serde_json::from_str::<Map<String, Value>>(item).ok()
        } else {
            None
        };
    match envelope {
        Some(root) if root.contains_key("object") && root.contains_key("entry") => {
            if let Err(rejection) = meta::parse_envelope(&root, channel, opts, parsed) {
                parsed.rejects.push(ItemRejection {
                    rejection,
                    raw: item.to_string(),
                });
            }
        }
        Some(root) if rbm::is_push(&root) => rbm::parse_push(&root, channel, opts, parsed),
        _ => parsed.push(authkey::parse_json_item(item, channel, opts)),
    }
}

impl Parsed {
    fn push(&mut self, item: Result<Event, ItemRejection>) {
        match item {
            Ok(e) => self.events.push(e),
            Err(r) => self.rejects.push(r),
        }
    }
}

enum BodyKind {
    Form,
    Json,
}

/// Decides by the declared type; senders that declare `text/plain` or nothing
/// are sniffed.
fn body_kind(content_type: Option<&str>, body: &str) -> Result<BodyKind, Rejection> {
    let mime = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match mime.as_str() {
        "application/json" => Ok(BodyKind::Json),
        "application/x-www-form-urlencoded" => Ok(BodyKind::Form),
        "" | "text/plain" | "application/octet-stream" => {
            if body.starts_with('{') || body.starts_with('[') {
                Ok(BodyKind::Json)
            } else {
                Ok(BodyKind::Form)
            }
        }
        m if m.ends_with("+json") => Ok(BodyKind::Json),
        other => Err(Rejection::new(
            "unsupported_media_type",
            format!(
                "content type `{other}` is not accepted; send application/json or application/x-www-form-urlencoded"
            ),
        )),
    }
}

/// Splits a JSON body into items without re-serializing them: an object is one
/// item, an array is one item per element.
fn json_items(body: &str, max_depth: usize) -> Result<Vec<&RawValue>, Rejection> {
    let invalid = |e: serde_json::Error| {
        Rejection::new("invalid_json", format!("body is not valid JSON: {e}"))
    };
    if nesting_exceeds(body, max_depth) {
        return Err(Rejection::new(
            "invalid_json",
            format!("JSON is nested deeper than {max_depth} levels"),
        ));
    }
    if body.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(body).map_err(invalid)?;
        if items.is_empty() {
            return Err(Rejection::new(
                "empty_batch",
                "the JSON array holds no events",
            ));
        }
        Ok(items)
    } else if body.starts_with('{') {
        let item: &RawValue = serde_json::from_str(body).map_err(invalid)?;
        Ok(vec![item])
    } else {
        serde_json::from_str::<serde::de::IgnoredAny>(body).map_err(invalid)?;
        Err(Rejection::new(
            "unsupported_shape",
            "a JSON body must be an object or an array of objects",
        ))
    }
}

/// Deepest JSON nesting accepted. Provider envelopes need fewer than 10.
pub const MAX_JSON_DEPTH: usize = 64;

/// Whether brackets nest deeper than `limit`, scanning bytes (strings and
/// their escapes skipped) so no parser ever recurses on hostile input.
pub(crate) fn nesting_exceeds(json: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in json.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod proptests;

/// Parser options of the unit tests: India's zone and country code.
#[cfg(test)]
pub(crate) fn test_options() -> IngestOptions {
    IngestOptions {
        provider_timezone: chrono_tz::Asia::Kolkata,
        default_country_code: "91".into(),
        max_json_depth: MAX_JSON_DEPTH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_options as opts;

    fn cb<'a>(ct: Option<&'a str>, body: &'a str) -> RawCallback<'a> {
        RawCallback {
            channel: Channel::Sms,
            query: None,
            content_type: ct,
            body: body.as_bytes(),
        }
    }

    #[test]
    fn deeply_nested_json_is_refused_without_overflow() {
        let body = "[".repeat(10_000) + &"]".repeat(10_000);
        let err = parse(cb(Some("application/json"), &body), &opts()).unwrap_err();
        assert_eq!(err.code, "invalid_json");
        let body = "{\"a\":".repeat(10_000) + "1" + &"}".repeat(10_000);
        let err = parse(cb(Some("application/json"), &body), &opts()).unwrap_err();
        assert_eq!(err.code, "invalid_json");
    }

    #[test]
    fn nesting_scan_skips_brackets_inside_strings() {
        assert!(!nesting_exceeds(r#"{"a":"[[[[[[","b":"\\"}"#, 1));
        assert!(nesting_exceeds("[[1]]", 1));
        assert!(!nesting_exceeds("[[1]]", 2));
    }

    #[test]
    fn body_errors_have_codes() {
        let o = opts();
        assert_eq!(
            parse(cb(None, "{nope"), &o).unwrap_err().code,
            "invalid_json"
        );
        assert_eq!(parse(cb(None, "   "), &o).unwrap_err().code, "empty_body");
        assert_eq!(
            parse(cb(Some("application/json"), "42"), &o)
                .unwrap_err()
                .code,
            "unsupported_shape"
        );
        assert_eq!(
            parse(cb(Some("application/xml"), "<a/>"), &o)
                .unwrap_err()
                .code,
            "unsupported_media_type"
        );
        let bad = RawCallback {
            body: b"\xff\xfe",
            ..cb(None, "")
        };
        assert_eq!(parse(bad, &o).unwrap_err().code, "invalid_utf8");
    }

    #[test]
    fn an_inbound_message_is_identified_by_its_id_alone() {
        let c: ClientId = "c".parse().unwrap();
        let first = Event {
            channel: Channel::Whatsapp,
            direction: Direction::Inbound,
            provider_message_id: "wamid.in".into(),
            phone: Some("+919876543210".into()),
            email: None,
            status: Status::Received,
            provider_status: Some("text".into()),
            error_code: None,
            event_at: Some(1),
            text: Some("hi".into()),
            media: None,
            reply_to: None,
            payload: "{}".into(),
        };
        let redelivered = Event {
            event_at: Some(2),
            provider_status: None,
            ..first.clone()
        };
        assert_eq!(first.dedup_key(&c), redelivered.dedup_key(&c));
        let other = Event {
            provider_message_id: "wamid.other".into(),
            ..first.clone()
        };
        assert_ne!(first.dedup_key(&c), other.dedup_key(&c));
        let as_status = Event {
            direction: Direction::Status,
            ..first.clone()
        };
        assert_ne!(first.dedup_key(&c), as_status.dedup_key(&c));
        assert_ne!(
            as_status.dedup_key(&c),
            Event {
                event_at: Some(2),
                ..as_status.clone()
            }
            .dedup_key(&c)
        );
    }

    #[test]
    fn dedup_keys_sort_by_provider_minute() {
        let o = opts();
        let at = |t: &str| {
            let body = format!("logid=z&mobile=919876543210&status=sent&time=2026-01-01 {t}");
            parse(cb(None, &body), &o).unwrap().events.remove(0)
        };
        let c: ClientId = "c".parse().unwrap();
        let (early, late) = (at("10:00:59").dedup_key(&c), at("10:01:00").dedup_key(&c));
        assert!(early < late);
        assert_eq!(early[..4], at("10:00:00").dedup_key(&c)[..4]);
        assert_ne!(early, at("10:00:00").dedup_key(&c));
    }

    #[test]
    fn dedup_key_ignores_receipt_but_not_status_or_time() {
        let o = opts();
        let p = parse(
            cb(
                None,
                "logid=a&mobile=919876543210&status=sent&time=2026-01-01 10:00:00",
            ),
            &o,
        )
        .unwrap();
        let q = parse(
            cb(
                None,
                "logid=a&mobile=919876543210&status=sent&time=2026-01-01 10:00:00&x=1",
            ),
            &o,
        )
        .unwrap();
        let r = parse(
            cb(
                None,
                "logid=a&mobile=919876543210&status=read&time=2026-01-01 10:00:00",
            ),
            &o,
        )
        .unwrap();
        let c: ClientId = "c".parse().unwrap();
        assert_eq!(p.events[0].dedup_key(&c), q.events[0].dedup_key(&c));
        assert_ne!(p.events[0].dedup_key(&c), r.events[0].dedup_key(&c));
    }
}
