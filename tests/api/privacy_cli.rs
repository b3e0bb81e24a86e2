//! The privacy commands on the host (`token`, `export`, `audit`), the
//! pseudonym key, and a log-capture check that no number reaches the log.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use authkey_receiver::startup::{Application, StartError};

use crate::helpers::{
    cli, json_with_status, spawn_app_in, spawn_binary_logged, test_settings, TestDb,
};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn token_create_prints_the_token_alone_on_its_last_line_and_stores_only_a_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cli(
        tmp.path(),
        &[
            "token", "create", "--name", "ops", "--role", "owner", "--totp",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let token = text.trim_end().lines().last().unwrap();
    assert!(token.starts_with("akr_") && !token.contains(' '), "{text}");
    assert!(
        text.contains("otpauth://totp/authkey-receiver:ops?secret="),
        "{text}"
    );

    let (hash, role): (Vec<u8>, String) =
        TestDb::open(tmp.path()).row("SELECT token_hash, role FROM api_tokens", &[]);
    use sha2::Digest;
    assert_eq!(hash, sha2::Sha256::digest(token.as_bytes()).to_vec());
    assert_eq!(role, "owner");

    let list = cli(tmp.path(), &["token", "list"], &[]);
    let listed = stdout(&list);
    assert!(list.status.success());
    assert!(listed.contains("ops\towner\tall\tyes\t"), "{listed}");
    assert!(!listed.contains(token), "list shows the token");
}

#[test]
fn token_commands_refuse_bad_input_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec!["token", "create", "--name", name, "--role", "support"];
        args.extend_from_slice(extra);
        cli(tmp.path(), &args, &[])
    };
    assert!(create("desk", &[]).status.success());
    for (out, code, needle) in [
        (create("desk", &[]), 2, "exists already"),
        (create("has space", &[]), 2, "not a token name"),
        (
            create("x", &["--client", "nobody"]),
            2,
            "unknown client `nobody`",
        ),
        (
            cli(tmp.path(), &["token", "revoke", "ghost"], &[]),
            1,
            "no live token",
        ),
        (
            cli(
                tmp.path(),
                &["token", "create", "--name", "y", "--role", "god"],
                &[],
            ),
            2,
            "god",
        ),
    ] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(cli(tmp.path(), &["token", "revoke", "desk"], &[])
        .status
        .success());
    let again = cli(tmp.path(), &["token", "revoke", "desk"], &[]);
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn audit_prints_every_row_and_filters_by_since() {
    let tmp = tempfile::tempdir().unwrap();
    let create = cli(
        tmp.path(),
        &["token", "create", "--name", "desk", "--role", "support"],
        &[("USER", "asha")],
    );
    assert!(create.status.success());
    let out = cli(tmp.path(), &["audit"], &[]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("at\tactor\trole\taction"));
    let cells: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(&cells[1..6], ["local:asha", "-", "token.create", "-", "ok"]);

    let out = cli(
        tmp.path(),
        &["audit", "--since", "2999-01-01T00:00:00Z"],
        &[],
    );
    assert_eq!(stdout(&out).lines().count(), 1);
    let out = cli(tmp.path(), &["audit", "--since", "last week"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--since"));
}

#[tokio::test]
async fn the_export_command_writes_a_private_masked_file_and_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_app_in(tmp.path(), |_| {}).await;
    let resp = app
        .get_callback(
            "default",
            "sms",
            "mobile=919812345678&status=DELIVRD&logid=c1&1=hello+919812345678",
        )
        .await;
    json_with_status(resp, 200).await;
    let file = tmp.path().join("out.csv");
    let out = cli(
        tmp.path(),
        &[
            "export",
            "--client",
            "default",
            "--output",
            file.to_str().unwrap(),
        ],
        &[("USER", "ops")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("exported 1 rows"));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let body = std::fs::read_to_string(&file).unwrap();
    assert_eq!(body.lines().count(), 2);
    assert!(body.contains(",+91******5678,"), "{body}");
    assert!(!body.contains("12345678"), "{body}");

    let ndjson = cli(tmp.path(), &["export", "--format", "ndjson"], &[]);
    assert!(stdout(&ndjson).contains("\"phone\":\"+91******5678\""));
    let bad = cli(tmp.path(), &["export", "--channel", "fax"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("`channel`"));

    let audit = app.audit_rows();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].actor, "local:ops");
    assert_eq!(audit[0].action, "export");
    assert_eq!(audit[0].rows, Some(1));
    assert_eq!(audit[0].source.as_deref(), Some("local"));
}

async fn pseudonym_of_first_row(app: &crate::helpers::TestApp) -> String {
    let t = app.create_token(
        &format!("a{}", app.audit_rows().len()),
        "compliance",
        &[],
        &[],
    );
    let resp = app.export(Some(&t.token), None, "format=ndjson").await;
    let text = resp.text().await.unwrap();
    let row: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    row["pseudonym"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn pseudonyms_are_stable_across_restarts_and_differ_with_another_key() {
    let query = "mobile=919812345678&status=DELIVRD&logid=p1";
    let dir_a = tempfile::tempdir().unwrap();
    let first = spawn_app_in(dir_a.path(), |_| {}).await;
    json_with_status(first.get_callback("default", "sms", query).await, 200).await;
    let before = pseudonym_of_first_row(&first).await;
    let key = std::fs::read(dir_a.path().join("pseudonym.key")).unwrap();

    let restarted = spawn_app_in(dir_a.path(), |_| {}).await;
    assert_eq!(pseudonym_of_first_row(&restarted).await, before);
    assert_eq!(
        std::fs::read(dir_a.path().join("pseudonym.key")).unwrap(),
        key
    );

    let dir_b = tempfile::tempdir().unwrap();
    let other = spawn_app_in(dir_b.path(), |_| {}).await;
    json_with_status(other.get_callback("default", "sms", query).await, 200).await;
    let elsewhere = pseudonym_of_first_row(&other).await;
    assert_ne!(elsewhere, before);
    assert_eq!(elsewhere.len(), 32);
}

#[tokio::test]
async fn the_service_refuses_to_start_with_a_pseudonym_key_others_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    drop(spawn_app_in(tmp.path(), |_| {}).await);
    let key = tmp.path().join("pseudonym.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut settings = test_settings(tmp.path());
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    match Application::build(settings) {
        Err(StartError::Key(e)) => assert!(e.to_string().contains("chmod 600"), "{e}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("started with a world-readable key"),
    }
    let out = cli(
        tmp.path(),
        &["serve"],
        &[("AUTHKEY_RECEIVER__SERVER__LISTEN", "127.0.0.1:0")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("pseudonym key"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ingested_number_appears_in_the_log() {
    let phones = ["919812345678", "447911123456", "14155552671", "9876543210"];
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr, log) = spawn_binary_logged(
        tmp.path(),
        &[
            ("AUTHKEY_RECEIVER__LOG__LEVEL", "trace"),
            ("RUST_LOG", "trace"),
        ],
    );
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");
    for (i, p) in phones.iter().enumerate() {
        let resp = http
            .get(url(&format!(
                "/v1/callbacks/default/sms?mobile={p}&status=DELIVRD&logid=L{i}&1=code+for+{p}"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        // Refused bodies are logged too: a bad phone, bad JSON holding one.
        let resp = http
            .post(url("/v1/callbacks/default/sms"))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"logid":"x","mobile":"{p}x","status":"sent"}}"#
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let resp = http
            .post(url("/v1/callbacks/default/sms"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"mobile": {p}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
    }
    let token = stdout(&cli(
        tmp.path(),
        &[
            "token",
            "create",
            "--name",
            "auditor",
            "--role",
            "compliance",
        ],
        &[],
    ))
    .trim_end()
    .lines()
    .last()
    .unwrap()
    .to_string();
    for path in [
        "/v1/exports",
        "/v1/exports?format=ndjson",
        "/v1/messages/default/L0",
        "/v1/exports?client=919812345678",
        "/v1/exports?channel=447911123456",
    ] {
        let resp = http
            .get(url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert!([200, 400, 404].contains(&status), "{path}: {status}");
        if status != 200 {
            for p in phones {
                assert!(!body.contains(p), "{path} echoed {p}: {body}");
            }
        }
    }
    let resp = http
        .get(url("/v1/exports"))
        .bearer_auth("akr_919812345678")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let stop = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stop.success());
    let waited = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(waited.success());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = log.lock().unwrap().clone();
    assert!(log.contains("listening on"), "{log}");
    assert!(
        log.lines().count() > 5,
        "too little was logged to judge:\n{log}"
    );
    for p in phones {
        // Eight digits: longer than any run in a timestamp, port or thread id.
        for window in p.as_bytes().windows(8) {
            let w = std::str::from_utf8(window).unwrap();
            assert!(!log.contains(w), "`{w}` of {p} is in the log:\n{log}");
        }
    }
}
