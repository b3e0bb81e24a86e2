//! Exports and lookups for the people who read the data: tokens, roles,
//! client scope, masking, the owner's reason + TOTP, and the audit row every
//! request leaves.

use crate::helpers::{json_with_status, pyotp_now, spawn_app, spawn_app_with, TestApp};

/// Numbers the tests ingest, as providers send them.
const PHONES: [&str; 3] = ["919812345678", "447911123456", "14155552671"];
/// A number only ever written inside free text.
const TEXT_PHONE: &str = "9876543210";
const EMAIL: &str = "asha.rao@example.com";

/// Ingests one SMS report per phone (each with the number in a template
/// variable and another in the reason) and one e-mail report; returns the
/// number of events.
async fn ingest_known(app: &TestApp, client: &str) -> usize {
    for (i, p) in PHONES.iter().enumerate() {
        let query = format!(
            "mobile={p}&status=FAILED&logid={client}-m{i}&time=2026-05-28+10%3A02%3A11\
             &1=OTP+sent+to+{p}&reason=Subscriber+{TEXT_PHONE}+unreachable"
        );
        let resp = app.get_callback(client, "sms", &query).await;
        json_with_status(resp, 200).await;
    }
    let body = format!(r#"{{"logid":"{client}-e1","email":"{EMAIL}","status":"delivered"}}"#);
    let resp = app
        .post_callback(client, "email", "application/json", body)
        .await;
    json_with_status(resp, 200).await;
    PHONES.len() + 1
}

/// Every 5-digit stretch of every known number, and the e-mail's local part.
fn secrets() -> Vec<String> {
    let mut out: Vec<String> = PHONES
        .iter()
        .chain([&TEXT_PHONE])
        .flat_map(|p| {
            p.as_bytes()
                .windows(5)
                .map(|w| String::from_utf8(w.to_vec()).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    out.push("asha.rao".into());
    out
}

fn assert_no_secret(body: &str) {
    for s in secrets() {
        assert!(!body.contains(&s), "`{s}` leaked in:\n{body}");
    }
}

async fn error_code(resp: reqwest::Response, status: u16) -> String {
    let body = json_with_status(resp, status).await;
    body["error"]["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn export_without_a_token_is_refused_with_401_and_audited() {
    let app = spawn_app().await;
    let resp = app.export(None, None, "").await;
    assert_eq!(resp.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_eq!(error_code(resp, 401).await, "missing_token");
    let resp = app.export(Some("akr_not-a-real-token"), None, "").await;
    assert_eq!(error_code(resp, 401).await, "invalid_token");
    let rows = app.audit_rows();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row.actor, "anonymous");
        assert_eq!(row.action, "export");
        assert_eq!(row.source.as_deref(), Some("127.0.0.1"));
    }
    assert_eq!(app.audit_rows()[0].outcome, "missing_token");
}

#[tokio::test]
async fn a_revoked_token_is_refused_with_401() {
    let app = spawn_app().await;
    let t = app.create_token("auditor", "compliance", &[], &[]);
    let resp = app.export(Some(&t.token), None, "").await;
    assert_eq!(resp.status().as_u16(), 200);
    let out = crate::helpers::cli(&app.data_dir, &["token", "revoke", "auditor"], &[]);
    assert!(out.status.success());
    let resp = app.export(Some(&t.token), None, "").await;
    assert_eq!(error_code(resp, 401).await, "invalid_token");
    let actions: Vec<_> = app
        .audit_rows()
        .into_iter()
        .map(|r| (r.action, r.outcome))
        .collect();
    assert_eq!(
        actions,
        [
            ("token.create".to_string(), "ok".to_string()),
            ("export".into(), "ok".into()),
            ("token.revoke".into(), "ok".into()),
            ("export".into(), "invalid_token".into()),
        ]
    );
}

#[tokio::test]
async fn support_may_look_up_a_message_but_not_export() {
    let app = spawn_app().await;
    ingest_known(&app, "default").await;
    let t = app.create_token("helpdesk", "support", &[], &[]);
    let resp = app.export(Some(&t.token), None, "").await;
    assert_eq!(error_code(resp, 403).await, "role_not_allowed");
    let audit = app.last_audit();
    assert_eq!(
        (audit.actor.as_str(), audit.outcome.as_str()),
        ("helpdesk", "role_not_allowed")
    );
    assert_eq!(audit.role.as_deref(), Some("support"));

    let resp = app
        .admin_get("/v1/messages/default/default-m0", Some(&t.token), None)
        .await;
    let body = json_with_status(resp, 200).await;
    assert_eq!(body["messages"][0]["recipient"], "+91******5678");
    assert_eq!(body["messages"][0]["status"], "failed");
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    assert_eq!(body["unmasked"], false);
    assert_no_secret(&body.to_string());
    let audit = app.last_audit();
    assert_eq!(
        (audit.action.as_str(), audit.outcome.as_str(), audit.rows),
        ("lookup", "ok", Some(1))
    );

    let resp = app
        .admin_get(
            "/v1/messages/default/default-m0?unmasked=true&reason=customer+complaint",
            Some(&t.token),
            None,
        )
        .await;
    assert_eq!(error_code(resp, 403).await, "unmasked_not_allowed");
    let resp = app
        .admin_get("/v1/messages/default/nope", Some(&t.token), None)
        .await;
    assert_eq!(error_code(resp, 404).await, "message_not_found");
    assert_eq!(app.last_audit().outcome, "message_not_found");
}

#[tokio::test]
async fn compliance_gets_a_chunked_masked_csv_with_no_full_number_anywhere() {
    let app = spawn_app().await;
    let events = ingest_known(&app, "default").await;
    let t = app.create_token("auditor", "compliance", &[], &[]);
    let resp = app.export(Some(&t.token), None, "client=default").await;
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.headers().clone();
    assert_eq!(headers.get("transfer-encoding").unwrap(), "chunked");
    assert!(headers.get("content-length").is_none());
    assert_eq!(
        headers.get("content-type").unwrap(),
        "text/csv; charset=utf-8"
    );
    let disposition = headers
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"authkey-export-default-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let body = resp.text().await.unwrap();
    assert_no_secret(&body);
    let lines: Vec<&str> = body.split_terminator("\r\n").collect();
    assert_eq!(
        lines[0],
        "id,received_at,event_at,client_id,channel,direction,provider_message_id,phone,email,\
         pseudonym,status,provider_status,error_code,text,media,reply_to,source_ip,payload"
    );
    assert_eq!(lines.len(), events + 1);
    assert!(body.contains(",+91******5678,"), "{body}");
    assert!(body.contains(",+44******3456,"), "{body}");
    assert!(body.contains(",+1******2671,"), "{body}");
    assert!(body.contains(",a***@example.com,"), "{body}");
    assert!(body.contains("Subscriber ******3210 unreachable"), "{body}");
    let audit = app.last_audit();
    assert_eq!(
        (
            audit.actor.as_str(),
            audit.action.as_str(),
            audit.outcome.as_str()
        ),
        ("auditor", "export", "ok")
    );
    assert_eq!(audit.rows, Some(events as i64));
    assert_eq!(audit.client.as_deref(), Some("default"));
}

#[tokio::test]
async fn a_large_ndjson_export_streams_in_chunks_and_holds_every_row_masked() {
    let app = spawn_app().await;
    let mut total = 0;
    for batch in 0..10 {
        let items: Vec<String> = (0..300)
            .map(|i| {
                format!(
                    r#"{{"logid":"b{batch}-{i}","mobile":"9198{:08}","status":"sent","1":"pin 4321 for 9198{:08}"}}"#,
                    batch * 1000 + i,
                    batch * 1000 + i
                )
            })
            .collect();
        let resp = app
            .post_json("sms", &format!("[{}]", items.join(",")))
            .await;
        assert_eq!(json_with_status(resp, 200).await["accepted"], 300);
        total += 300;
    }
    let t = app.create_token("auditor", "compliance", &[], &[]);
    let resp = app
        .export(Some(&t.token), None, "format=ndjson&status=sent")
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers().get("transfer-encoding").unwrap(), "chunked");
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/x-ndjson"
    );
    let mut stream = resp.bytes_stream();
    let mut chunks = 0;
    let mut body = Vec::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        body.extend_from_slice(&chunk.unwrap());
        chunks += 1;
    }
    assert!(chunks > 1, "one chunk of {} bytes", body.len());
    let text = String::from_utf8(body).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), total);
    let ids: std::collections::HashSet<_> = rows
        .iter()
        .map(|r| r["provider_message_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), total);
    for r in &rows {
        let phone = r["phone"].as_str().unwrap();
        assert!(
            phone.starts_with("+91******") && phone.len() == 13,
            "{phone}"
        );
        assert_eq!(r["pseudonym"].as_str().unwrap().len(), 32);
        let digits: String = r["payload"].as_str().unwrap().to_string();
        assert!(
            !digits
                .as_bytes()
                .windows(5)
                .any(|w| w.iter().all(u8::is_ascii_digit)),
            "{digits}"
        );
    }
    assert_eq!(app.last_audit().rows, Some(total as i64));
}

#[tokio::test]
async fn owner_gets_real_numbers_only_with_a_reason_and_a_fresh_totp_code() {
    let app = spawn_app().await;
    let events = ingest_known(&app, "default").await;
    let owner = app.create_token("owner-1", "owner", &["--totp"], &[]);
    let secret = owner
        .totp_secret
        .clone()
        .expect("an otpauth URI was printed");
    let token = Some(owner.token.as_str());
    let unmasked = "unmasked=true&format=ndjson";

    let resp = app.export(token, None, unmasked).await;
    assert_eq!(error_code(resp, 400).await, "reason_required");
    let resp = app
        .export(token, None, &format!("{unmasked}&reason=because"))
        .await;
    assert_eq!(error_code(resp, 400).await, "reason_required");
    let with_reason = format!("{unmasked}&reason=court+order+2026-117");
    let resp = app.export(token, None, &with_reason).await;
    assert_eq!(error_code(resp, 401).await, "totp_required");
    let resp = app.export(token, Some("000000"), &with_reason).await;
    assert_eq!(error_code(resp, 401).await, "invalid_totp");

    let code = pyotp_now(&secret);
    let resp = app.export(token, Some(&code), &with_reason).await;
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.text().await.unwrap();
    assert_eq!(body.lines().count(), events);
    for p in PHONES {
        assert!(body.contains(&format!("\"phone\":\"+{p}\"")), "{body}");
    }
    assert!(body.contains(EMAIL) && body.contains(TEXT_PHONE), "{body}");

    let resp = app.export(token, Some(&code), &with_reason).await;
    assert_eq!(
        error_code(resp, 401).await,
        "invalid_totp",
        "a replayed code"
    );

    // Masked data needs no second factor.
    let resp = app.export(token, None, "format=ndjson").await;
    assert_no_secret(&resp.text().await.unwrap());

    let outcomes: Vec<(String, Option<String>)> = app
        .audit_rows()
        .into_iter()
        .skip(1)
        .map(|r| (r.outcome, r.reason))
        .collect();
    let reason = Some("court order 2026-117".to_string());
    assert_eq!(
        outcomes,
        [
            ("reason_required".to_string(), None),
            ("reason_required".into(), None),
            ("totp_required".into(), reason.clone()),
            ("invalid_totp".into(), reason.clone()),
            ("ok".into(), reason.clone()),
            ("invalid_totp".into(), reason),
            ("ok".into(), None),
        ]
    );
}

#[tokio::test]
async fn owner_lookup_unmasked_with_totp_shows_the_real_recipient() {
    let app = spawn_app().await;
    ingest_known(&app, "default").await;
    let owner = app.create_token("owner-2", "owner", &["--totp"], &[]);
    let code = pyotp_now(owner.totp_secret.as_deref().unwrap());
    let resp = app
        .admin_get(
            "/v1/messages/default/default-m1?unmasked=true&reason=customer+asked+for+a+copy",
            Some(&owner.token),
            Some(&code),
        )
        .await;
    let body = json_with_status(resp, 200).await;
    assert_eq!(body["unmasked"], true);
    assert_eq!(body["messages"][0]["recipient"], "+447911123456");
    let audit = app.last_audit();
    assert_eq!(audit.reason.as_deref(), Some("customer asked for a copy"));
    assert_eq!(audit.outcome, "ok");
}

#[tokio::test]
async fn an_owner_token_without_a_second_factor_never_sees_unmasked_data() {
    let app = spawn_app().await;
    let owner = app.create_token("owner-3", "owner", &[], &[]);
    let resp = app
        .export(
            Some(&owner.token),
            Some("123456"),
            "unmasked=true&reason=long+enough+reason",
        )
        .await;
    assert_eq!(error_code(resp, 403).await, "no_second_factor");
    let resp = app
        .export(
            Some(&owner.token),
            None,
            "unmasked=true&reason=long+enough+reason",
        )
        .await;
    assert_eq!(error_code(resp, 403).await, "no_second_factor");
}

#[tokio::test]
async fn a_compliance_token_export_is_refused_for_unmasked_data() {
    let app = spawn_app().await;
    let t = app.create_token("auditor", "compliance", &[], &[]);
    let resp = app
        .export(
            Some(&t.token),
            None,
            "unmasked=true&reason=long+enough+reason",
        )
        .await;
    assert_eq!(error_code(resp, 403).await, "unmasked_not_allowed");
}

#[tokio::test]
async fn client_scope_limits_exports_and_lookups() {
    let bank_env = [
        ("AUTHKEY_RECEIVER__CLIENTS__1__ID", "bank"),
        ("AUTHKEY_RECEIVER__CLIENTS__1__CLASS", "banking"),
    ];
    let app = spawn_app_with(|s| {
        let mut bank = s.clients[0].clone();
        bank.id = "bank".parse().unwrap();
        s.clients.push(bank);
    })
    .await;
    ingest_known(&app, "default").await;
    let bank_events = ingest_known(&app, "bank").await;
    let t = app.create_token(
        "bank-auditor",
        "compliance",
        &["--client", "bank"],
        &bank_env,
    );

    let resp = app.export(Some(&t.token), None, "client=default").await;
    assert_eq!(error_code(resp, 403).await, "client_not_allowed");
    let audit = app.last_audit();
    assert_eq!(
        (audit.client.as_deref(), audit.outcome.as_str()),
        (Some("default"), "client_not_allowed")
    );
    let resp = app
        .admin_get("/v1/messages/default/default-m0", Some(&t.token), None)
        .await;
    assert_eq!(error_code(resp, 403).await, "client_not_allowed");

    let resp = app.export(Some(&t.token), None, "format=ndjson").await;
    let body = resp.text().await.unwrap();
    assert_eq!(body.lines().count(), bank_events, "{body}");
    assert!(body.lines().all(|l| l.contains("\"client_id\":\"bank\"")));
    let resp = app
        .admin_get("/v1/messages/bank/bank-m0", Some(&t.token), None)
        .await;
    json_with_status(resp, 200).await;

    let resp = app.export(Some(&t.token), None, "client=nobody").await;
    assert_eq!(error_code(resp, 404).await, "unknown_client");
}

#[tokio::test]
async fn bad_export_filters_get_a_400_naming_the_parameter() {
    let app = spawn_app().await;
    let t = app.create_token("auditor", "compliance", &[], &[]);
    for (query, needle) in [
        ("channel=fax", "`channel`"),
        ("status=lost", "`status`"),
        ("direction=up", "`direction`"),
        ("from=yesterday", "`from`"),
        ("from=2026-06-01&to=2026-05-01", "`from`"),
        ("format=xlsx", "`format`"),
        ("unmasked=maybe", "`unmasked`"),
        ("colour=blue", "`colour`"),
    ] {
        let resp = app.export(Some(&t.token), None, query).await;
        let body = json_with_status(resp, 400).await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{query}: {message}");
    }
    assert_eq!(app.audit_rows().len(), 1 + 8);
}

#[tokio::test]
async fn export_filters_select_by_time_channel_and_status() {
    let app = spawn_app().await;
    ingest_known(&app, "default").await;
    let t = app.create_token("auditor", "compliance", &[], &[]);
    let count = |query: &'static str| {
        let app = &app;
        let token = t.token.clone();
        async move {
            let resp = app.export(Some(&token), None, query).await;
            let text = resp.text().await.unwrap();
            text.lines().count()
        }
    };
    assert_eq!(count("format=ndjson&channel=email").await, 1);
    assert_eq!(count("format=ndjson&status=failed").await, PHONES.len());
    assert_eq!(count("format=ndjson&direction=inbound").await, 0);
    assert_eq!(count("format=ndjson&to=2020-01-01").await, 0);
    assert_eq!(
        count("format=ndjson&from=2020-01-01").await,
        PHONES.len() + 1
    );
    assert_eq!(count("channel=email").await, 2, "CSV: header and one row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_cut_short_by_the_reader_is_still_audited() {
    let app = spawn_app_with(|s| s.server.max_body_bytes = 1 << 20).await;
    let total = 20_000;
    for batch in 0..total / 500 {
        let items: Vec<String> = (0..500)
            .map(|i| {
                format!(
                    r#"{{"logid":"c{batch}-{i}","mobile":"9198{:08}","status":"sent","note":"{}"}}"#,
                    batch * 1000 + i,
                    "x".repeat(400)
                )
            })
            .collect();
        let resp = app
            .post_json("sms", &format!("[{}]", items.join(",")))
            .await;
        assert_eq!(resp.status().as_u16(), 200);
    }
    let t = app.create_token("auditor", "compliance", &[], &[]);
    let resp = app.export(Some(&t.token), None, "").await;
    let mut stream = resp.bytes_stream();
    let first = futures_util::StreamExt::next(&mut stream)
        .await
        .unwrap()
        .unwrap();
    assert!(!first.is_empty());
    drop(stream);
    let mut audit = None;
    for _ in 0..100 {
        audit = app.audit_rows().into_iter().find(|r| r.action == "export");
        if audit.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let audit = audit.expect("the cut-short export left an audit row");
    assert_eq!(audit.outcome, "aborted");
    assert!(audit.rows.unwrap() < total as i64, "{audit:?}");
}

#[tokio::test]
async fn five_wrong_codes_in_a_row_lock_the_second_factor() {
    let app = spawn_app().await;
    let owner = app.create_token("owner-4", "owner", &["--totp"], &[]);
    let query = "unmasked=true&reason=checking+a+complaint";
    let good = pyotp_now(owner.totp_secret.as_deref().unwrap());
    let wrong = format!(
        "{:06}",
        (good.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    for _ in 0..5 {
        let resp = app.export(Some(&owner.token), Some(&wrong), query).await;
        assert_eq!(error_code(resp, 401).await, "invalid_totp");
    }
    let resp = app.export(Some(&owner.token), Some(&good), query).await;
    assert_eq!(error_code(resp, 429).await, "totp_locked");
    assert_eq!(app.last_audit().outcome, "totp_locked");
    // Masked data stays available to the token.
    let resp = app.export(Some(&owner.token), None, "").await;
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_audit_row_names_the_original_client() {
    let app =
        spawn_app_with(|s| s.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let t = app.create_token("auditor", "compliance", &[], &[]);
    let resp = app
        .http
        .get(app.url("/v1/exports?client=default"))
        .header("authorization", format!("Bearer {}", t.token))
        .header("x-forwarded-for", "198.51.100.9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.unwrap();
    let export = app
        .audit_rows()
        .into_iter()
        .find(|r| r.action == "export")
        .expect("an export audit row");
    assert_eq!(export.source.as_deref(), Some("198.51.100.9"));
}
