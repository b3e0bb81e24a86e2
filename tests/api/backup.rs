//! A backup taken while callbacks flow (README "Operations": `VACUUM INTO`
//! or `sqlite3 .backup`) restores to a consistent database that holds every
//! callback acknowledged before the backup began.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::helpers::{skip_on_postgres, spawn_app, stored_ids, tool_available, Load, TestDb};

fn check_restored(backup: &Path, acked_before: &HashSet<String>) {
    let db = TestDb::sqlite_file(backup);
    let integrity: String = db.one("PRAGMA integrity_check", &[]);
    assert_eq!(integrity, "ok");
    let stored = stored_ids(&db);
    let missing: Vec<_> = acked_before.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} callbacks acknowledged before the backup are missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    // Every event's message row came along in the same transaction.
    let orphans: i64 = db.one(
        "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM messages m \
         WHERE m.client_id = e.client_id AND m.provider_message_id = e.provider_message_id)",
        &[],
    );
    assert_eq!(orphans, 0);
    let version: i64 = db.one("PRAGMA user_version", &[]);
    assert!(version >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_callbacks_flow_restores_consistent() {
    if skip_on_postgres("VACUUM INTO and sqlite3 .backup copy the SQLite file") {
        return;
    }
    let app = spawn_app().await;
    let load = Load::start(app.addr, 8, "b");
    load.until_acked(300).await;

    let db = app.data_dir.join("receiver.db");
    let out = tempfile::tempdir().unwrap();
    // VACUUM INTO from a separate connection, as `sqlite3 receiver.db "VACUUM INTO ..."` does.
    let acked_before = load.acked();
    let vacuumed = out.path().join("vacuum.db");
    let (db2, target) = (db.clone(), vacuumed.clone());
    tokio::task::spawn_blocking(move || {
        let conn = Connection::open(db2).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.execute("VACUUM INTO ?1", [target.to_str().unwrap()])
            .unwrap();
    })
    .await
    .unwrap();
    let acked_after_vacuum = load.acked().len();
    check_restored(&vacuumed, &acked_before);

    // The sqlite3 shell's online backup, where the shell is installed.
    let shell_backup = out.path().join("shell.db");
    let acked_before_shell = load.acked();
    let shell = if tool_available("sqlite3", "--version") {
        let (db, target) = (db.clone(), shell_backup.clone());
        let run = move || {
            std::process::Command::new("sqlite3")
                .args(["-cmd", ".timeout 10000"])
                .arg(db)
                .arg(format!(".backup '{}'", target.display()))
                .output()
                .unwrap()
        };
        Some(tokio::task::spawn_blocking(run).await.unwrap())
    } else {
        None
    };
    assert!(
        !load.failed(),
        "every callback was answered 200 during the backups"
    );
    assert!(
        load.finish().await.len() > acked_after_vacuum,
        "callbacks kept flowing during the backups"
    );
    if let Some(output) = shell {
        assert!(output.status.success(), "{output:?}");
        check_restored(&shell_backup, &acked_before_shell);
    }

    // Restore: a service started on the backup serves and keeps counting.
    let restored_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&vacuumed, restored_dir.path().join("receiver.db")).unwrap();
    let restored = crate::helpers::spawn_app_in(restored_dir.path(), |_| {}).await;
    let resp = restored
        .get_callback(
            "default",
            "sms",
            "logid=after-restore&mobile=919876500001&status=sent",
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(restored.count("events") as usize > acked_before.len());
}
