//! Storage faults answer 503 with Retry-After (never 200) and heal by
//! themselves: the database lives on a small tmpfs that we fill up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::{json_with_status, skip_on_postgres, spawn_app_in};

/// A tmpfs mounted for one test, lazily unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes a filler file until the disk is full; returns its path.
fn fill(disk: &Path) -> PathBuf {
    let path = disk.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test]
async fn a_full_disk_answers_503_with_retry_after_and_recovers_when_space_returns() {
    if skip_on_postgres("the tmpfs holds receiver.db; PostgreSQL's files are the cluster's") {
        return;
    }
    let Some(disk) = SmallDisk::mount("3m") else {
        panic!("this test needs root to mount a tmpfs (CI runs as root)");
    };
    let data = disk.path().join("data");
    let app = spawn_app_in(&data, |_| {}).await;
    let body = |i: usize| {
        format!(
            "logid=full{i}&mobile=919876500001&status=sent&pad={}",
            "p".repeat(3000)
        )
    };
    json_with_status(app.post_form("sms", &body(0)).await, 200).await;

    let filler = fill(disk.path());
    let mut refused = None;
    for i in 1..200 {
        let resp = app.post_form("sms", &body(i)).await;
        match resp.status().as_u16() {
            200 => continue,
            503 => {
                refused = Some(i);
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                assert!(retry.is_some(), "503 without Retry-After");
                let err: serde_json::Value = resp.json().await.unwrap();
                assert_eq!(err["error"]["code"], "storage_unavailable");
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let refused = refused.expect("a full disk never produced a 503");
    assert_eq!(app.get("/readyz").await.status().as_u16(), 503);

    std::fs::remove_file(filler).unwrap();
    let resp = app.post_form("sms", &body(refused)).await;
    json_with_status(resp, 200).await;
    json_with_status(app.get("/readyz").await, 200).await;
    let stored: i64 = app.db().one(
        "SELECT count(*) FROM events WHERE provider_message_id = ?1",
        &[format!("full{refused}").into()],
    );
    assert_eq!(stored, 1);
}
