//! Signatures over the raw body, made by independent implementations: the
//! `standardwebhooks` crate (the Standard Webhooks reference library) and the
//! `hmac-sha256` / `hmac-sha512` crates for Meta and Google RBM.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use standardwebhooks::Webhook;

use crate::helpers::{fixture, json_with_status, spawn_app_with, TestApp};

const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW_SECRET: &str = "whsec_c2lnbmluZy1zZWNyZXQtYWZ0ZXItcm90YXRpb24=";
const BODY: &str = r#"{"logid":"sig1","mobile":"919876500001","status":"delivered"}"#;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Signs `body` as a Standard Webhooks sender would.
fn sign(secret: &str, id: &str, ts: i64, body: &str) -> String {
    Webhook::new(secret)
        .unwrap()
        .sign(id, ts, body.as_bytes())
        .unwrap()
}

async fn post_signed(app: &TestApp, headers: &[(&str, String)], body: &str) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/v1/callbacks/default/sms"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.unwrap()
}

fn webhook_headers(id: &str, ts: i64, signature: String) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", signature),
    ]
}

async fn assert_401(resp: reqwest::Response) {
    let err = json_with_status(resp, 401).await;
    assert_eq!(err["error"]["code"], "invalid_signature");
}

async fn standard_app(secrets: &[&str]) -> TestApp {
    let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    spawn_app_with(|s| s.clients[0].signing_secret = Some(secrets)).await
}

#[tokio::test]
async fn a_standard_webhooks_signature_from_the_reference_library_is_accepted() {
    let app = standard_app(&[OLD_SECRET]).await;
    let ts = now();
    let headers = webhook_headers("msg_1", ts, sign(OLD_SECRET, "msg_1", ts, BODY));
    json_with_status(post_signed(&app, &headers, BODY).await, 200).await;
    assert_eq!(app.count("events"), 1);
}

#[tokio::test]
async fn a_tampered_body_fails_the_signature_and_stores_nothing() {
    let app = standard_app(&[OLD_SECRET]).await;
    let ts = now();
    let headers = webhook_headers("msg_2", ts, sign(OLD_SECRET, "msg_2", ts, BODY));
    let tampered = r#"{"logid":"sig1","mobile":"919876500001","status":"failed"}"#;
    assert_401(post_signed(&app, &headers, tampered).await).await;
    // The id and timestamp are signed too.
    let mut other_id = headers.clone();
    other_id[0].1 = "msg_3".into();
    assert_401(post_signed(&app, &other_id, BODY).await).await;
    assert_eq!(app.count("events") + app.count("rejected"), 0);
}

#[tokio::test]
async fn old_and_future_timestamps_are_refused_even_when_correctly_signed() {
    let app = standard_app(&[OLD_SECRET]).await;
    for ts in [now() - 6 * 60, now() + 6 * 60] {
        let headers = webhook_headers("msg_4", ts, sign(OLD_SECRET, "msg_4", ts, BODY));
        assert_401(post_signed(&app, &headers, BODY).await).await;
    }
    // Inside the 5-minute window either way is fine.
    for (id, ts) in [("msg_5", now() - 4 * 60), ("msg_6", now() + 4 * 60)] {
        let headers = webhook_headers(id, ts, sign(OLD_SECRET, id, ts, BODY));
        json_with_status(post_signed(&app, &headers, BODY).await, 200).await;
    }
}

#[tokio::test]
async fn an_empty_truncated_or_missing_signature_never_matches() {
    let app = standard_app(&[OLD_SECRET]).await;
    let ts = now();
    let good = sign(OLD_SECRET, "msg_7", ts, BODY);
    let truncated = good[..good.len() - 10].to_string();
    for bad in ["v1,".to_string(), "v1".into(), String::new(), truncated] {
        let headers = webhook_headers("msg_7", ts, bad);
        assert_401(post_signed(&app, &headers, BODY).await).await;
    }
    assert_401(post_signed(&app, &[], BODY).await).await;
    assert_eq!(app.count("events") + app.count("rejected"), 0);
}

#[tokio::test]
async fn during_rotation_either_secret_may_sign_and_several_signatures_may_be_sent() {
    let app = standard_app(&[NEW_SECRET, OLD_SECRET]).await;
    let ts = now();
    let by_old = webhook_headers("msg_8", ts, sign(OLD_SECRET, "msg_8", ts, BODY));
    json_with_status(post_signed(&app, &by_old, BODY).await, 200).await;
    let both = format!(
        "v1,bm90LWEtc2lnbmF0dXJl {} {}",
        sign(NEW_SECRET, "msg_9", ts, BODY),
        sign(OLD_SECRET, "msg_9", ts, BODY)
    );
    let headers = webhook_headers("msg_9", ts, both);
    json_with_status(post_signed(&app, &headers, BODY).await, 200).await;
    let stranger = "whsec_c29tZWJvZHktZWxzZXMtc2VjcmV0LWtleQ==";
    let headers = webhook_headers("msg_10", ts, sign(stranger, "msg_10", ts, BODY));
    assert_401(post_signed(&app, &headers, BODY).await).await;
}

#[tokio::test]
async fn a_signed_client_takes_no_data_from_the_unsigned_query_string() {
    let app = standard_app(&[OLD_SECRET]).await;
    let ts = now();
    // A valid signature over the empty body does not cover the query.
    let headers = webhook_headers("msg_11", ts, sign(OLD_SECRET, "msg_11", ts, ""));
    let mut req = app
        .http
        .get(app.url("/v1/callbacks/default/sms?logid=q1&mobile=919876500001&status=delivered"));
    for (k, v) in &headers {
        req = req.header(*k, v);
    }
    assert_401(req.send().await.unwrap()).await;
    assert_eq!(app.count("events") + app.count("rejected"), 0);
}

#[tokio::test]
async fn a_meta_signature_over_the_raw_body_is_checked() {
    const SECRET: &str = "meta-app-secret-0123";
    let app = spawn_app_with(|s| s.clients[0].meta_app_secret = Some(SECRET.into())).await;
    let hex = |mac: [u8; 32]| mac.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let good = format!("sha256={}", hex(hmac_sha256::HMAC::mac(BODY, SECRET)));
    let wrong = format!("sha256={}", hex(hmac_sha256::HMAC::mac(BODY, "other")));
    assert_401(post_signed(&app, &[("x-hub-signature-256", wrong)], BODY).await).await;
    assert_401(post_signed(&app, &[("x-hub-signature-256", "sha256=".into())], BODY).await).await;
    assert_401(post_signed(&app, &[], BODY).await).await;
    assert_eq!(app.count("events") + app.count("rejected"), 0);
    json_with_status(
        post_signed(&app, &[("x-hub-signature-256", good)], BODY).await,
        200,
    )
    .await;
    assert_eq!(app.count("events"), 1);
}

#[tokio::test]
async fn an_rbm_signature_over_the_decoded_message_data_is_checked() {
    const TOKEN: &str = "rbm-client-token-4567";
    let app = spawn_app_with(|s| s.clients[0].rbm_client_token = Some(TOKEN.into())).await;
    let body = &fixture("rbm-event.json");
    let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
    let data = STANDARD
        .decode(envelope["message"]["data"].as_str().unwrap())
        .unwrap();
    let good = STANDARD.encode(hmac_sha512::HMAC::mac(&data, TOKEN));
    let over_raw_body = STANDARD.encode(hmac_sha512::HMAC::mac(body, TOKEN));
    let wrong_key = STANDARD.encode(hmac_sha512::HMAC::mac(&data, "other"));
    for bad in [over_raw_body, wrong_key, String::new()] {
        assert_401(post_signed(&app, &[("x-goog-signature", bad)], body).await).await;
    }
    assert_401(post_signed(&app, &[], body).await).await;
    assert_eq!(app.count("events") + app.count("rejected"), 0);
    // A valid signature lets the body through to the parser (which stores
    // it as an event, or quarantines it if it cannot read the envelope).
    let resp = post_signed(&app, &[("x-goog-signature", good)], body).await;
    assert_ne!(
        resp.status().as_u16(),
        401,
        "{}",
        resp.text().await.unwrap()
    );
    assert_eq!(app.count("events") + app.count("rejected"), 1);
}
