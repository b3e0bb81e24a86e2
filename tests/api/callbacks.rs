//! The happy path: every Authkey sample lands as the right row; retries are
//! duplicates; one logid with several phones is several messages.

use crate::helpers::{fixture, json_with_status, spawn_app};
use serde_json::json;

type EventRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    String,
);

fn event_row(app: &crate::helpers::TestApp, logid: &str) -> EventRow {
    app.db().row(
        "SELECT channel, direction, phone, provider_status, status, error_code, event_at, payload \
         FROM events WHERE provider_message_id = ?1",
        &[logid.into()],
    )
}

#[tokio::test]
async fn authkey_sms_dlr_by_get_query_is_stored_in_utc_with_e164_phone() {
    let app = spawn_app().await;
    let resp = app
        .get_callback("default", "sms", &fixture("authkey-sms-dlr.query"))
        .await;
    let body = json_with_status(resp, 200).await;
    assert_eq!(body, json!({"accepted": 1, "duplicates": 0, "rejected": 0}));
    let (channel, direction, phone, provider_status, status, error, at, _) =
        event_row(&app, "28bf7375bb54540ba03a4eb873d4da44");
    assert_eq!(channel, "sms");
    assert_eq!(direction, "status");
    assert_eq!(phone, "+919876500001");
    assert_eq!(provider_status.as_deref(), Some("DELIVRD"));
    assert_eq!(status, "delivered");
    assert_eq!(error.as_deref(), Some("000"));
    // 2026-05-28 10:02:11 in Asia/Kolkata is 04:32:11 UTC.
    assert_eq!(at, Some(1_779_942_731_000));
}

#[tokio::test]
async fn authkey_whatsapp_form_keeps_unknown_keys_in_the_payload() {
    let app = spawn_app().await;
    let resp = app
        .post_form("whatsapp", &fixture("authkey-whatsapp-status.form"))
        .await;
    json_with_status(resp, 200).await;
    let (channel, _, phone, provider_status, status, _, at, payload) =
        event_row(&app, "51855a8fbb9e894f4589da806223b3fc");
    assert_eq!(channel, "whatsapp");
    assert_eq!(phone, "+919876543210");
    assert_eq!(provider_status.as_deref(), Some("delivered"));
    assert_eq!(status, "delivered");
    assert_eq!(at, Some(1_779_976_281_000));
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["1"], "Asha Rao");
    assert_eq!(payload["type"], "text");
    assert!(payload["meta_messageid"]
        .as_str()
        .unwrap()
        .starts_with("wamid."));
}

#[tokio::test]
async fn authkey_variant_json_with_spaced_capitalised_keys_is_understood() {
    let app = spawn_app().await;
    let resp = app
        .post_json("whatsapp", &fixture("authkey-whatsapp-status-variant.json"))
        .await;
    json_with_status(resp, 200).await;
    let (_, _, phone, provider_status, status, _, at, _) =
        event_row(&app, "d1cbdc206ce89f7f794575bbd862a27b");
    assert_eq!(phone, "+919812345678");
    assert_eq!(provider_status.as_deref(), Some("Read"));
    assert_eq!(status, "read");
    assert_eq!(at, Some(1_779_976_685_000));
}

#[tokio::test]
async fn every_channel_accepts_a_flat_callback() {
    let app = spawn_app().await;
    for (i, channel) in ["sms", "whatsapp", "rcs", "voice", "email"]
        .iter()
        .enumerate()
    {
        let body =
            format!("logid=ch{i}&mobile=919876500010&status=delivered&time=2026-05-28+10:00:00");
        json_with_status(app.post_form(channel, &body).await, 200).await;
    }
    let channels: Vec<String> = app.db().col("SELECT channel FROM events ORDER BY id", &[]);
    assert_eq!(channels, ["sms", "whatsapp", "rcs", "voice", "email"]);
}

#[tokio::test]
async fn a_provider_retry_is_answered_200_as_a_duplicate_and_stored_once() {
    let app = spawn_app().await;
    let body = fixture("authkey-whatsapp-status.form");
    let first = json_with_status(app.post_form("whatsapp", &body).await, 200).await;
    let retry = json_with_status(app.post_form("whatsapp", &body).await, 200).await;
    assert_eq!(
        first,
        json!({"accepted": 1, "duplicates": 0, "rejected": 0})
    );
    assert_eq!(
        retry,
        json!({"accepted": 0, "duplicates": 1, "rejected": 0})
    );
    assert_eq!(app.count("events"), 1);
    let count: i64 = app.db().one("SELECT event_count FROM messages", &[]);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn one_logid_sent_to_two_phones_is_two_messages() {
    let app = spawn_app().await;
    let body = r#"[
        {"logid": "bulk1", "mobile": "919876500001", "status": "DELIVRD", "time": "2026-05-28 10:00:00"},
        {"logid": "bulk1", "mobile": "919876500002", "status": "DELIVRD", "time": "2026-05-28 10:00:00"}
    ]"#;
    let resp = json_with_status(app.post_json("sms", body).await, 200).await;
    assert_eq!(resp["accepted"], 2);
    assert_eq!(app.count("messages"), 2);
    assert_eq!(app.count("events"), 2);
}

#[tokio::test]
async fn a_later_status_climbs_but_an_earlier_one_never_moves_the_state_back() {
    let app = spawn_app().await;
    let send = |status: &str, time: &str| {
        format!("logid=ord1&mobile=919876500001&status={status}&time=2026-05-28+{time}")
    };
    for (status, time) in [
        ("read", "10:00:09"),
        ("delivered", "10:00:05"),
        ("sent", "10:00:01"),
    ] {
        json_with_status(app.post_form("whatsapp", &send(status, time)).await, 200).await;
    }
    let (status, events): (String, i64) = app
        .db()
        .row("SELECT status, event_count FROM messages", &[]);
    assert_eq!(status, "read");
    assert_eq!(events, 3);
    assert_eq!(app.count("events"), 3);
}

#[tokio::test]
async fn health_and_readiness_answer_when_the_database_is_writable() {
    let app = spawn_app().await;
    json_with_status(app.get("/healthz").await, 200).await;
    let ready = json_with_status(app.get("/readyz").await, 200).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["storage"]["schema_version"], 1);
}
