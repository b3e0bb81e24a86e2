//! Crash safety and the run lock: the archive process aborted at each
//! failpoint, or SIGKILLed at random moments, then run again, leaves every
//! expired row in exactly one archive file and none in the database; the
//! pruning task and the cron command never archive at the same time.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::archive_support::*;
use crate::helpers::{
    backend_env, cli, on_postgres, skip_on_postgres, spawn_app_with, spawn_binary, TestDb,
};

/// Nothing of a crashed run is left over and every check passes.
fn assert_clean(fx: &Fixture, before: &BTreeMap<(String, String), Vec<Value>>, moved: &[&str]) {
    assert_moved_exactly_once(fx, before, moved);
    assert!(temp_files(&fx.archive_dir()).is_empty(), "temp files left");
    sha256sum_check_all(&fx.archive_dir());
    let out = fx.run(&["verify-archive"], &[]);
    assert!(
        out.status.success(),
        "verify-archive: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ledger = fx.count_all("archive_files") as usize;
    assert_eq!(ledger, archive_files(&fx.archive_dir()).len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_failpoint_then_a_rerun_archives_each_row_exactly_once() {
    for point in [
        "before_rename",
        "after_rename",
        "after_sums",
        "after_record",
        "after_delete_batch",
    ] {
        let fx = fixture(4, 12).await;
        let before = fx.snapshot();
        let now = months_ahead(3);
        let out = fx.run(
            &["archive", "--now", &now],
            &[("AUTHKEY_RECEIVER_FAILPOINT", point)],
        );
        assert!(!out.status.success(), "{point}: the run did not stop");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("failpoint `{point}`")),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = fx.archive(&["--now", &now]);
        assert!(out.contains("archive: "), "{point}: {out}");
        assert_clean(&fx, &before, &["std", "hold"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_deleting_old_archive_files_is_finished_by_the_next_run() {
    let fx = fixture(10_000, 10).await;
    fx.archive(&["--now", &months_ahead(3)]);
    let later = months_ahead(16);
    let out = fx.run(
        &["archive", "--now", &later],
        &[("AUTHKEY_RECEIVER_FAILPOINT", "after_file_removed")],
    );
    assert!(!out.status.success());
    let verify = fx.run(&["verify-archive"], &[]);
    assert_eq!(verify.status.code(), Some(1), "a recorded file is missing");
    fx.archive(&["--now", &later]);
    assert!(archive_files(&fx.archive_dir().join("std")).is_empty());
    assert!(!archive_files(&fx.archive_dir().join("hold")).is_empty());
    let verify = fx.run(&["verify-archive"], &[]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_then_a_rerun_archives_each_row_exactly_once() {
    let fx = fixture(25, 600).await;
    // Spread the rows over 12 days so a run writes many files.
    let db = fx.db();
    for (table, column) in [
        ("events", "received_at"),
        ("messages", "last_received_at"),
        ("rejected", "received_at"),
    ] {
        db.execute(
            &format!("UPDATE {table} SET {column} = {column} - (id % 12) * 86400000"),
            &[],
        );
    }
    let before = fx.snapshot();
    let now = months_ahead(3);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut delays = Vec::new();
    let mut killed_mid_run = 0;
    for _ in 0..6 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_millis(5 + (seed >> 33) % 250);
        delays.push(delay);
        let mut child = Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
            .arg("--config")
            .arg(&fx.config)
            .args(["archive", "--now", &now])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(
        killed_mid_run > 0,
        "every run ended before its kill: {delays:?}"
    );
    let out = fx.archive(&["--now", &now]);
    assert!(out.contains("archive: "), "delays {delays:?}: {out}");
    assert_clean(&fx, &before, &["std", "hold"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_exits_cleanly_without_touching_anything_while_another_run_holds_the_lock() {
    if skip_on_postgres(
        "archive.lock is the SQLite run lock; on PostgreSQL the pruning-task-and-cron test \
         below covers one archiver at a time",
    ) {
        return;
    }
    let fx = fixture(10_000, 10).await;
    let before = fx.snapshot();
    let lock = std::fs::File::create(fx.data().join("archive.lock")).unwrap();
    lock.lock().unwrap();
    let out = fx.run(&["archive", "--now", &months_ahead(3)], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("another archive run holds"), "{stdout}");
    assert!(stdout.contains("archive.lock"), "{stdout}");
    assert_eq!(fx.snapshot(), before);
    assert!(archive_files(&fx.archive_dir()).is_empty());
    drop(lock);
    fx.archive(&["--now", &months_ahead(3)]);
    assert_moved_exactly_once(&fx, &before, &["std", "hold"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pruning_task_archives_expired_rows_on_its_own() {
    let app = spawn_app_with(|s| s.retention.interval = Duration::from_millis(200)).await;
    for i in 0..20 {
        let resp = app
            .post_form(
                "sms",
                &format!("logid=p{i}&mobile=919876500001&status=sent"),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 200);
    }
    let ids: Vec<i64> = {
        let db = app.db();
        let days_100 = 100 * 86_400_000i64;
        db.execute(
            "UPDATE events SET received_at = received_at - ?1",
            &[days_100.into()],
        );
        db.execute(
            "UPDATE messages SET last_received_at = last_received_at - ?1",
            &[days_100.into()],
        );
        db.col("SELECT id FROM events ORDER BY id", &[])
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.count("events") > 0 || app.count("messages") > 0 {
        assert!(Instant::now() < deadline, "the pruning task never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let root = app.data_dir.join("archive");
    let mut got: Vec<i64> = archived(&root, "events", "default")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ids);
    // Callbacks still flow afterwards.
    let resp = app
        .post_form("sms", "logid=after&mobile=919876500001&status=sent")
        .await;
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pruning_task_and_the_cron_command_started_together_never_both_archive() {
    for _ in 0..3 {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        // Seed with the task off, then age the rows past retention.
        {
            let (mut seeder, addr) =
                spawn_binary(data, &[("AUTHKEY_RECEIVER__RETENTION__INTERVAL", "0s")]);
            let http = reqwest::Client::new();
            for chunk in 0..8 {
                let items: Vec<String> = (0..100)
                    .map(|i| {
                        format!(
                            "{{\"logid\":\"c{chunk}-{i}\",\"mobile\":\"919876500001\",\"status\":\"sent\"}}"
                        )
                    })
                    .collect();
                let resp = http
                    .post(format!("http://{addr}/v1/callbacks/default/sms"))
                    .header("content-type", "application/json")
                    .body(format!("[{}]", items.join(",")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status().as_u16(), 200);
            }
            seeder.kill().unwrap();
            seeder.wait().unwrap();
        }
        let db = TestDb::open(data);
        db.execute(
            "UPDATE events SET received_at = received_at - (100 + id % 5) * 86400000",
            &[],
        );
        db.execute(
            "UPDATE messages SET last_received_at = last_received_at - (100 + id % 5) * 86400000",
            &[],
        );
        let ids: Vec<i64> = db.col("SELECT id FROM events ORDER BY id", &[]);

        // Both at once: the server's task runs at start-up, cron right now.
        let cron = Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
            .arg("archive")
            .env("AUTHKEY_RECEIVER__STORAGE__DATA_DIR", data)
            .env("AUTHKEY_RECEIVER__ARCHIVE__DIR", data.join("archive"))
            .env("AUTHKEY_RECEIVER__ARCHIVE__BATCH_ROWS", "10")
            .envs(backend_env(data))
            .env_remove("AUTHKEY_RECEIVER_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut server, _) =
            spawn_binary(data, &[("AUTHKEY_RECEIVER__ARCHIVE__BATCH_ROWS", "10")]);
        let cron = cron.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&cron.stdout).into_owned();
        assert!(
            cron.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&cron.stderr)
        );
        let count = |t: &str| db.count(t);
        let deadline = Instant::now() + Duration::from_secs(20);
        while count("events") > 0 || count("messages") > 0 {
            assert!(
                Instant::now() < deadline,
                "rows never archived; cron said {stdout}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.kill().unwrap();
        server.wait().unwrap();
        let root = data.join("archive");
        let mut got: Vec<i64> = archived(&root, "events", "default")
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, ids, "cron said {stdout}");
        let ledger = db.count("archive_files");
        assert_eq!(ledger as usize, archive_files(&root).len());
        sha256sum_check_all(&root);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stops_promptly_with_the_pruning_task_running() {
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::test_settings(tmp.path());
    settings.retention.interval = Duration::from_millis(20);
    let app = authkey_receiver::startup::Application::build(settings).unwrap();
    let handle = app.handle();
    let running = tokio::spawn(app.run_until_stopped());
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.stop(true).await;
    let stopped = tokio::time::timeout(Duration::from_secs(10), running).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    // The task took and released the lock: a cron run gets it now.
    if !on_postgres() {
        let lock = std::fs::File::open(tmp.path().join("archive.lock")).unwrap();
        assert!(lock.try_lock().is_ok());
    }
    let cron = cli(tmp.path(), &["archive"], &[]);
    let stdout = String::from_utf8_lossy(&cron.stdout);
    assert!(cron.status.success(), "{stdout}");
    assert!(stdout.starts_with("archive: 0 rows, "), "{stdout}");
}
