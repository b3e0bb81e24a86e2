//! `/metrics` counts exactly the traffic sent, is served only to
//! `server.metrics_allow`, and every response carries a request id.

use crate::helpers::{
    backend_env, json_with_status, on_postgres, spawn_app, spawn_app_with, Value,
};

/// The value of one sample line (`name{labels} value`) in a scrape, if any.
fn sample(scrape: &str, name_and_labels: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        (key == name_and_labels).then(|| value.parse().unwrap())
    })
}

async fn scrape(app: &crate::helpers::TestApp) -> String {
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    resp.text().await.unwrap()
}

const SMS_ROUTE: &str = r#"route="/v1/callbacks/{client}/{channel}""#;

#[tokio::test]
async fn metrics_after_known_traffic_show_exactly_that_traffic() {
    let app = spawn_app_with(|s| {
        // No pruning run: this test counts ingest traffic alone.
        s.retention.interval = std::time::Duration::ZERO;
        s.clients.push(
            toml::from_str(
                "id = \"bank\"\nclass = \"banking\"\nurl_token = \"t0k\"\nallow = [\"10.0.0.0/8\"]",
            )
            .unwrap(),
        );
    })
    .await;
    // Three new SMS events, one of them sent twice (a provider retry).
    for id in ["m1", "m2", "m3", "m1"] {
        let resp = app
            .get_callback(
                "default",
                "sms",
                &format!("logid={id}&mobile=919876500001&status=DELIVRD&time=2026-05-28+10:00:00"),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 200);
    }
    // A WhatsApp array with one good and one bad item.
    let resp = app
        .post_json(
            "whatsapp",
            r#"[{"logid":"w1","mobile":"919876500002","status":"read"},{"status":"read"}]"#,
        )
        .await;
    json_with_status(resp, 200).await;
    // A body with no valid event: 400, quarantined.
    json_with_status(app.post_json("sms", "{not json").await, 400).await;
    // Denied before the body: the bank client allows only 10.0.0.0/8.
    json_with_status(
        app.get_callback("bank", "sms", "logid=x&mobile=1").await,
        403,
    )
    .await;
    // An unknown channel and an unknown path.
    json_with_status(app.get_callback("default", "fax", "logid=x").await, 404).await;
    json_with_status(app.get("/nope").await, 404).await;

    let m = scrape(&app).await;
    let events = |client: &str, channel: &str, outcome: &str| {
        sample(
            &m,
            &format!(
                r#"authkey_receiver_events_total{{channel="{channel}",client="{client}",outcome="{outcome}"}}"#
            ),
        )
    };
    assert_eq!(events("default", "sms", "accepted"), Some(3.0));
    assert_eq!(events("default", "sms", "duplicate"), Some(1.0));
    assert_eq!(events("default", "sms", "rejected"), Some(1.0));
    assert_eq!(events("default", "whatsapp", "accepted"), Some(1.0));
    assert_eq!(events("default", "whatsapp", "rejected"), Some(1.0));
    assert_eq!(events("bank", "sms", "accepted"), None);
    assert_eq!(
        sample(
            &m,
            r#"authkey_receiver_access_denied_total{client="bank",reason="ip_not_allowed"}"#
        ),
        Some(1.0)
    );

    let requests = |method: &str, status: u16, channel: &str, route: &str| {
        sample(
            &m,
            &format!(
                r#"authkey_receiver_http_requests_total{{channel="{channel}",method="{method}",{route},status="{status}"}}"#
            ),
        )
    };
    assert_eq!(requests("GET", 200, "sms", SMS_ROUTE), Some(4.0));
    assert_eq!(requests("POST", 200, "whatsapp", SMS_ROUTE), Some(1.0));
    assert_eq!(requests("POST", 400, "sms", SMS_ROUTE), Some(1.0));
    assert_eq!(requests("GET", 403, "sms", SMS_ROUTE), Some(1.0));
    assert_eq!(requests("GET", 404, "none", SMS_ROUTE), Some(1.0));
    assert_eq!(
        requests("GET", 404, "none", r#"route="unmatched""#),
        Some(1.0)
    );
    let all_requests: f64 = m
        .lines()
        .filter(|l| l.starts_with("authkey_receiver_http_requests_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(all_requests, 9.0, "exactly the nine requests sent:\n{m}");

    // Seven items reached the writer: 4 + 2 + 1, each in some transaction.
    assert_eq!(
        sample(&m, "authkey_receiver_writer_batch_events_sum"),
        Some(7.0)
    );
    let commits = sample(&m, "authkey_receiver_writer_commit_seconds_count").unwrap();
    assert!((1.0..=6.0).contains(&commits), "{commits} commits");
    assert_eq!(sample(&m, "authkey_receiver_writer_queue_depth"), Some(0.0));
    assert_eq!(
        sample(&m, "authkey_receiver_writer_commit_failures_total"),
        Some(0.0)
    );
    let size = sample(&m, "authkey_receiver_database_size_bytes").unwrap();
    if on_postgres() {
        // The whole database as the server counts it, read after the scrape.
        let db: i64 = app
            .db()
            .one("SELECT pg_database_size(current_database())", &[]);
        assert!(size > 0.0 && size <= db as f64, "{size} of {db}");
    } else {
        let db = std::fs::metadata(app.data_dir.join("receiver.db"))
            .unwrap()
            .len() as f64;
        assert!(size >= db);
    }
    assert_eq!(sample(&m, "authkey_receiver_archive_runs_total"), None);
    assert_eq!(
        sample(
            &m,
            "authkey_receiver_archive_last_success_timestamp_seconds"
        ),
        Some(0.0)
    );
    assert!(!m.contains("919876500001"), "no phone in any label");
}

#[tokio::test]
async fn url_token_denials_are_counted_by_client_and_reason() {
    let app = spawn_app_with(|s| s.clients[0].url_token = Some("s3cret".into())).await;
    json_with_status(
        app.get_callback("default", "sms", "logid=a&mobile=919876500001&token=wrong")
            .await,
        401,
    )
    .await;
    json_with_status(
        app.get_callback("default", "sms", "logid=a&mobile=919876500001")
            .await,
        401,
    )
    .await;
    let m = scrape(&app).await;
    assert_eq!(
        sample(
            &m,
            r#"authkey_receiver_access_denied_total{client="default",reason="invalid_token"}"#
        ),
        Some(2.0)
    );
    assert!(!m.contains("s3cret") && !m.contains("wrong"));
}

#[tokio::test]
async fn metrics_from_an_address_outside_metrics_allow_get_403() {
    let app =
        spawn_app_with(|s| s.server.metrics_allow = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let body = json_with_status(app.get("/metrics").await, 403).await;
    assert_eq!(body["error"]["code"], "metrics_not_allowed");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1"));
}

#[tokio::test]
async fn metrics_relayed_by_a_proxy_get_403_even_from_loopback() {
    let app = spawn_app().await;
    for (name, value) in [
        ("x-forwarded-for", "127.0.0.1"),
        ("forwarded", "for=127.0.0.1"),
    ] {
        let resp = app
            .http
            .get(app.url("/metrics"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        let body = json_with_status(resp, 403).await;
        assert_eq!(body["error"]["code"], "metrics_not_allowed");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_safe_incoming_one_is_kept() {
    let app = spawn_app().await;
    let a = app.get("/healthz").await;
    let b = app.get("/nope").await;
    let id_a = a.headers()["x-request-id"].to_str().unwrap().to_string();
    let id_b = b.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id_a.len(), 32);
    assert_ne!(id_a, id_b);

    let kept = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "nginx-42.a_b")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "nginx-42.a_b");
    let replaced = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id\"{}")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "bad id\"{}");
}

#[tokio::test]
async fn wrong_method_on_a_served_path_gets_405_not_404() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = app.http.delete(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{path}");
        assert_eq!(resp.headers()["allow"], "GET", "{path}");
    }
}

#[tokio::test]
async fn json_logs_carry_one_request_line_with_its_fields_and_no_token_or_phone() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let log_path = tmp.path().join("stderr.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
        .arg("serve")
        .env("AUTHKEY_RECEIVER__SERVER__LISTEN", "127.0.0.1:0")
        .env(
            "AUTHKEY_RECEIVER__STORAGE__DATA_DIR",
            tmp.path().join("data"),
        )
        .env("AUTHKEY_RECEIVER__ARCHIVE__DIR", tmp.path().join("archive"))
        .envs(backend_env(&tmp.path().join("data")))
        .env("AUTHKEY_RECEIVER__LOG__FORMAT", "json")
        .env("AUTHKEY_RECEIVER__CLIENTS__0__URL_TOKEN", "tok-5ecret")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let read_log = || {
        let mut text = String::new();
        std::fs::File::open(&log_path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    };
    let started = std::time::Instant::now();
    let addr = loop {
        let text = read_log();
        if let Some(rest) = text.split("listening on http://").nth(1) {
            break rest.split('"').next().unwrap().to_string();
        }
        assert!(
            started.elapsed().as_secs() < 10,
            "no listening line: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let http = reqwest::Client::new();
    let resp = http
        .get(format!(
            "http://{addr}/v1/callbacks/default/sms?logid=marker-77&mobile=919876512345&status=DELIVRD&token=tok-5ecret"
        ))
        .header("x-request-id", "log-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let denied = http
        .get(format!(
            "http://{addr}/v1/callbacks/default/sms?logid=L2&mobile=919876512345&token=wrong-tok"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 401);
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(child.wait().unwrap().success());

    let text = read_log();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let finished: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "request finished")
        .collect();
    assert_eq!(finished.len(), 2, "{text}");
    let ok = finished
        .iter()
        .find(|l| l["span"]["request_id"] == "log-test-1")
        .expect("the request id is logged");
    let span = &ok["span"];
    assert_eq!(span["status"], 200);
    assert_eq!(span["client"], "default");
    assert_eq!(span["channel"], "sms");
    assert_eq!(span["method"], "GET");
    assert_eq!(span["route"], "/v1/callbacks/{client}/{channel}");
    assert!(span["latency_ms"].as_f64().unwrap() > 0.0);
    let denied_line = finished
        .iter()
        .find(|l| l["span"]["status"] == 401)
        .unwrap();
    assert_eq!(denied_line["span"]["client"], "default");
    for secret in [
        "tok-5ecret",
        "wrong-tok",
        "9876512345",
        "logid=",
        "marker-77",
    ] {
        assert!(!text.contains(secret), "`{secret}` is in the log:\n{text}");
    }
}

#[tokio::test]
async fn the_pruning_task_reports_its_archive_runs_in_the_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = crate::helpers::test_settings(tmp.path());
    authkey_receiver::store::Store::migrate(&settings.storage).unwrap();
    let old = chrono::Utc::now().timestamp_millis() - 200 * 86_400_000;
    let db = crate::helpers::TestDb::open(tmp.path());
    let key = Value::Blob((0..16).map(|i| i * 0x11).collect());
    db.execute(
        "INSERT INTO events (client_id, channel, direction, provider_message_id, phone, status, \
         received_at, source_ip, payload, dedup_key) VALUES ('default', 'sms', 'status', 'old1', \
         '+919876500001', 'sent', ?1, '127.0.0.1', '{}', ?2)",
        &[old.into(), key.clone()],
    );
    if db.is_postgres() {
        // Every stored event has its dedup key there (migrations/postgres).
        db.execute("INSERT INTO event_keys (dedup_key) VALUES (?1)", &[key]);
    }
    let app = crate::helpers::spawn_app_in(tmp.path(), |_| {}).await;
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(&app).await;
        if sample(
            &text,
            r#"authkey_receiver_archive_runs_total{outcome="ok"}"#,
        ) == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        sample(
            &text,
            r#"authkey_receiver_archive_runs_total{outcome="ok"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "authkey_receiver_archive_rows_total"),
        Some(1.0)
    );
    assert!(
        sample(
            &text,
            "authkey_receiver_archive_last_success_timestamp_seconds"
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(app.count("events"), 0);
}

#[tokio::test]
async fn metrics_are_served_anywhere_with_a_valid_admin_token_and_refused_with_a_revoked_one() {
    let app =
        spawn_app_with(|s| s.server.metrics_allow = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let t = app.create_token("prometheus", "support", &[], &[]);
    let with = |token: &str| {
        app.http
            .get(app.url("/metrics"))
            .header("authorization", format!("Bearer {token}"))
            .header("x-forwarded-for", "198.51.100.7")
            .send()
    };
    let resp = with(&t.token).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("authkey_receiver_database_size_bytes"));
    let resp = with("akr_not-a-real-token").await.unwrap();
    assert_eq!(
        json_with_status(resp, 403).await["error"]["code"],
        "metrics_not_allowed"
    );
    let out = crate::helpers::cli(&app.data_dir, &["token", "revoke", "prometheus"], &[]);
    assert!(out.status.success());
    let resp = with(&t.token).await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
}

#[tokio::test]
async fn every_served_route_is_labelled_by_its_pattern_and_anything_else_as_unmatched() {
    let app = spawn_app_with(|s| s.retention.interval = std::time::Duration::ZERO).await;
    for path in [
        "/healthz",
        "/readyz",
        "/v1/exports",
        "/v1/messages/default/m1",
        "/v1/callbacks/default/sms?logid=r1&mobile=919876500001&status=sent",
        "/v1/callbacks/default/sms/extra",
        "/nowhere",
    ] {
        app.get(path).await;
    }
    let m = scrape(&app).await;
    for (route, status) in [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/v1/exports", 401),
        ("/v1/messages/{client}/{message_id}", 401),
        ("/v1/callbacks/{client}/{channel}", 200),
        ("unmatched", 404),
    ] {
        let count: f64 = m
            .lines()
            .filter(|l| {
                l.starts_with("authkey_receiver_http_requests_total{")
                    && l.contains(&format!("route=\"{route}\""))
                    && l.contains(&format!("status=\"{status}\""))
            })
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
            .sum();
        let expected = if route == "unmatched" { 2.0 } else { 1.0 };
        assert_eq!(count, expected, "{route} {status} in\n{m}");
    }
}
