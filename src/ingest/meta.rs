//! Meta WhatsApp Cloud API webhooks: `{"object", "entry": [{"changes":
//! [{"value": {...}}]}]}`. One envelope may hold many status reports and
//! inbound messages; each becomes its own event or its own rejection.
//!
//! A `value` with a top-level `errors` list (Meta reporting a problem that is
//! not tied to one message) and a change this receiver does not read (another
//! webhook `field`) are kept as notices: quarantined with codes
//! `provider_error` / `unsupported_change`, answered `200` so that Meta does
//! not retry them for days (docs/providers.md).

use serde_json::{json, Map, Value};

use super::{phone, status, time, Event, IngestOptions, ItemRejection, Parsed, Rejection};
use crate::domain::{Channel, Direction, Status};

/// Message types whose body is a media object with an `id`.
const MEDIA_TYPES: &[&str] = &["image", "document", "audio", "video", "sticker"];

/// Meta's subscription handshake: `GET ?hub.mode=subscribe&hub.verify_token=
/// ...&hub.challenge=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// `subscribe` when Meta registers the webhook.
    pub mode: String,
    /// Must equal the client's `meta_verify_token`.
    pub verify_token: Option<String>,
    /// Echoed back as plain text.
    pub challenge: Option<String>,
}

/// Recognises a query string carrying `hub.mode`.
pub fn verification(query: &str) -> Option<Verification> {
    let mut v = Verification {
        mode: String::new(),
        verify_token: None,
        challenge: None,
    };
    let mut seen = false;
    for (k, value) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "hub.mode" => {
                seen = true;
                v.mode = value.into_owned();
            }
            "hub.verify_token" => v.verify_token = Some(value.into_owned()),
            "hub.challenge" => v.challenge = Some(value.into_owned()),
            _ => {}
        }
    }
    seen.then_some(v)
}

/// Reads a whole envelope into `parsed`. `Err` only when the envelope itself
/// is not one (no `entry` list).
pub(super) fn parse_envelope(
    root: &Map<String, Value>,
    channel: Channel,
    opts: &IngestOptions,
    parsed: &mut Parsed,
) -> Result<(), Rejection> {
    let entries = root.get("entry").and_then(Value::as_array).ok_or_else(|| {
        Rejection::new("unsupported_shape", "a Meta envelope needs an `entry` list")
    })?;
    for entry in entries {
        let Some(changes) = entry.get("changes").and_then(Value::as_array) else {
            parsed.rejects.push(ItemRejection::new(
                "unsupported_shape",
                "a Meta entry needs a `changes` list",
                entry.to_string(),
            ));
            continue;
        };
        for change in changes {
            match change.get("value").and_then(Value::as_object) {
                Some(value) => parse_value(value, change, channel, opts, parsed),
                None => parsed.rejects.push(ItemRejection::new(
                    "unsupported_shape",
                    "a Meta change needs a `value` object",
                    change.to_string(),
                )),
            }
        }
    }
    Ok(())
}

fn parse_value(
    value: &Map<String, Value>,
    change: &Value,
    channel: Channel,
    opts: &IngestOptions,
    parsed: &mut Parsed,
) {
    let statuses = value.get("statuses").and_then(Value::as_array);
    let messages = value.get("messages").and_then(Value::as_array);
    let contacts = value.get("contacts").and_then(Value::as_array);
    let metadata = value.get("metadata");
    for item in statuses.into_iter().flatten() {
        parsed.push(status_event(item, metadata, channel, opts));
    }
    for item in messages.into_iter().flatten() {
        parsed.push(inbound_event(item, metadata, contacts, channel, opts));
    }
    if let Some(errors) = value.get("errors").and_then(Value::as_array) {
        let summary: Vec<String> = errors.iter().map(error_summary).collect();
        parsed.notices.push(ItemRejection::new(
            "provider_error",
            format!("Meta reported errors: {}", summary.join("; ")),
            Value::Object(value.clone()).to_string(),
        ));
    } else if statuses.is_none() && messages.is_none() {
        let field = change.get("field").and_then(Value::as_str).unwrap_or("");
        parsed.notices.push(ItemRejection::new(
            "unsupported_change",
            format!("Meta change `{field}` holds no statuses, messages or errors"),
            change.to_string(),
        ));
    }
}

fn error_summary(error: &Value) -> String {
    let code = scalar(error.get("code")).unwrap_or_default();
    let title = error
        .get("title")
        .or_else(|| error.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{code} {title}").trim().to_string()
}

/// A string or number as text.
fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The fields every Meta item shares: id, phone (a WhatsApp id is digits with
/// the country code), time (Unix seconds as a string).
struct Common {
    id: String,
    phone: String,
    event_at: Option<i64>,
}

fn common(item: &Value, phone_key: &str, opts: &IngestOptions) -> Result<Common, ItemRejection> {
    let reject = |code, message: &str| ItemRejection::new(code, message, item.to_string());
    if !item.is_object() {
        return Err(reject(
            "unsupported_shape",
            "each Meta status or message must be an object",
        ));
    }
    let id = scalar(item.get("id"))
        .ok_or_else(|| reject("missing_message_id", "the Meta item has no `id`"))?;
    let raw_phone = scalar(item.get(phone_key)).ok_or_else(|| {
        reject(
            "missing_recipient",
            &format!("the Meta item has no `{phone_key}`"),
        )
    })?;
    let international = if raw_phone.starts_with('+') {
        raw_phone
    } else {
        format!("+{raw_phone}")
    };
    let phone = phone::to_e164(&international, &opts.default_country_code).ok_or_else(|| {
        reject(
            "invalid_phone",
            &format!("`{phone_key}` is not a phone number"),
        )
    })?;
    let event_at = match scalar(item.get("timestamp")) {
        Some(raw) => Some(
            time::parse_provider_time(&raw, opts.provider_timezone)
                .ok_or_else(|| reject("invalid_time", "`timestamp` is not Unix seconds"))?,
        ),
        None => None,
    };
    Ok(Common {
        id,
        phone,
        event_at,
    })
}

/// The stored payload: the item as received, plus the value's `metadata`
/// (which business number it concerns) and, for an inbound message, the
/// sender's `contacts[]` entry as `contact`.
fn payload(item: &Value, metadata: Option<&Value>, contact: Option<&Value>) -> String {
    let mut payload = item.clone();
    if let Some(map) = payload.as_object_mut() {
        for (key, extra) in [("metadata", metadata), ("contact", contact)] {
            if let Some(extra) = extra {
                map.insert(key.into(), extra.clone());
            }
        }
    }
    payload.to_string()
}

fn status_event(
    item: &Value,
    metadata: Option<&Value>,
    channel: Channel,
    opts: &IngestOptions,
) -> Result<Event, ItemRejection> {
    let c = common(item, "recipient_id", opts)?;
    let provider_status = scalar(item.get("status"));
    let first_error = item
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|e| e.first());
    Ok(Event {
        channel,
        direction: Direction::Status,
        provider_message_id: c.id,
        phone: Some(c.phone),
        email: None,
        status: provider_status
            .as_deref()
            .map_or(Status::Unknown, status::normalize),
        provider_status,
        error_code: first_error.and_then(|e| scalar(e.get("code"))),
        event_at: c.event_at,
        text: first_error
            .and_then(|e| e.get("title").or_else(|| e.get("message")))
            .and_then(Value::as_str)
            .map(str::to_string),
        media: None,
        reply_to: None,
        payload: payload(item, metadata, None),
    })
}

fn inbound_event(
    item: &Value,
    metadata: Option<&Value>,
    contacts: Option<&Vec<Value>>,
    channel: Channel,
    opts: &IngestOptions,
) -> Result<Event, ItemRejection> {
    let c = common(item, "from", opts)?;
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
    let body = item.get(kind);
    let text = match kind {
        "text" => str_at(item, &["text", "body"]),
        "button" => str_at(item, &["button", "payload"]).or(str_at(item, &["button", "text"])),
        "interactive" => str_at(item, &["interactive", "button_reply", "id"])
            .or(str_at(item, &["interactive", "list_reply", "id"]))
            .or(str_at(item, &["interactive", "nfm_reply", "response_json"])),
        "reaction" => str_at(item, &["reaction", "emoji"]),
        _ => body.and_then(|b| b.get("caption")).and_then(Value::as_str),
    };
    let media = match (kind, body) {
        (k, Some(b)) if MEDIA_TYPES.contains(&k) => Some(media_reference(k, b)),
        ("location", Some(b)) => Some(location_reference(b)),
        _ => None,
    };
    let reply_to = str_at(item, &["context", "id"]).or(str_at(item, &["reaction", "message_id"]));
    let contact = contacts
        .into_iter()
        .flatten()
        .find(|ct| scalar(ct.get("wa_id")) == scalar(item.get("from")));
    Ok(Event {
        channel,
        direction: Direction::Inbound,
        provider_message_id: c.id,
        phone: Some(c.phone),
        email: None,
        status: Status::Received,
        provider_status: (!kind.is_empty()).then(|| kind.to_string()),
        error_code: item
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
            .and_then(|e| scalar(e.get("code"))),
        event_at: c.event_at,
        text: text.map(str::to_string),
        media,
        reply_to: reply_to.map(str::to_string),
        payload: payload(item, metadata, contact),
    })
}

/// `{"type","id","mime_type"[,"filename"]}`: enough to fetch the media from
/// Meta later; the bytes themselves are never downloaded.
fn media_reference(kind: &str, body: &Value) -> String {
    let mut r = Map::new();
    r.insert("type".into(), json!(kind));
    for key in ["id", "mime_type", "filename", "sha256"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            r.insert(key.into(), v.clone());
        }
    }
    Value::Object(r).to_string()
}

fn location_reference(body: &Value) -> String {
    let mut r = Map::new();
    r.insert("type".into(), json!("location"));
    for key in ["latitude", "longitude", "name", "address", "url"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            r.insert(key.into(), v.clone());
        }
    }
    Value::Object(r).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ingest::test_options as opts;

    fn parse(value: Value) -> Parsed {
        parse_root(json!({"object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}))
    }

    fn parse_root(root: Value) -> Parsed {
        let mut parsed = Parsed::default();
        parse_envelope(
            root.as_object().unwrap(),
            Channel::Whatsapp,
            &opts(),
            &mut parsed,
        )
        .unwrap();
        parsed
    }

    fn inbound(message: Value) -> Event {
        let mut p = parse(json!({"messages": [message]}));
        assert!(p.rejects.is_empty(), "{:?}", p.rejects);
        p.events.remove(0)
    }

    #[test]
    fn media_messages_keep_a_reference_and_the_caption() {
        let e = inbound(
            json!({"from": "919876543210", "id": "wamid.1", "timestamp": "1694427240",
            "type": "image", "image": {"id": "m1", "mime_type": "image/jpeg", "sha256": "x", "caption": "bill"}}),
        );
        assert_eq!(e.direction, Direction::Inbound);
        assert_eq!(e.status, Status::Received);
        assert_eq!(e.text.as_deref(), Some("bill"));
        let media: Value = serde_json::from_str(e.media.as_deref().unwrap()).unwrap();
        assert_eq!(
            media,
            json!({"type": "image", "id": "m1", "mime_type": "image/jpeg", "sha256": "x"})
        );
        assert_eq!(e.event_at, Some(1_694_427_240_000));
        for kind in ["document", "audio", "video", "sticker"] {
            let e = inbound(json!({"from": "919876543210", "id": "w", "type": kind,
                kind: {"id": "m2", "mime_type": "application/pdf", "filename": "a.pdf"}}));
            let media: Value = serde_json::from_str(e.media.as_deref().unwrap()).unwrap();
            assert_eq!(media["type"], kind);
            assert_eq!(media["id"], "m2");
            assert_eq!(media["mime_type"], "application/pdf");
        }
    }

    #[test]
    fn location_list_reply_and_reaction_are_read() {
        let e = inbound(
            json!({"from": "919876543210", "id": "w1", "type": "location",
            "location": {"latitude": 12.97, "longitude": 77.59, "name": "Office"}}),
        );
        let media: Value = serde_json::from_str(e.media.as_deref().unwrap()).unwrap();
        assert_eq!(
            media,
            json!({"type": "location", "latitude": 12.97, "longitude": 77.59, "name": "Office"})
        );
        let e = inbound(
            json!({"from": "919876543210", "id": "w2", "type": "interactive",
            "context": {"id": "wamid.out"},
            "interactive": {"type": "list_reply", "list_reply": {"id": "row-2", "title": "Two"}}}),
        );
        assert_eq!(e.text.as_deref(), Some("row-2"));
        assert_eq!(e.reply_to.as_deref(), Some("wamid.out"));
        let e = inbound(
            json!({"from": "919876543210", "id": "w3", "type": "reaction",
            "reaction": {"message_id": "wamid.out", "emoji": "👍"}}),
        );
        assert_eq!(e.text.as_deref(), Some("👍"));
        assert_eq!(e.reply_to.as_deref(), Some("wamid.out"));
    }

    #[test]
    fn the_senders_contact_and_the_business_number_are_kept_in_the_payload() {
        let mut p = parse(json!({
            "metadata": {"phone_number_id": "1148"},
            "contacts": [{"profile": {"name": "Asha"}, "wa_id": "919876543210"}],
            "messages": [{"from": "919876543210", "id": "w", "type": "text", "text": {"body": "hi"}}]}));
        let payload: Value = serde_json::from_str(&p.events.remove(0).payload).unwrap();
        assert_eq!(payload["contact"]["profile"]["name"], "Asha");
        assert_eq!(payload["text"]["body"], "hi");
        assert_eq!(payload["metadata"]["phone_number_id"], "1148");
    }

    #[test]
    fn a_value_with_only_errors_is_a_notice_not_a_silent_drop() {
        let p = parse(json!({"errors": [{"code": 131000, "title": "Something went wrong"}]}));
        assert!(p.events.is_empty() && p.rejects.is_empty());
        assert_eq!(p.notices.len(), 1);
        assert_eq!(p.notices[0].rejection.code, "provider_error");
        assert!(p.notices[0].rejection.message.contains("131000"));
        assert!(p.notices[0].raw.contains("Something went wrong"));
    }

    #[test]
    fn other_change_fields_are_notices() {
        let p = parse(json!({"event": "APPROVED", "message_template_id": 1}));
        assert_eq!(p.notices[0].rejection.code, "unsupported_change");
    }

    #[test]
    fn bad_items_are_rejected_one_by_one() {
        let p = parse(json!({"statuses": [
            {"id": "w1", "status": "sent", "recipient_id": "919876543210", "timestamp": "1694492482"},
            {"status": "sent", "recipient_id": "919876543210"},
            {"id": "w3", "status": "sent"},
            {"id": "w4", "status": "sent", "recipient_id": "abc"},
            {"id": "w5", "status": "sent", "recipient_id": "919876543210", "timestamp": "soon"},
            7
        ]}));
        assert_eq!(p.events.len(), 1);
        let codes: Vec<&str> = p.rejects.iter().map(|r| r.rejection.code).collect();
        assert_eq!(
            codes,
            [
                "missing_message_id",
                "missing_recipient",
                "invalid_phone",
                "invalid_time",
                "unsupported_shape"
            ]
        );
    }

    #[test]
    fn the_hub_handshake_is_recognised_by_hub_mode() {
        let v = verification("hub.mode=subscribe&hub.verify_token=a%20b&hub.challenge=1158201444")
            .unwrap();
        assert_eq!(v.mode, "subscribe");
        assert_eq!(v.verify_token.as_deref(), Some("a b"));
        assert_eq!(v.challenge.as_deref(), Some("1158201444"));
        assert_eq!(verification("logid=1&status=sent"), None);
    }

    #[test]
    fn an_entry_without_changes_is_rejected_while_its_neighbours_are_read() {
        let root = json!({"object": "x", "entry": [
            {"id": "1"},
            {"changes": [{"value": {"statuses": [
                {"id": "w", "status": "read", "recipient_id": "919876543210"}]}}]}]});
        let parsed = parse_root(root);
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(parsed.rejects[0].rejection.code, "unsupported_shape");
        assert_eq!(parsed.rejects[0].raw, r#"{"id":"1"}"#);
    }

    #[test]
    fn an_envelope_without_entries_is_refused() {
        let root = json!({"object": "whatsapp_business_account", "entry": 3});
        let err = parse_envelope(
            root.as_object().unwrap(),
            Channel::Whatsapp,
            &opts(),
            &mut Parsed::default(),
        )
        .unwrap_err();
        assert_eq!(err.code, "unsupported_shape");
    }
}
