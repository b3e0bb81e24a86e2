//! Property tests: no input makes the parsers panic, and every input yields
//! events (or notices) or a rejection with a reason.

use base64::Engine;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

use super::test_options as opts;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("id"),
            Just("status"),
            Just("logid"),
            Just("919876543210"),
            Just("1694492482"),
            Just("2026-05-28T13:58:05Z"),
            Just("DELIVRD"),
            Just("id:a stat:DELIVRD err:000 done date:2605281002"),
        ]
        .prop_map(|s| json!(s)),
    ];
    let keys = prop_oneof![
        "\\PC{0,6}",
        prop_oneof![
            Just("object"),
            Just("entry"),
            Just("changes"),
            Just("value"),
            Just("statuses"),
            Just("messages"),
            Just("errors"),
            Just("contacts"),
            Just("id"),
            Just("status"),
            Just("recipient_id"),
            Just("from"),
            Just("timestamp"),
            Just("type"),
            Just("text"),
            Just("logid"),
            Just("mobile"),
            Just("time"),
            Just("message"),
            Just("data"),
        ]
        .prop_map(str::to_string),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The property: a rejection with a code and a message, or a non-empty result
/// whose events all carry a message id.
fn check(body: &[u8], content_type: Option<&str>) {
    let raw = RawCallback {
        channel: Channel::Whatsapp,
        query: Some(""),
        content_type,
        body,
    };
    match parse(raw, &opts()) {
        Err(r) => assert!(!r.code.is_empty() && !r.message.is_empty()),
        Ok(p) => {
            assert!(
                !p.events.is_empty()
                    || !p.rejects.is_empty()
                    || !p.notices.is_empty()
                    || p.ignored > 0
            );
            assert!(p.events.iter().all(|e| !e.provider_message_id.is_empty()));
            assert!(p
                .rejects
                .iter()
                .chain(&p.notices)
                .all(|r| !r.rejection.code.is_empty()));
        }
    }
}

const TYPES: [Option<&str>; 4] = [
    None,
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("text/plain"),
];

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), t in 0..4usize) {
        check(&body, TYPES[t]);
    }

    #[test]
    fn arbitrary_text_never_panics(body in "\\PC{0,300}", t in 0..4usize) {
        check(body.as_bytes(), TYPES[t]);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        check(v.to_string().as_bytes(), Some("application/json"));
        check(json!([v.clone(), v.clone()]).to_string().as_bytes(), None);
    }

    #[test]
    fn arbitrary_json_inside_a_meta_envelope_never_panics(v in json_value(), w in json_value()) {
        let bodies = [
            json!({"object": "whatsapp_business_account", "entry": v.clone()}),
            json!({"object": "x", "entry": [{"changes": [{"value": v.clone()}]}]}),
            json!({"object": "x", "entry": [{"changes": [{"value": {"statuses": [v.clone()], "messages": [w.clone()]}}]}]}),
            json!({"object": "x", "entry": [{"changes": [{"value": {"messages": [{"id": "w", "from": "919876543210", "type": "text", "text": v.clone(), "context": w.clone()}]}}]}]}),
        ];
        for body in bodies {
            check(body.to_string().as_bytes(), Some("application/json"));
        }
    }

    #[test]
    fn arbitrary_json_inside_an_rbm_push_never_panics(v in json_value()) {
        let data = base64::engine::general_purpose::STANDARD.encode(v.to_string());
        let body = json!({"message": {"data": data, "messageId": "1"}, "subscription": "s"});
        check(body.to_string().as_bytes(), None);
        let mut tagged = json!({"messageId": "m", "senderPhoneNumber": "+919876543210", "eventType": v.clone(), "text": v.clone(), "sendTime": v});
        tagged["suggestionResponse"] = tagged["text"].clone();
        let data = base64::engine::general_purpose::STANDARD.encode(tagged.to_string());
        let body = json!({"message": {"data": data}});
        check(body.to_string().as_bytes(), None);
    }

    #[test]
    fn arbitrary_smpp_receipts_never_panic(parts in prop::collection::vec(("(id|sub|dlvrd|submit date|done date|stat|err|text|ID|Stat)", "\\PC{0,12}"), 0..8)) {
        let receipt: String = std::iter::once("id:x".to_string())
            .chain(parts.iter().map(|(k, v)| format!(" {k}:{v}")))
            .collect();
        check(receipt.as_bytes(), Some("text/plain"));
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("receipt", &receipt)
            .finish();
        check(form.as_bytes(), None);
    }
}

#[test]
fn ten_thousand_levels_inside_meta_or_rbm_are_refused_without_overflow() {
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let meta = format!(r#"{{"object":"x","entry":{deep}}}"#);
    let err = parse(
        RawCallback {
            channel: Channel::Whatsapp,
            query: None,
            content_type: Some("application/json"),
            body: meta.as_bytes(),
        },
        &opts(),
    )
    .unwrap_err();
    assert_eq!(err.code, "invalid_json");
    let data = base64::engine::general_purpose::STANDARD.encode(&deep);
    let rbm = json!({"message": {"data": data}}).to_string();
    let p = parse(
        RawCallback {
            channel: Channel::Rcs,
            query: None,
            content_type: Some("application/json"),
            body: rbm.as_bytes(),
        },
        &opts(),
    )
    .unwrap();
    assert_eq!(p.rejects[0].rejection.code, "invalid_json");
}
