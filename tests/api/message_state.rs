//! The `messages` table keeps one current state per (client, message id,
//! phone) that never moves backwards, while `events` keeps every report.

use serde_json::json;

use crate::helpers::{json_with_status, spawn_app, TestApp};

fn meta_status(id: &str, status: &str, ts: i64) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
        "value": {"statuses": [{"id": id, "status": status, "timestamp": ts.to_string(), "recipient_id": "919876543210"}]}}]}]})
    .to_string()
}

/// (status, provider_status, event_count, first_seen_at, last_event_at)
fn state(app: &TestApp, id: &str) -> (String, String, i64, i64, Option<i64>) {
    app.db().row(
        "SELECT status, provider_status, event_count, first_seen_at, last_event_at \
         FROM messages WHERE provider_message_id = ?1 AND recipient = '+919876543210'",
        &[id.into()],
    )
}

fn history(app: &TestApp, id: &str) -> Vec<String> {
    app.db().col(
        "SELECT status FROM events WHERE provider_message_id = ?1 ORDER BY id",
        &[id.into()],
    )
}

#[tokio::test]
async fn read_then_delivered_then_sent_leaves_read_with_three_events() {
    let app = spawn_app().await;
    let before = chrono::Utc::now().timestamp_millis();
    for (status, ts) in [
        ("read", 1_694_492_600),
        ("delivered", 1_694_492_500),
        ("sent", 1_694_492_400),
    ] {
        let resp = app
            .post_json("whatsapp", &meta_status("wamid.ooo", status, ts))
            .await;
        assert_eq!(json_with_status(resp, 200).await["accepted"], 1);
    }
    let (status, provider_status, count, first_seen, last_event) = state(&app, "wamid.ooo");
    assert_eq!(status, "read");
    assert_eq!(provider_status, "read");
    assert_eq!(count, 3);
    assert!(first_seen >= before);
    assert_eq!(last_event, Some(1_694_492_600_000));
    assert_eq!(history(&app, "wamid.ooo"), ["read", "delivered", "sent"]);
}

#[tokio::test]
async fn failed_then_delivered_becomes_delivered_and_the_failure_stays_in_history() {
    let app = spawn_app().await;
    let failed = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"statuses": [
        {"id": "wamid.fd", "status": "failed", "timestamp": "1694492501", "recipient_id": "919876543210",
         "errors": [{"code": 131026, "title": "Message undeliverable"}]}]}}]}]});
    json_with_status(app.post_json("whatsapp", &failed.to_string()).await, 200).await;
    assert_eq!(state(&app, "wamid.fd").0, "failed");
    let resp = app
        .post_json(
            "whatsapp",
            &meta_status("wamid.fd", "delivered", 1_694_492_502),
        )
        .await;
    json_with_status(resp, 200).await;
    let error_code: Option<String> = app.db().one("SELECT error_code FROM messages", &[]);
    assert_eq!(state(&app, "wamid.fd").0, "delivered");
    assert_eq!(error_code, None);
    assert_eq!(history(&app, "wamid.fd"), ["failed", "delivered"]);
}

#[tokio::test]
async fn a_late_sent_after_failed_does_not_hide_the_failure() {
    let app = spawn_app().await;
    for (status, ts) in [
        ("failed", 1_694_492_501),
        ("sent", 1_694_492_400),
        ("teleported", 1_694_492_700),
    ] {
        json_with_status(
            app.post_json("whatsapp", &meta_status("wamid.fs", status, ts))
                .await,
            200,
        )
        .await;
    }
    let (status, provider_status, count, _, last_event) = state(&app, "wamid.fs");
    assert_eq!(
        (status.as_str(), provider_status.as_str()),
        ("failed", "failed")
    );
    assert_eq!(count, 3);
    assert_eq!(last_event, Some(1_694_492_700_000));
    assert_eq!(history(&app, "wamid.fs"), ["failed", "sent", "unknown"]);
}
