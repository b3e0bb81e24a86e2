//! Google RCS Business Messaging push bodies: `{"message": {"data":
//! base64(JSON), "attributes", "messageId", "publishTime"}, "subscription"}`.
//! The decoded data is a UserEvent (`eventType`: DELIVERED, READ, IS_TYPING)
//! or a UserMessage (`text`, `suggestionResponse`, `userFile`, `location`).
//!
//! `IS_TYPING` is answered `200` and stored nowhere: it says nothing about a
//! message's state. The stored payload is the envelope with `message.data`
//! replaced by the decoded JSON, so it can be read without decoding.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::{nesting_exceeds, phone, status, time, Event, IngestOptions, ItemRejection, Parsed};
use crate::domain::{Channel, Direction, Status};

/// The verification request RBM sends when a webhook is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Must equal the client's `rbm_client_token`.
    pub client_token: String,
    /// Echoed back as plain text.
    pub secret: String,
}

/// Recognises `{"clientToken": "...", "secret": "..."}`.
pub fn verification(body: &[u8]) -> Option<Verification> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Raw {
        client_token: String,
        secret: String,
    }
    let raw: Raw = serde_json::from_slice(body).ok()?;
    Some(Verification {
        client_token: raw.client_token,
        secret: raw.secret,
    })
}

/// Whether an item looks like a push body: `message` is an object with `data`.
pub(super) fn is_push(root: &Map<String, Value>) -> bool {
    root.get("message")
        .and_then(|m| m.get("data"))
        .is_some_and(Value::is_string)
}

/// Reads one push body into `parsed`.
pub(super) fn parse_push(
    root: &Map<String, Value>,
    channel: Channel,
    opts: &IngestOptions,
    parsed: &mut Parsed,
) {
    let envelope = Value::Object(root.clone());
    let reject = |code, message: &str| ItemRejection::new(code, message, envelope.to_string());
    let encoded = root
        .get("message")
        .and_then(|m| m.get("data"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some(decoded) = decode_base64(encoded) else {
        return parsed
            .rejects
            .push(reject("invalid_base64", "`message.data` is not base64"));
    };
    let Ok(text) = std::str::from_utf8(&decoded) else {
        return parsed.rejects.push(reject(
            "invalid_utf8",
            "decoded `message.data` is not UTF-8",
        ));
    };
    if nesting_exceeds(text, opts.max_json_depth) {
        return parsed.rejects.push(reject(
            "invalid_json",
            "decoded `message.data` is nested too deeply",
        ));
    }
    let data = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(data)) => data,
        _ => {
            return parsed.rejects.push(reject(
                "invalid_json",
                "decoded `message.data` is not a JSON object",
            ))
        }
    };
    let mut payload = envelope.clone();
    payload["message"]["data"] = Value::Object(data.clone());
    let payload = payload.to_string();
    let reject = |code, message: &str| ItemRejection::new(code, message, payload.clone());
    let event_type = data.get("eventType").and_then(Value::as_str);
    if event_type.is_some_and(|t| t.eq_ignore_ascii_case("IS_TYPING")) {
        parsed.ignored += 1;
        return;
    }
    let Some(id) = data
        .get("messageId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return parsed.rejects.push(reject(
            "missing_message_id",
            "the RBM data has no `messageId`",
        ));
    };
    let Some(raw_phone) = data.get("senderPhoneNumber").and_then(Value::as_str) else {
        return parsed.rejects.push(reject(
            "missing_recipient",
            "the RBM data has no `senderPhoneNumber`",
        ));
    };
    let Some(phone) = phone::to_e164(raw_phone, &opts.default_country_code) else {
        return parsed.rejects.push(reject(
            "invalid_phone",
            "`senderPhoneNumber` is not a phone number",
        ));
    };
    let event_at = match data.get("sendTime").and_then(Value::as_str) {
        Some(raw) => match time::parse_provider_time(raw, opts.provider_timezone) {
            Some(at) => Some(at),
            None => {
                return parsed
                    .rejects
                    .push(reject("invalid_time", "`sendTime` is not an RFC 3339 time"))
            }
        },
        None => None,
    };
    let mut event = Event {
        channel,
        direction: Direction::Status,
        provider_message_id: id.to_string(),
        phone: Some(phone),
        email: None,
        status: Status::Unknown,
        provider_status: None,
        error_code: None,
        event_at,
        text: None,
        media: None,
        reply_to: None,
        payload: payload.clone(),
    };
    if let Some(word) = event_type {
        event.status = status::normalize(word);
        event.provider_status = Some(word.to_string());
    } else {
        read_user_message(&data, &mut event);
    }
    parsed.events.push(event);
}

/// Fills an inbound event from a UserMessage.
fn read_user_message(data: &Map<String, Value>, event: &mut Event) {
    event.direction = Direction::Inbound;
    event.status = Status::Received;
    let str_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    if let Some(text) = data.get("text").and_then(Value::as_str) {
        event.provider_status = Some("text".into());
        event.text = Some(text.to_string());
    } else if let Some(s) = data.get("suggestionResponse") {
        event.provider_status = Some("suggestionResponse".into());
        event.text = str_at(s, "postbackData").or_else(|| str_at(s, "text"));
    } else if let Some(file) = data.get("userFile") {
        event.provider_status = Some("userFile".into());
        let p = file.get("payload").unwrap_or(&Value::Null);
        event.media = Some(
            json!({"type": "file", "uri": p.get("fileUri"), "mime_type": p.get("mimeType"),
                   "name": p.get("fileName"), "size": p.get("fileSizeBytes")})
            .to_string(),
        );
    } else if let Some(loc) = data.get("location") {
        event.provider_status = Some("location".into());
        event.media = Some(
            json!({"type": "location", "latitude": loc.get("latitude"),
                   "longitude": loc.get("longitude")})
            .to_string(),
        );
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    STANDARD
        .decode(s.trim())
        .or_else(|_| URL_SAFE.decode(s.trim()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ingest::test_options as opts;

    fn push(data: &str) -> Parsed {
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        let root = json!({"message": {"data": encoded, "messageId": "1"}, "subscription": "s"});
        let mut parsed = Parsed::default();
        parse_push(
            root.as_object().unwrap(),
            Channel::Rcs,
            &opts(),
            &mut parsed,
        );
        parsed
    }

    #[test]
    fn is_typing_is_counted_as_ignored_and_not_stored() {
        let p = push(
            r#"{"senderPhoneNumber":"+919876543210","eventType":"IS_TYPING","eventId":"e","sendTime":"2026-05-28T13:58:05Z"}"#,
        );
        assert!(p.events.is_empty() && p.rejects.is_empty());
        assert_eq!(p.ignored, 1);
    }

    #[test]
    fn read_events_and_suggestion_responses() {
        let p = push(
            r#"{"senderPhoneNumber":"+919876543210","eventType":"READ","messageId":"m1","sendTime":"2026-05-28T13:58:05.5Z"}"#,
        );
        assert_eq!(p.events[0].status, Status::Read);
        assert_eq!(p.events[0].event_at, Some(1_779_976_685_500));
        let p = push(
            r#"{"senderPhoneNumber":"+919876543210","messageId":"m2","suggestionResponse":{"postbackData":"yes_please","text":"Yes","type":"REPLY"}}"#,
        );
        assert_eq!(p.events[0].direction, Direction::Inbound);
        assert_eq!(p.events[0].text.as_deref(), Some("yes_please"));
    }

    #[test]
    fn user_files_and_locations_become_media_references() {
        let p = push(
            r#"{"senderPhoneNumber":"+919876543210","messageId":"m3","userFile":{"payload":{"mimeType":"image/png","fileSizeBytes":10,"fileUri":"https://rcs.example/f","fileName":"a.png"}}}"#,
        );
        let media: Value = serde_json::from_str(p.events[0].media.as_deref().unwrap()).unwrap();
        assert_eq!(media["uri"], "https://rcs.example/f");
        assert_eq!(media["mime_type"], "image/png");
        let p = push(
            r#"{"senderPhoneNumber":"+919876543210","messageId":"m4","location":{"latitude":1.5,"longitude":2.5}}"#,
        );
        let media: Value = serde_json::from_str(p.events[0].media.as_deref().unwrap()).unwrap();
        assert_eq!(
            media,
            json!({"type": "location", "latitude": 1.5, "longitude": 2.5})
        );
    }

    #[test]
    fn broken_data_is_rejected_with_a_code() {
        let codes = |data: &str| -> Vec<&'static str> {
            push(data)
                .rejects
                .iter()
                .map(|r| r.rejection.code)
                .collect()
        };
        assert_eq!(codes("not json"), ["invalid_json"]);
        assert_eq!(codes(r#"{"eventType":"READ"}"#), ["missing_message_id"]);
        assert_eq!(
            codes(r#"{"eventType":"READ","messageId":"m"}"#),
            ["missing_recipient"]
        );
        assert_eq!(
            codes(
                r#"{"eventType":"READ","messageId":"m","senderPhoneNumber":"+91","sendTime":"x"}"#
            ),
            ["invalid_phone"]
        );
        let root = json!({"message": {"data": "@@@"}});
        let mut parsed = Parsed::default();
        parse_push(
            root.as_object().unwrap(),
            Channel::Rcs,
            &opts(),
            &mut parsed,
        );
        assert_eq!(parsed.rejects[0].rejection.code, "invalid_base64");
    }

    #[test]
    fn verification_needs_exactly_client_token_and_secret() {
        let v = verification(br#"{"clientToken":"t","secret":"s"}"#).unwrap();
        assert_eq!(v.client_token, "t");
        assert_eq!(v.secret, "s");
        assert_eq!(verification(br#"{"clientToken":"t"}"#), None);
        assert_eq!(
            verification(br#"{"clientToken":"t","secret":"s","x":1}"#),
            None
        );
    }
}
