//! Exports that include the archive: after a real `archive` run, rows come
//! from the database and the archive files, each exactly once (also while an
//! archive run is half done), masked exactly as they were before they were
//! archived, over HTTP and through the `export` command, and audited with
//! the full row count.

use std::collections::BTreeSet;

use authkey_receiver::export::rfc3339;
use serde_json::{json, Value};

use crate::archive_support::*;
use crate::helpers::{json_with_status, on_postgres};

/// Numbers ingested after the archive run, as providers send them.
const NEW_PHONES: [&str; 2] = ["447911123456", "14155552671"];

/// Digit runs that only a leaked number would show: the fixture's numbers
/// are `9198765xxxxx`, so `98765` is always inside the mask.
fn assert_masked(line: &str) {
    let mut record: Value = serde_json::from_str(line).unwrap();
    // The pseudonym is hex; it may hold any digits by chance.
    record.as_object_mut().unwrap().remove("pseudonym");
    let text = record.to_string();
    for secret in ["98765", "7911123456", "4155552671"] {
        assert!(!text.contains(secret), "`{secret}` leaked in {text}");
    }
}

/// No national number of the fixture's `per_client` phones (`9198765xxxxx`)
/// in `text`, nor any of the numbers ingested later.
fn assert_no_number(text: &str, per_client: usize) {
    let fixture = (0..per_client).map(|i| format!("98765{i:05}"));
    for n in fixture.chain(NEW_PHONES.iter().map(|p| p[2..].to_string())) {
        assert!(!text.contains(&n), "`{n}` leaked in {text}");
    }
}

/// (client, id, received_at): what makes an exported row one stored row.
type Key = (String, i64, String);

fn key_of(record: &Value) -> Key {
    (
        record["client_id"].as_str().unwrap().to_string(),
        record["id"].as_i64().unwrap(),
        record["received_at"].as_str().unwrap().to_string(),
    )
}

fn key_of_row(row: &Value) -> Key {
    (
        row["client_id"].as_str().unwrap().to_string(),
        row["id"].as_i64().unwrap(),
        rfc3339(row["received_at"].as_i64().unwrap()),
    )
}

fn keys(lines: &[String]) -> Vec<Key> {
    lines
        .iter()
        .map(|l| key_of(&serde_json::from_str(l).unwrap()))
        .collect()
}

/// Every live event of every client, as keys.
fn db_keys(fx: &Fixture) -> BTreeSet<Key> {
    CLIENTS
        .iter()
        .flat_map(|c| fx.rows("events", c))
        .map(|r| key_of_row(&r))
        .collect()
}

/// Asserts that no key appears twice; returns them as a set.
fn once_each(keys: Vec<Key>) -> BTreeSet<Key> {
    let n = keys.len();
    let set: BTreeSet<Key> = keys.into_iter().collect();
    assert_eq!(set.len(), n, "an exported row appears twice");
    set
}

async fn export_lines(fx: &Fixture, token: &str, query: &str) -> Vec<String> {
    let resp = fx.app.export(Some(token), None, query).await;
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.text().await.unwrap();
    body.lines().map(String::from).collect()
}

/// `filters` of the newest audit row.
fn last_audit_filters(fx: &Fixture) -> Value {
    let text: String = fx.db().one(
        "SELECT filters FROM audit_log WHERE action = 'export' ORDER BY id DESC LIMIT 1",
        &[],
    );
    serde_json::from_str(&text).unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_export_with_the_archive_returns_every_row_once_masked_as_before_archiving() {
    let fx = fixture(10_000, 6).await;
    let token = fx.app.create_token("auditor", "compliance", &[], &[]).token;
    let query = "format=ndjson&include_archive=true";
    let before = export_lines(&fx, &token, query).await;
    let moved: BTreeSet<Key> = keys(&before)
        .into_iter()
        .filter(|k| k.0 == "std" || k.0 == "hold")
        .collect();
    assert!(moved.len() >= 16, "{}", moved.len());

    fx.archive(&["--now", &months_ahead(3)]);
    assert!(fx.rows("events", "std").is_empty() && fx.rows("events", "hold").is_empty());
    let items: Vec<Value> = NEW_PHONES
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"logid": format!("std-new-{i}"), "mobile": p, "status": "delivered"}))
        .collect();
    let resp = fx
        .app
        .post_callback(
            "std",
            "sms",
            "application/json",
            Value::Array(items).to_string(),
        )
        .await;
    json_with_status(resp, 200).await;
    let live = db_keys(&fx);
    if !on_postgres() {
        // SQLite hands the archived ids out again (a PostgreSQL sequence
        // never does): rows are told apart by more than their id.
        let reused = live
            .iter()
            .filter(|k| k.0 == "std" && moved.iter().any(|m| m.1 == k.1))
            .count();
        assert!(reused > 0, "new rows reuse ids of archived rows");
    }

    let lines = export_lines(&fx, &token, query).await;
    let got = once_each(keys(&lines));
    let expected: BTreeSet<Key> = moved.union(&live).cloned().collect();
    assert_eq!(got, expected);
    // Archived rows read back exactly as they were exported from the database.
    let old: BTreeSet<&String> = before.iter().collect();
    let new: Vec<&String> = lines.iter().filter(|l| l.contains("std-new-")).collect();
    assert_eq!(new.len(), NEW_PHONES.len());
    for line in &lines {
        assert!(old.contains(line) || new.contains(&line), "{line}");
        assert_masked(line);
    }
    assert!(new[0].contains("\"phone\":\"+44******3456\""), "{}", new[0]);
    // Database rows first, then the archive's.
    let first_archived = keys(&lines).iter().position(|k| moved.contains(k)).unwrap();
    assert!(keys(&lines)[first_archived..]
        .iter()
        .all(|k| moved.contains(k)));
    let audit = fx.app.last_audit();
    assert_eq!(
        (audit.action.as_str(), audit.outcome.as_str(), audit.rows),
        ("export", "ok", Some(lines.len() as i64))
    );
    assert_eq!(last_audit_filters(&fx)["include_archive"], true);

    let db_only = export_lines(&fx, &token, "format=ndjson").await;
    assert_eq!(once_each(keys(&db_only)), live);
    assert_eq!(fx.app.last_audit().rows, Some(live.len() as i64));
    assert_eq!(last_audit_filters(&fx)["include_archive"], false);

    let csv = export_lines(&fx, &token, "client=std&include_archive=1").await;
    let std_rows = expected.iter().filter(|k| k.0 == "std").count();
    assert_eq!(csv.len(), 1 + std_rows);
    assert_no_number(&csv.join("\n"), 6);
    assert_eq!(fx.app.last_audit().rows, Some(std_rows as i64));

    let resp = fx
        .app
        .export(Some(&token), None, "include_archive=maybe")
        .await;
    let body = json_with_status(resp, 400).await;
    assert_eq!(body["error"]["code"], "invalid_parameter");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`include_archive`"));
    assert_eq!(fx.app.last_audit().outcome, "invalid_parameter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_command_includes_the_archive_with_the_same_filters_and_audits_it() {
    let fx = fixture(10_000, 5).await;
    let before = fx.snapshot();
    fx.archive(&["--now", &months_ahead(3)]);

    let out = fx.run(
        &["export", "--client", "std", "--include-archive"],
        &[("USER", "ops")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let std_rows = before[&("events".to_string(), "std".to_string())].len();
    let csv = stdout(&out);
    assert_eq!(csv.lines().count(), 1 + std_rows);
    assert!(csv.contains(",+91******0003,"), "{csv}");
    assert_no_number(&csv, 5);
    assert!(stderr(&out).contains(&format!("exported {std_rows} rows")));
    let audit = fx.app.last_audit();
    assert_eq!(
        (audit.actor.as_str(), audit.rows),
        ("local:ops", Some(std_rows as i64))
    );
    assert_eq!(last_audit_filters(&fx)["include_archive"], true);

    let out = fx.run(&["export", "--client", "std"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "only the header");
    assert_eq!(fx.app.last_audit().rows, Some(0));
    assert_eq!(last_audit_filters(&fx)["include_archive"], false);

    let out = fx.run(
        &[
            "export",
            "--include-archive",
            "--format",
            "ndjson",
            "--channel",
            "whatsapp",
            "--status",
            "read",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    let expected: BTreeSet<Key> = before
        .iter()
        .filter(|((table, _), _)| table == "events")
        .flat_map(|(_, rows)| rows)
        .filter(|r| r["channel"] == "whatsapp" && r["status"] == "read")
        .map(key_of_row)
        .collect();
    assert!(expected.iter().any(|k| k.0 == "std") && expected.iter().any(|k| k.0 == "bank"));
    assert_eq!(once_each(keys(&lines)), expected);
    lines.iter().for_each(|l| assert_masked(l));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_a_half_done_archive_run_are_exported_once() {
    for point in ["after_rename", "after_record"] {
        let fx = fixture(4, 12).await;
        let expected = db_keys(&fx);
        let out = fx.run(
            &["archive", "--now", &months_ahead(3)],
            &[("AUTHKEY_RECEIVER_FAILPOINT", point)],
        );
        assert!(!out.status.success(), "{point}: the run did not stop");
        let in_files: BTreeSet<Key> = archived(&fx.archive_dir(), "events", "std")
            .iter()
            .map(key_of_row)
            .collect();
        let live = db_keys(&fx);
        assert!(
            in_files.intersection(&live).count() > 0,
            "{point}: rows are in a file and in the database"
        );

        let out = fx.run(&["export", "--include-archive", "--format", "ndjson"], &[]);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
        assert_eq!(once_each(keys(&lines)), expected, "{point}");
        assert_eq!(fx.app.last_audit().rows, Some(expected.len() as i64));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_archive_file_fails_the_export_naming_the_file_and_is_audited() {
    let fx = fixture(10_000, 30).await;
    fx.archive(&["--now", &months_ahead(3)]);
    let file = archive_files(&fx.archive_dir().join("std"))
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events-")
        })
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();

    let out = fx.run(&["export", "--client", "std", "--include-archive"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(stderr(&out).contains(&name), "{}", stderr(&out));
    assert!(!stderr(&out).contains("98765"), "{}", stderr(&out));
    assert_eq!(fx.app.last_audit().outcome, "archive_unreadable");
}
