//! Every provider shape in tests/fixtures/payloads, posted the way its
//! provider sends it, lands as the expected rows; Base16 bodies, partial
//! batches and hostile bodies are handled without a crash.

use authkey_receiver::config::BodyEncoding;
use authkey_receiver::ingest::status::STATUS_WORDS;
use serde_json::{json, Value};

use crate::helpers::{fixture, json_with_status, spawn_app, spawn_app_with, TestApp};

/// One `events` row, the columns these tests check.
#[derive(Debug, PartialEq)]
struct Row {
    channel: String,
    direction: String,
    id: String,
    phone: Option<String>,
    status: String,
    provider_status: Option<String>,
    error_code: Option<String>,
    event_at: Option<i64>,
    text: Option<String>,
    media: Option<String>,
    reply_to: Option<String>,
}

fn rows(app: &TestApp) -> Vec<Row> {
    app.db()
        .rows(
            "SELECT channel, direction, provider_message_id, phone, status, provider_status, \
             error_code, event_at, text, media, reply_to FROM events ORDER BY id",
            &[],
        )
        .into_iter()
        .map(
            |(
                channel,
                direction,
                id,
                phone,
                status,
                provider_status,
                error_code,
                event_at,
                text,
                media,
                reply_to,
            )| Row {
                channel,
                direction,
                id,
                phone,
                status,
                provider_status,
                error_code,
                event_at,
                text,
                media,
                reply_to,
            },
        )
        .collect()
}

fn quarantine(app: &TestApp) -> Vec<(String, Option<String>, Vec<u8>)> {
    app.db().rows(
        "SELECT code, content_type, body FROM rejected ORDER BY id",
        &[],
    )
}

fn payload(app: &TestApp, id: &str) -> Value {
    let text: String = app.db().one(
        "SELECT payload FROM events WHERE provider_message_id = ?1",
        &[id.into()],
    );
    serde_json::from_str(&text).unwrap()
}

const WAMID_SENT: &str = "wamid.HBgLNjAxNzM1MjYyMzMVAgARGBJCNkY5NTBENEU3ODYxQTM3RUQA";
const WAMID_FAILED: &str = "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSMTIzNDU2Nzg5MEFCQ0RFRgA=";

#[tokio::test]
async fn meta_status_envelope_becomes_one_event_per_status_with_the_failure_code() {
    let app = spawn_app().await;
    let resp = app
        .post_json("whatsapp", &fixture("meta-status.json"))
        .await;
    let body = json_with_status(resp, 200).await;
    assert_eq!(body, json!({"accepted": 3, "duplicates": 0, "rejected": 0}));
    let rows = rows(&app);
    let summary: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                r.status.as_str(),
                r.phone.as_deref(),
                r.event_at,
                r.error_code.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                WAMID_SENT,
                "sent",
                Some("+60123456789"),
                Some(1_694_492_482_000),
                None
            ),
            (
                WAMID_SENT,
                "delivered",
                Some("+60123456789"),
                Some(1_694_492_490_000),
                None
            ),
            (
                WAMID_FAILED,
                "failed",
                Some("+919876543210"),
                Some(1_694_492_501_000),
                Some("131026")
            ),
        ]
    );
    assert!(rows.iter().all(|r| r.direction == "status"));
    assert!(rows.iter().all(|r| r.channel == "whatsapp"));
    assert_eq!(rows[2].text.as_deref(), Some("Message undeliverable"));
    let kept = payload(&app, WAMID_FAILED);
    assert_eq!(kept["errors"][0]["code"], 131026);
    assert_eq!(kept["metadata"]["phone_number_id"], "114896151713920");
    let state: Vec<(String, String, Option<String>, i64)> = app.db().rows(
        "SELECT provider_message_id, status, error_code, event_count FROM messages ORDER BY id",
        &[],
    );
    assert_eq!(
        state,
        [
            (WAMID_SENT.into(), "delivered".into(), None, 2),
            (
                WAMID_FAILED.into(),
                "failed".into(),
                Some("131026".into()),
                1
            ),
        ]
    );
}

#[tokio::test]
async fn meta_inbound_text_is_stored_inbound_with_its_text_and_sender() {
    let app = spawn_app().await;
    let resp = app
        .post_json("whatsapp", &fixture("meta-inbound-text.json"))
        .await;
    assert_eq!(json_with_status(resp, 200).await["accepted"], 1);
    let rows = rows(&app);
    assert_eq!(
        rows,
        [Row {
            channel: "whatsapp".into(),
            direction: "inbound".into(),
            id: "wamid.HBgLNjAxNzM1MjYyMzMVAgASGBQzQUI0NkE4NjM1QTU2NjVGOURGQgA=".into(),
            phone: Some("+60123456789".into()),
            status: "received".into(),
            provider_status: Some("text".into()),
            error_code: None,
            event_at: Some(1_694_427_240_000),
            text: Some("Call me back on 9876543210 please".into()),
            media: None,
            reply_to: None,
        }]
    );
    let p = payload(&app, &rows[0].id);
    assert_eq!(p["contact"]["profile"]["name"], "Asha Rao");
    // A redelivery of the same inbound message is a duplicate.
    let resp = app
        .post_json("whatsapp", &fixture("meta-inbound-text.json"))
        .await;
    assert_eq!(
        json_with_status(resp, 200).await,
        json!({"accepted": 0, "duplicates": 1, "rejected": 0})
    );
}

#[tokio::test]
async fn meta_button_and_button_reply_keep_the_action_and_the_message_they_answer() {
    let app = spawn_app().await;
    let resp = app
        .post_json("whatsapp", &fixture("meta-inbound-button.json"))
        .await;
    assert_eq!(json_with_status(resp, 200).await["accepted"], 2);
    let rows = rows(&app);
    let original = "wamid.HBgMOTE4ODY2MjMwNjYzFQIAERgSNzc2RUEzMEQwQUQ1NzhGNjZCAA==";
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.direction.as_str(),
                r.provider_status.as_deref(),
                r.text.as_deref(),
                r.reply_to.as_deref(),
                r.event_at,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "inbound",
                Some("button"),
                Some("approve_67_schedule"),
                Some(original),
                Some(1_771_855_045_000)
            ),
            (
                "inbound",
                Some("interactive"),
                Some("cancel-button"),
                Some(original),
                Some(1_771_855_060_000)
            ),
        ]
    );
    assert!(rows
        .iter()
        .all(|r| r.phone.as_deref() == Some("+918866230663")));
}

#[tokio::test]
async fn meta_inbound_image_keeps_a_media_reference() {
    let app = spawn_app().await;
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messages": [{"from": "919876543210", "id": "wamid.img", "timestamp": "1694427240", "type": "image",
                      "image": {"id": "1479537139650973", "mime_type": "image/jpeg", "caption": "invoice"}}]}}]}]});
    let resp = app.post_json("whatsapp", &body.to_string()).await;
    json_with_status(resp, 200).await;
    let row = &rows(&app)[0];
    let media: Value = serde_json::from_str(row.media.as_deref().unwrap()).unwrap();
    assert_eq!(
        media,
        json!({"type": "image", "id": "1479537139650973", "mime_type": "image/jpeg"})
    );
    assert_eq!(row.text.as_deref(), Some("invoice"));
}

#[tokio::test]
async fn a_meta_value_holding_only_errors_is_quarantined_as_provider_error_and_answered_200() {
    let app = spawn_app().await;
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "errors": [{"code": 131000, "title": "Something went wrong", "message": "Something went wrong"}]}}]}]});
    let resp = app.post_json("whatsapp", &body.to_string()).await;
    assert_eq!(
        json_with_status(resp, 200).await,
        json!({"accepted": 0, "duplicates": 0, "rejected": 1})
    );
    let q = quarantine(&app);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].0, "provider_error");
    let kept: Value = serde_json::from_slice(&q[0].2).unwrap();
    assert_eq!(kept["errors"][0]["code"], 131000);
    let reason: String = app.db().one("SELECT reason FROM rejected", &[]);
    assert!(reason.contains("131000 Something went wrong"), "{reason}");
    assert_eq!(app.count("events"), 0);
}

#[tokio::test]
async fn a_meta_envelope_with_one_bad_status_stores_the_rest_and_quarantines_that_one() {
    let app = spawn_app().await;
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
    "statuses": [
        {"id": "wamid.ok", "status": "read", "timestamp": "1694492482", "recipient_id": "919876543210"},
        {"status": "read", "timestamp": "1694492482", "recipient_id": "919876543211"}
    ]}}]}]});
    let resp = app.post_json("whatsapp", &body.to_string()).await;
    assert_eq!(
        json_with_status(resp, 200).await,
        json!({"accepted": 1, "duplicates": 0, "rejected": 1})
    );
    let q = quarantine(&app);
    assert_eq!(q[0].0, "missing_message_id");
    let item: Value = serde_json::from_slice(&q[0].2).unwrap();
    assert_eq!(item["recipient_id"], "919876543211");
    assert_eq!(rows(&app)[0].id, "wamid.ok");
}

#[tokio::test]
async fn a_meta_envelope_whose_only_status_is_bad_is_400() {
    let app = spawn_app().await;
    let body = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "statuses": [{"id": "wamid.x", "status": "read", "recipient_id": "919876543210", "timestamp": "later"}]}}]}]});
    let err = json_with_status(app.post_json("whatsapp", &body.to_string()).await, 400).await;
    assert_eq!(err["error"]["code"], "invalid_time");
    assert_eq!(quarantine(&app).len(), 1);
}

#[tokio::test]
async fn rbm_delivered_event_is_a_status_with_its_rfc3339_send_time() {
    let app = spawn_app().await;
    let resp = app.post_json("rcs", &fixture("rbm-event.json")).await;
    assert_eq!(json_with_status(resp, 200).await["accepted"], 1);
    let rows = rows(&app);
    assert_eq!(
        rows,
        [Row {
            channel: "rcs".into(),
            direction: "status".into(),
            id: "a8d4c2f0-6b1e-4c3a-9a57-0f1d2e3c4b5a".into(),
            phone: Some("+919876543210".into()),
            status: "delivered".into(),
            provider_status: Some("DELIVERED".into()),
            error_code: None,
            // 2026-05-28T13:58:05.123456Z
            event_at: Some(1_779_976_685_123),
            text: None,
            media: None,
            reply_to: None,
        }]
    );
    let p = payload(&app, &rows[0].id);
    assert_eq!(p["message"]["data"]["eventId"], "MxYBzq0xGZTq2sDMg1mQ9nuQ");
    assert_eq!(
        p["subscription"],
        "projects/rbm-shop-agent/subscriptions/rbm-agent-sub"
    );
}

#[tokio::test]
async fn rbm_user_message_is_inbound_text() {
    let app = spawn_app().await;
    let resp = app.post_json("rcs", &fixture("rbm-message.json")).await;
    assert_eq!(json_with_status(resp, 200).await["accepted"], 1);
    let row = &rows(&app)[0];
    assert_eq!(row.direction, "inbound");
    assert_eq!(row.status, "received");
    assert_eq!(row.id, "MxAB12cdEF34gh56");
    assert_eq!(row.phone.as_deref(), Some("+919876543210"));
    assert_eq!(
        row.text.as_deref(),
        Some("STOP sending offers to 9876543210")
    );
    // 2026-05-28T14:01:00.5Z
    assert_eq!(row.event_at, Some(1_779_976_860_500));
}

fn rbm_push(data: &Value) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data.to_string());
    json!({"message": {"data": encoded, "messageId": "1", "publishTime": "2026-05-28T13:58:06.001Z"},
           "subscription": "projects/p/subscriptions/s"})
    .to_string()
}

#[tokio::test]
async fn rbm_is_typing_is_answered_200_and_stored_nowhere() {
    let app = spawn_app().await;
    let body = rbm_push(
        &json!({"senderPhoneNumber": "+919876543210", "eventType": "IS_TYPING",
        "eventId": "e1", "sendTime": "2026-05-28T13:58:05Z", "agentId": "a"}),
    );
    let resp = app.post_json("rcs", &body).await;
    assert_eq!(
        json_with_status(resp, 200).await,
        json!({"accepted": 0, "duplicates": 0, "rejected": 0})
    );
    assert_eq!(app.count("events") + app.count("rejected"), 0);
}

#[tokio::test]
async fn rbm_data_that_is_not_base64_is_400_and_quarantined() {
    let app = spawn_app().await;
    let body = r#"{"message": {"data": "***", "messageId": "1"}}"#;
    let err = json_with_status(app.post_json("rcs", body).await, 400).await;
    assert_eq!(err["error"]["code"], "invalid_base64");
    assert_eq!(quarantine(&app)[0].2, body.as_bytes());
}

const RECEIPT_ID: &str = "28bf7375bb54540ba03a";
/// done date 2605281002 in Asia/Kolkata is 2026-05-28 04:32 UTC.
const RECEIPT_AT: i64 = 1_779_942_720_000;

fn assert_receipt_row(row: &Row, phone: Option<&str>) {
    assert_eq!(row.id, RECEIPT_ID);
    assert_eq!(row.status, "delivered");
    assert_eq!(row.provider_status.as_deref(), Some("DELIVRD"));
    assert_eq!(row.error_code.as_deref(), Some("000"));
    assert_eq!(row.event_at, Some(RECEIPT_AT));
    assert_eq!(row.phone.as_deref(), phone);
    assert_eq!(row.direction, "status");
}

#[tokio::test]
async fn smpp_receipt_in_a_form_field_gives_status_error_code_and_done_time() {
    let app = spawn_app().await;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("mobile", "919876500001")
        .append_pair("receipt", &fixture("smpp-receipt.txt"))
        .finish();
    json_with_status(app.post_form("sms", &body).await, 200).await;
    assert_receipt_row(&rows(&app)[0], Some("+919876500001"));
}

#[tokio::test]
async fn smpp_receipt_in_a_json_text_field_or_as_a_bare_body_is_read_too() {
    let app = spawn_app().await;
    let body = json!({"text": fixture("smpp-receipt.txt")}).to_string();
    json_with_status(app.post_json("sms", &body).await, 200).await;
    assert_receipt_row(&rows(&app)[0], None);
    let resp = app
        .post_callback("default", "sms", "text/plain", fixture("smpp-receipt.txt"))
        .await;
    assert_eq!(
        json_with_status(resp, 200).await,
        json!({"accepted": 0, "duplicates": 1, "rejected": 0})
    );
}

#[tokio::test]
async fn kannel_numeric_dlr_codes_map_to_statuses() {
    let app = spawn_app().await;
    let items: Vec<Value> = [
        ("1", "delivered"),
        ("2", "failed"),
        ("4", "queued"),
        ("8", "sent"),
        ("16", "rejected"),
    ]
    .iter()
    .map(|(code, _)| json!({"logid": format!("k{code}"), "mobile": "919876500001", "status": code}))
    .collect();
    json_with_status(
        app.post_json("sms", &Value::Array(items).to_string()).await,
        200,
    )
    .await;
    let got: Vec<(String, String)> = rows(&app).into_iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(
        got,
        [
            ("k1", "delivered"),
            ("k2", "failed"),
            ("k4", "queued"),
            ("k8", "sent"),
            ("k16", "rejected")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

#[tokio::test]
async fn every_word_of_the_mapping_table_is_stored_as_its_normalized_status() {
    let app = spawn_app().await;
    let items: Vec<Value> = STATUS_WORDS
        .iter()
        .enumerate()
        .map(|(i, (word, _))| {
            json!({"logid": format!("w{i}"), "mobile": "919876500001", "status": word.to_uppercase()})
        })
        .chain(std::iter::once(
            json!({"logid": "unknown-word", "mobile": "919876500001", "status": "Teleported"}),
        ))
        .collect();
    let resp = app.post_json("sms", &Value::Array(items).to_string()).await;
    assert_eq!(
        json_with_status(resp, 200).await["accepted"],
        STATUS_WORDS.len() + 1
    );
    let rows = rows(&app);
    for (i, (word, status)) in STATUS_WORDS.iter().enumerate() {
        let row = rows.iter().find(|r| r.id == format!("w{i}")).unwrap();
        assert_eq!(row.status, status.as_str(), "{word}");
        assert_eq!(
            row.provider_status.as_deref(),
            Some(word.to_uppercase().as_str())
        );
    }
    let unknown = rows.iter().find(|r| r.id == "unknown-word").unwrap();
    assert_eq!(unknown.status, "unknown");
    assert_eq!(unknown.provider_status.as_deref(), Some("Teleported"));
}

fn hex(bytes: &[u8], upper: bool) -> String {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}

async fn base16_app() -> TestApp {
    spawn_app_with(|s| s.clients[0].encoding = Some(BodyEncoding::Base16)).await
}

#[tokio::test]
async fn base16_bodies_of_every_shape_round_trip_whatever_type_they_declare() {
    let app = base16_app().await;
    let cases = [
        ("whatsapp", "meta-status.json", "text/plain", false, 3),
        (
            "whatsapp",
            "authkey-whatsapp-status.form",
            "application/x-www-form-urlencoded",
            true,
            1,
        ),
        ("rcs", "rbm-message.json", "application/json", true, 1),
        (
            "whatsapp",
            "authkey-whatsapp-status-variant.json",
            "application/octet-stream",
            false,
            1,
        ),
    ];
    let mut total = 0;
    for (channel, name, content_type, upper, accepted) in cases {
        let body = hex(fixture(name).as_bytes(), upper);
        let resp = app
            .post_callback("default", channel, content_type, body)
            .await;
        let got = json_with_status(resp, 200).await;
        assert_eq!(got["accepted"], accepted, "{name}");
        total += accepted;
    }
    assert_eq!(app.count("events"), total);
    assert!(rows(&app)
        .iter()
        .any(|r| r.error_code.as_deref() == Some("131026")));
}

#[tokio::test]
async fn bad_hex_from_a_base16_client_is_400_and_quarantined_as_sent() {
    let app = base16_app().await;
    for body in ["7b2", "7b2x7d", "{\"logid\":\"a\"}"] {
        let resp = app
            .post_callback("default", "sms", "text/plain", body)
            .await;
        let err = json_with_status(resp, 400).await;
        assert_eq!(err["error"]["code"], "invalid_hex", "{body}");
    }
    let q = quarantine(&app);
    assert_eq!(q.len(), 3);
    assert_eq!(
        q[1],
        (
            "invalid_hex".into(),
            Some("text/plain".into()),
            b"7b2x7d".to_vec()
        )
    );
    assert_eq!(app.count("events"), 0);
}

#[tokio::test]
async fn hostile_bodies_get_400_and_the_service_keeps_answering() {
    let app = spawn_app().await;
    let deep_arrays = "[".repeat(10_000) + &"]".repeat(10_000);
    let deep_objects = "{\"a\":".repeat(10_000) + "1" + &"}".repeat(10_000);
    let deep_meta = format!("{{\"object\":\"x\",\"entry\":{deep_arrays}}}");
    for body in [&deep_arrays, &deep_objects, &deep_meta] {
        let err = json_with_status(app.post_json("whatsapp", body).await, 400).await;
        assert_eq!(err["error"]["code"], "invalid_json");
    }
    let err = json_with_status(app.post_json("whatsapp", "{\"object\":").await, 400).await;
    assert_eq!(err["error"]["code"], "invalid_json");
    let resp = app
        .post_callback(
            "default",
            "whatsapp",
            "application/json",
            vec![b'{', 0xc3, 0x28, b'}'],
        )
        .await;
    assert_eq!(
        json_with_status(resp, 400).await["error"]["code"],
        "invalid_utf8"
    );
    assert_eq!(app.count("rejected"), 5);
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
    let resp = app
        .post_json("whatsapp", &fixture("meta-status.json"))
        .await;
    assert_eq!(json_with_status(resp, 200).await["accepted"], 3);
}
