//! Provider subscription handshakes: Meta's `hub.challenge` and Google RBM's
//! `{clientToken, secret}` are answered as plain text only with the right
//! token, and never stored.

use crate::helpers::{json_with_status, spawn_app, spawn_app_with, TestApp};

async fn app_with_tokens() -> TestApp {
    spawn_app_with(|s| {
        s.clients[0].meta_verify_token = Some("meta-verify-0001".into());
        s.clients[0].rbm_client_token = Some("rbm-client-0001".into());
    })
    .await
}

fn stored(app: &TestApp) -> i64 {
    app.count("events") + app.count("rejected") + app.count("messages")
}

#[tokio::test]
async fn meta_hub_challenge_with_the_right_token_is_echoed_as_plain_text() {
    let app = app_with_tokens().await;
    let resp = app
        .get_callback(
            "default",
            "whatsapp",
            "hub.mode=subscribe&hub.verify_token=meta-verify-0001&hub.challenge=1158201444",
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_eq!(resp.text().await.unwrap(), "1158201444");
    assert_eq!(stored(&app), 0);
}

#[tokio::test]
async fn meta_hub_challenge_with_a_wrong_or_missing_token_is_403() {
    let app = app_with_tokens().await;
    for query in [
        "hub.mode=subscribe&hub.verify_token=meta-verify-0002&hub.challenge=1",
        "hub.mode=subscribe&hub.challenge=1",
        "hub.mode=subscribe&hub.verify_token=&hub.challenge=1",
    ] {
        let err = json_with_status(app.get_callback("default", "whatsapp", query).await, 403).await;
        assert_eq!(err["error"]["code"], "invalid_verify_token", "{query}");
        assert!(!err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("meta-verify"));
    }
    let err = json_with_status(
        app.get_callback(
            "default",
            "whatsapp",
            "hub.mode=unsubscribe&hub.verify_token=meta-verify-0001&hub.challenge=1",
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["code"], "invalid_handshake");
    let err = json_with_status(
        app.get_callback(
            "default",
            "whatsapp",
            "hub.mode=subscribe&hub.verify_token=meta-verify-0001",
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["code"], "invalid_handshake");
    assert_eq!(stored(&app), 0);
}

#[tokio::test]
async fn a_handshake_for_a_client_without_a_token_is_403_not_configured() {
    let app = spawn_app().await;
    let err = json_with_status(
        app.get_callback(
            "default",
            "whatsapp",
            "hub.mode=subscribe&hub.verify_token=x&hub.challenge=1",
        )
        .await,
        403,
    )
    .await;
    assert_eq!(err["error"]["code"], "handshake_not_configured");
    let err = json_with_status(
        app.post_json("rcs", r#"{"clientToken":"x","secret":"y"}"#)
            .await,
        403,
    )
    .await;
    assert_eq!(err["error"]["code"], "handshake_not_configured");
    assert_eq!(stored(&app), 0);
}

#[tokio::test]
async fn rbm_client_token_handshake_echoes_the_secret_as_plain_text() {
    let app = app_with_tokens().await;
    let resp = app
        .post_json(
            "rcs",
            r#"{"clientToken":"rbm-client-0001","secret":"s3cr3t-echo"}"#,
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_eq!(resp.text().await.unwrap(), "s3cr3t-echo");
    let err = json_with_status(
        app.post_json("rcs", r#"{"clientToken":"rbm-client-0002","secret":"s"}"#)
            .await,
        403,
    )
    .await;
    assert_eq!(err["error"]["code"], "invalid_client_token");
    assert_eq!(stored(&app), 0);
}

#[tokio::test]
async fn handshakes_are_answered_for_clients_that_also_require_signatures() {
    let app = spawn_app_with(|s| {
        let c = &mut s.clients[0];
        c.meta_verify_token = Some("meta-verify-0001".into());
        c.meta_app_secret = Some("meta-app-secret-0001".into());
        c.rbm_client_token = Some("rbm-client-0001".into());
    })
    .await;
    let resp = app
        .get_callback(
            "default",
            "whatsapp",
            "hub.mode=subscribe&hub.verify_token=meta-verify-0001&hub.challenge=77",
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "77");
    let resp = app
        .post_json("rcs", r#"{"clientToken":"rbm-client-0001","secret":"s3"}"#)
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "s3");
    // An unsigned callback is still refused.
    let resp = app
        .post_json("whatsapp", &crate::helpers::fixture("meta-status.json"))
        .await;
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(stored(&app), 0);
}
