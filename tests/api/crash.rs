//! Durability: a process killed with SIGKILL while requests are in flight
//! keeps every callback it answered 200.

use crate::helpers::{spawn_binary, stored_ids, Load, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_callback_answered_200_survives_a_sigkill_mid_load() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_binary(tmp.path(), &[]);
    let load = Load::start(addr, 16, "k");
    // Let traffic flow, then kill without warning.
    load.until_acked(500).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let acked = load.finish().await;
    let stored = stored_ids(&TestDb::open(tmp.path()));
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged callbacks lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    assert!(acked.len() >= 500);

    // The restarted service opens the same database and takes traffic again.
    let (mut again, addr) = spawn_binary(tmp.path(), &[]);
    let resp = reqwest::Client::new()
        .get(format!(
            "http://{addr}/v1/callbacks/default/sms?logid=after&mobile=919876500001&status=sent"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    again.kill().unwrap();
    again.wait().unwrap();
}
