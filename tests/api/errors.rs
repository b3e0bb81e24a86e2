//! Bad input gets a clear error and loses nothing: quarantined bodies, 404s,
//! 413, 415, allowlist and URL token refusals.

use authkey_receiver::config::ClientSettings;

use crate::helpers::{json_with_status, spawn_app, spawn_app_with};

fn quarantine(app: &crate::helpers::TestApp) -> Vec<(String, String, Vec<u8>)> {
    app.db()
        .rows("SELECT code, channel, body FROM rejected ORDER BY id", &[])
}

#[tokio::test]
async fn a_callback_without_message_id_is_400_and_its_body_is_quarantined() {
    let app = spawn_app().await;
    let body = "mobile=919876500001&status=DELIVRD";
    let err = json_with_status(app.post_form("sms", body).await, 400).await;
    assert_eq!(err["error"]["code"], "missing_message_id");
    assert!(err["error"]["message"].as_str().unwrap().contains("logid"));
    assert_eq!(
        quarantine(&app),
        [(
            "missing_message_id".into(),
            "sms".into(),
            body.as_bytes().to_vec()
        )]
    );
    assert_eq!(app.count("events"), 0);
}

#[tokio::test]
async fn a_callback_without_phone_is_400_with_its_own_code() {
    let app = spawn_app().await;
    let err = json_with_status(
        app.get_callback("default", "sms", "logid=x1&status=DELIVRD")
            .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["code"], "missing_recipient");
    let q = quarantine(&app);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].2, b"logid=x1&status=DELIVRD");
}

#[tokio::test]
async fn malformed_json_and_invalid_utf8_are_quarantined_byte_for_byte() {
    let app = spawn_app().await;
    let err = json_with_status(app.post_json("sms", "{\"logid\": ").await, 400).await;
    assert_eq!(err["error"]["code"], "invalid_json");
    let bytes = vec![b'l', b'o', 0xff, 0xfe];
    let resp = app
        .post_callback(
            "default",
            "sms",
            "application/x-www-form-urlencoded",
            bytes.clone(),
        )
        .await;
    let err = json_with_status(resp, 400).await;
    assert_eq!(err["error"]["code"], "invalid_utf8");
    let q = quarantine(&app);
    assert_eq!(q[0].2, b"{\"logid\": ");
    assert_eq!(q[1].2, bytes);
}

#[tokio::test]
async fn a_batch_with_one_bad_item_stores_the_rest_and_counts_the_rejection() {
    let app = spawn_app().await;
    let body = r#"[{"logid":"b1","mobile":"919876500001","status":"sent"},{"status":"sent"}]"#;
    let resp = json_with_status(app.post_json("sms", body).await, 200).await;
    assert_eq!(resp["accepted"], 1);
    assert_eq!(resp["rejected"], 1);
    let q = quarantine(&app);
    assert_eq!(q[0].0, "missing_message_id");
    assert_eq!(q[0].2, br#"{"status":"sent"}"#);
    assert_eq!(app.count("events"), 1);
}

#[tokio::test]
async fn a_body_of_unknown_fields_only_is_400() {
    let app = spawn_app().await;
    let err = json_with_status(app.post_json("sms", r#"{"foo": 1, "bar": "x"}"#).await, 400).await;
    assert_eq!(err["error"]["code"], "unknown_fields");
    assert_eq!(app.count("rejected"), 1);
}

#[tokio::test]
async fn an_unsupported_content_type_is_415_and_quarantined() {
    let app = spawn_app().await;
    let resp = app
        .post_callback("default", "sms", "application/xml", "<dlr/>")
        .await;
    let err = json_with_status(resp, 415).await;
    assert_eq!(err["error"]["code"], "unsupported_media_type");
    assert_eq!(quarantine(&app)[0].2, b"<dlr/>");
}

#[tokio::test]
async fn unknown_client_and_unknown_channel_are_404_and_store_nothing() {
    let app = spawn_app().await;
    let body = "logid=a&mobile=919876500001&status=sent";
    let resp = app
        .post_callback("nobody", "sms", "application/x-www-form-urlencoded", body)
        .await;
    assert_eq!(
        json_with_status(resp, 404).await["error"]["code"],
        "unknown_client"
    );
    let resp = app
        .post_callback("default", "fax", "application/x-www-form-urlencoded", body)
        .await;
    assert_eq!(
        json_with_status(resp, 404).await["error"]["code"],
        "unknown_channel"
    );
    assert_eq!(
        json_with_status(app.get("/nowhere").await, 404).await["error"]["code"],
        "not_found"
    );
    assert_eq!(app.count("events") + app.count("rejected"), 0);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_stores_nothing() {
    let app = spawn_app_with(|s| s.server.max_body_bytes = 1024).await;
    let body = format!(
        "logid=a&mobile=919876500001&status=sent&pad={}",
        "x".repeat(2000)
    );
    let resp = app.post_form("sms", &body).await;
    assert_eq!(
        json_with_status(resp, 413).await["error"]["code"],
        "body_too_large"
    );
    // Chunked, so the length is not declared up front.
    let stream =
        futures_util::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>("x".repeat(100))));
    let resp = app
        .post_callback(
            "default",
            "sms",
            "text/plain",
            reqwest::Body::wrap_stream(stream),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(app.count("events") + app.count("rejected"), 0);
}

fn client(id: &str) -> ClientSettings {
    let mut c = authkey_receiver::config::Settings::default()
        .clients
        .remove(0);
    c.id = id.parse().unwrap();
    c
}

#[tokio::test]
async fn a_callback_from_an_address_outside_the_allowlist_is_403_and_stores_nothing() {
    let app = spawn_app_with(|s| {
        let mut fenced = client("fenced");
        fenced.allow = Some(vec!["203.0.113.0/24".parse().unwrap()]);
        s.clients.push(fenced);
    })
    .await;
    let body = "logid=a&mobile=919876500001&status=sent";
    let resp = app
        .post_callback("fenced", "sms", "application/x-www-form-urlencoded", body)
        .await;
    assert_eq!(
        json_with_status(resp, 403).await["error"]["code"],
        "ip_not_allowed"
    );
    json_with_status(app.post_form("sms", body).await, 200).await;
    assert_eq!(app.count("events"), 1);
}

#[tokio::test]
async fn the_url_token_is_required_and_never_stored() {
    let app = spawn_app_with(|s| s.clients[0].url_token = Some("t0k3n-s3cret".into())).await;
    let q = "logid=tk1&mobile=919876500001&status=sent";
    let resp = app.get_callback("default", "sms", q).await;
    assert_eq!(
        json_with_status(resp, 401).await["error"]["code"],
        "invalid_token"
    );
    let resp = app
        .get_callback("default", "sms", &format!("{q}&token=wrong"))
        .await;
    assert_eq!(resp.status().as_u16(), 401);
    let resp = app
        .get_callback("default", "sms", &format!("{q}&token=t0k3n-s3cret"))
        .await;
    json_with_status(resp, 200).await;
    let bad = app
        .get_callback("default", "sms", "token=t0k3n-s3cret&status=sent")
        .await;
    assert_eq!(bad.status().as_u16(), 400);
    let db = app.db();
    let payloads: Vec<String> = db.col("SELECT payload FROM events", &[]);
    let bodies: Vec<Vec<u8>> = db.col("SELECT body FROM rejected", &[]);
    assert!(!payloads.is_empty() && !bodies.is_empty());
    let stored = payloads.concat() + &String::from_utf8_lossy(&bodies.concat());
    assert!(stored.contains("tk1"));
    assert!(!stored.contains("t0k3n"), "{stored}");
}
