//! The archive job through the real binary: which rows move when (standard,
//! banking, override), what the files look like, idempotence, dry runs,
//! `--client`, keep_months and legal hold, verify-archive, and reading rows
//! back for exports.

use std::os::unix::fs::PermissionsExt;

use authkey_receiver::archive::reader::read_rows;
use authkey_receiver::store::archive::Kind;

use crate::archive_support::*;
use crate::helpers::{on_postgres, skip_on_postgres};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_months_ahead_moves_only_standard_rows_and_thirteen_moves_banking_too() {
    let fx = fixture(10_000, 40).await;
    let before = fx.snapshot();
    let old = at_months_ahead(0) - chrono::Months::new(13);
    let recent = at_months_ahead(0) - chrono::Months::new(1);
    for at in [old, recent] {
        fx.db().execute(
            "INSERT INTO audit_log (at, actor, action) VALUES (?1, 'test', 'export')",
            &[at.timestamp_millis().into()],
        );
    }

    let out = fx.archive(&["--now", &months_ahead(3)]);
    assert!(out.contains("archive: "), "{out}");
    assert_moved_exactly_once(&fx, &before, &["std", "hold"]);
    let audit: i64 = fx
        .db()
        .one("SELECT count(*) FROM audit_log WHERE actor = 'test'", &[]);
    assert_eq!(
        audit, 1,
        "the 13-month-old audit row goes, the recent one stays"
    );

    fx.archive(&["--now", &months_ahead(7)]);
    assert_moved_exactly_once(&fx, &before, &["std", "hold", "custom"]);

    fx.archive(&["--now", &months_ahead(13)]);
    assert_moved_exactly_once(&fx, &before, &["std", "hold", "custom", "bank"]);
    if !on_postgres() {
        // SQLite keeps freed pages in the file unless the job vacuums.
        let free: i64 = fx.db().one("PRAGMA freelist_count", &[]);
        assert_eq!(free, 0, "free pages were handed back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_files_are_private_gzip_ndjson_with_checksums_and_ledger_rows() {
    let fx = fixture(7, 30).await;
    let before = fx.rows("events", "std");
    let out = fx.archive(&["--now", &months_ahead(3)]);
    let root = fx.archive_dir();
    let files = archive_files(&root.join("std"));
    // sms: events, messages, rejected; whatsapp: events, messages.
    assert_eq!(files.len(), 5, "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "{} is not gzip", f.display());
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let (rows, sha): (i64, String) = fx.db().row(
            "SELECT rows, sha256 FROM archive_files WHERE path = ?1",
            &[(&rel).into()],
        );
        assert_eq!(rows as usize, lines(f).len(), "{rel}");
        assert_eq!(sha.len(), 64);
        assert!(out.contains(&rel), "summary names {rel}: {out}");
    }
    walk(&root, &mut |p| {
        if p.is_dir() {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", p.display());
        }
    });
    // Every line is the complete row, raw payload included.
    let archived = archived(&root, "events", "std");
    assert_eq!(archived, before);
    assert!(archived[0]["payload"]
        .as_str()
        .unwrap()
        .contains("payload kept"));
    let removed: u64 = out
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let total_lines: usize = archive_files(&root).iter().map(|f| lines(f).len()).sum();
    assert_eq!(removed as usize, total_lines, "{out}");
    sha256sum_check_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_changes_nothing() {
    let fx = fixture(10_000, 20).await;
    let now = months_ahead(3);
    fx.archive(&["--now", &now]);
    let snapshot = fx.snapshot();
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = archive_files(&fx.archive_dir())
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let ledger = fx.count_all("archive_files");
    let out = fx.archive(&["--now", &now]);
    assert!(out.contains("archive: 0 rows, 0 files, 0 bytes"), "{out}");
    assert_eq!(fx.snapshot(), snapshot);
    assert_eq!(fx.count_all("archive_files"), ledger);
    let again: Vec<(std::path::PathBuf, Vec<u8>)> = archive_files(&fx.archive_dir())
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    assert_eq!(again, files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_what_would_move_and_changes_nothing() {
    let fx = fixture(10_000, 25).await;
    let before = fx.snapshot();
    let out = fx.archive(&["--dry-run", "--now", &months_ahead(13)]);
    assert!(
        out.contains("would archive 25 events rows of std/sms"),
        "{out}"
    );
    assert!(
        out.contains("would archive 25 events rows of bank/sms"),
        "{out}"
    );
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(fx.snapshot(), before);
    assert_eq!(fx.count_all("archive_files"), 0);
    assert!(
        !fx.archive_dir().exists(),
        "dry run created the archive dir"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_flag_limits_the_run_and_an_unknown_client_exits_2() {
    let fx = fixture(10_000, 10).await;
    let before = fx.snapshot();
    fx.archive(&["--client", "bank", "--now", &months_ahead(13)]);
    assert_moved_exactly_once(&fx, &before, &["bank"]);

    let out = fx.run(&["archive", "--client", "nobody"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown client `nobody`"));
    let out = fx.run(&["archive", "--now", "next tuesday"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_files_are_deleted_after_keep_months_with_an_audit_row_unless_on_legal_hold() {
    let fx = fixture(10_000, 10).await;
    fx.archive(&["--now", &months_ahead(3)]);
    let std_files = archive_files(&fx.archive_dir().join("std"));
    let hold_files = archive_files(&fx.archive_dir().join("hold"));
    assert!(!std_files.is_empty() && !hold_files.is_empty());

    // Written at +3 months, kept 12: still there at +14, gone at +16.
    let dry = fx.archive(&["--dry-run", "--now", &months_ahead(16)]);
    assert!(dry.contains("would delete archive file std/"), "{dry}");
    assert!(!dry.contains("would delete archive file hold/"), "{dry}");
    fx.archive(&["--now", &months_ahead(14)]);
    assert_eq!(archive_files(&fx.archive_dir().join("std")), std_files);
    let out = fx.archive(&["--now", &months_ahead(16)]);
    assert!(
        out.contains(&format!("{} old archive files deleted", std_files.len())),
        "{out}"
    );
    assert!(archive_files(&fx.archive_dir().join("std")).is_empty());
    assert!(
        !fx.archive_dir().join("std").join("sms").exists(),
        "empty dirs removed"
    );
    assert_eq!(archive_files(&fx.archive_dir().join("hold")), hold_files);
    let audited: i64 = fx.db().one(
        "SELECT count(*) FROM audit_log WHERE action = 'archive_file_deleted' \
         AND client_id = 'std' AND filters LIKE '%\"path\":\"std/%'",
        &[],
    );
    assert_eq!(audited as usize, std_files.len());
    let ledger: i64 = fx.db().one(
        "SELECT count(*) FROM archive_files WHERE client_id = 'std'",
        &[],
    );
    assert_eq!(ledger, 0);
    let verify = fx.run(&["verify-archive"], &[]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_archive_names_a_flipped_byte_a_truncated_file_and_a_missing_file() {
    let fx = fixture(10_000, 50).await;
    fx.archive(&["--now", &months_ahead(3)]);
    let ok = fx.run(&["verify-archive"], &[]);
    let stdout = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(ok.status.success(), "{stdout}");
    assert!(stdout.contains("0 problem(s)"), "{stdout}");

    let root = fx.archive_dir();
    let files = archive_files(&root.join("std"));
    let rel = |p: &std::path::Path| {
        p.strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let (flipped, truncated, missing) = (&files[0], &files[1], &files[2]);

    let mut bytes = std::fs::read(flipped).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(flipped, bytes).unwrap();
    let out = fx.run(&["verify-archive"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("FAILED {}", rel(flipped))),
        "{stdout}"
    );
    assert_eq!(stdout.matches("FAILED").count(), 1, "{stdout}");

    let bytes = std::fs::read(truncated).unwrap();
    std::fs::write(truncated, &bytes[..bytes.len() - 9]).unwrap();
    std::fs::remove_file(missing).unwrap();
    let out = fx.run(&["verify-archive", root.to_str().unwrap()], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for (f, why) in [
        (flipped, "checksum"),
        (truncated, "gzip"),
        (missing, "missing"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("FAILED {}:", rel(f))))
            .unwrap_or_else(|| panic!("{} not named: {stdout}", rel(f)));
        assert!(line.contains(why), "{line}");
    }

    // A copy elsewhere (cold storage) is checked without the database.
    let out = fx.run(&["verify-archive", "/nonexistent/archive"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_archive_checks_a_copy_without_the_database() {
    let fx = fixture(10_000, 10).await;
    fx.archive(&["--now", &months_ahead(3)]);
    let copy = fx.tmp.path().join("cold");
    let status = std::process::Command::new("cp")
        .args(["-a"])
        .arg(fx.archive_dir())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
        .args(["verify-archive"])
        .arg(&copy)
        .env(
            "AUTHKEY_RECEIVER__STORAGE__DATA_DIR",
            fx.tmp.path().join("nodb"),
        )
        .env_remove("AUTHKEY_RECEIVER_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let files = archive_files(&copy).len();
    assert!(
        stdout.contains(&format!("verify-archive: {files} files")),
        "{stdout}"
    );
    let victim = &archive_files(&copy)[0];
    let bytes = std::fs::read(victim).unwrap();
    std::fs::write(victim, &bytes[..bytes.len() / 2]).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
        .args(["verify-archive"])
        .arg(&copy)
        .env(
            "AUTHKEY_RECEIVER__STORAGE__DATA_DIR",
            fx.tmp.path().join("nodb"),
        )
        .env_remove("AUTHKEY_RECEIVER_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_rows_stream_back_for_a_client_and_time_range() {
    let fx = fixture(10_000, 30).await;
    let events = fx.rows("events", "bank");
    let rejected = fx.rows("rejected", "bank");
    fx.archive(&["--now", &months_ahead(13)]);
    let back: Vec<serde_json::Value> =
        read_rows(&fx.archive_dir(), "bank", Kind::Events, None, None)
            .unwrap()
            .map(|r| serde_json::Value::Object(r.unwrap()))
            .collect();
    let mut sorted = back.clone();
    sorted.sort_by_key(|r| r["id"].as_i64().unwrap());
    assert_eq!(sorted, events);
    let back: Vec<_> = read_rows(&fx.archive_dir(), "bank", Kind::Rejected, None, None)
        .unwrap()
        .map(|r| serde_json::Value::Object(r.unwrap()))
        .collect();
    assert_eq!(back, rejected);

    let t = events[0]["received_at"].as_i64().unwrap();
    let none = read_rows(&fx.archive_dir(), "bank", Kind::Events, Some(t + 1), None)
        .unwrap()
        .filter(|r| r.as_ref().unwrap()["received_at"].as_i64().unwrap() <= t)
        .count();
    assert_eq!(none, 0);
    let before_any = read_rows(&fx.archive_dir(), "bank", Kind::Events, None, Some(t))
        .unwrap()
        .count();
    assert_eq!(before_any, 0);
    let other = read_rows(&fx.archive_dir(), "nobody", Kind::Events, None, None)
        .unwrap()
        .count();
    assert_eq!(other, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecorded_file_whose_rows_are_gone_is_kept_reported_and_fails_the_run() {
    let fx = fixture(10_000, 5).await;
    fx.archive(&["--now", &months_ahead(3)]);
    let dir = fx.archive_dir().join("std/sms/2020/01");
    std::fs::create_dir_all(&dir).unwrap();
    let stray = dir.join("events-2020-01-01-900000-900004.ndjson.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"{\"id\":900000}\n{\"id\":900004}\n").unwrap();
    std::fs::write(&stray, gz.finish().unwrap()).unwrap();

    let out = fx.run(&["archive", "--now", &months_ahead(3)], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("std/sms/2020/01/events-2020-01-01-900000-900004.ndjson.gz"),
        "{stderr}"
    );
    assert!(stray.exists(), "an unrecorded file is never deleted");
    let verify = fx.run(&["verify-archive"], &[]);
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        stdout.contains("FAILED std/sms/2020/01/events-2020-01-01-900000-900004.ndjson.gz: not recorded in archive_files"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_without_a_usable_database_fails_with_the_reason() {
    if skip_on_postgres("a missing or unopenable receiver.db is a SQLite condition") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str], data: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
            .args(args)
            .env("AUTHKEY_RECEIVER__STORAGE__DATA_DIR", data)
            .env("AUTHKEY_RECEIVER__ARCHIVE__DIR", data.join("archive"))
            .env_remove("AUTHKEY_RECEIVER_CONFIG")
            .output()
            .unwrap()
    };
    let out = run(&["archive", "--dry-run"], &tmp.path().join("empty"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("receiver.db") && stderr.contains("no such file"),
        "{stderr}"
    );
    assert!(
        !tmp.path().join("empty").exists(),
        "a dry run creates nothing"
    );

    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = run(&["archive"], &file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("authkey-receiver: archive failed: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_reuse_ids_of_an_archived_range_are_archived_not_lost() {
    let fx = fixture(10_000, 5).await;
    let now = months_ahead(3);
    fx.archive(&["--now", &now]);
    let old: Vec<i64> = archived(&fx.archive_dir(), "events", "hold")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    // `hold` had the highest ids; once deleted, SQLite hands them out again
    // (a PostgreSQL sequence never does; the rows must be archived all the same).
    let resp = fx
        .app
        .post_callback(
            "hold",
            "sms",
            "application/json",
            r#"[{"logid":"late-1","mobile":"919876511111","status":"sent"},{"logid":"late-2","mobile":"919876511112","status":"sent"}]"#,
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let late = fx.rows("events", "hold");
    assert_eq!(late.len(), 2);
    if !on_postgres() {
        assert!(
            late.iter()
                .all(|r| old.contains(&r["id"].as_i64().unwrap())),
            "the new rows reuse archived ids: {late:?} vs {old:?}"
        );
    }
    fx.archive(&["--now", &now]);
    assert!(fx.rows("events", "hold").is_empty());
    let lines: Vec<serde_json::Value> = archive_files(&fx.archive_dir().join("hold"))
        .iter()
        .flat_map(|p| lines(p))
        .collect();
    for row in &late {
        assert_eq!(
            lines.iter().filter(|l| *l == row).count(),
            1,
            "{row} is not in exactly one file"
        );
    }
    sha256sum_check_all(&fx.archive_dir());
}

#[test]
fn archive_settings_out_of_range_are_config_errors_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[archive]\nkeep_months = 0\n", "archive.keep_months"),
        ("[archive]\nbatch_rows = 0\n", "archive.batch_rows"),
        (
            "[[clients]]\nid = \"a\"\nclass = \"standard\"\nlegal_hold = \"yes\"\n",
            "clients[0].legal_hold",
        ),
    ] {
        let path = tmp.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
            .arg("--config")
            .arg(&path)
            .args(["archive", "--dry-run"])
            .env_remove("AUTHKEY_RECEIVER_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(&format!("`{key}`")), "{text}: {stderr}");
    }
}
