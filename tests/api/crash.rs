//! Durability: a process killed with SIGKILL while requests are in flight
//! keeps every callback it answered 200.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::spawn_binary;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_callback_answered_200_survives_a_sigkill_mid_load() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_binary(tmp.path(), &[]);
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let http = reqwest::Client::new();
    let mut senders = Vec::new();
    for worker in 0..16 {
        let http = http.clone();
        let acked = Arc::clone(&acked);
        senders.push(tokio::spawn(async move {
            for i in 0..100_000 {
                let id = format!("k{worker}-{i}");
                let body = format!(
                    "logid={id}&mobile=919876500001&status=DELIVRD&time=2026-05-28+10:00:00"
                );
                let sent = http
                    .post(format!("http://{addr}/v1/callbacks/default/sms"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().as_u16() == 200 => {
                        acked.lock().unwrap().insert(id);
                    }
                    _ => break,
                }
            }
        }));
    }
    // Let traffic flow, then kill without warning.
    while acked.lock().unwrap().len() < 500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let conn = rusqlite::Connection::open(tmp.path().join("receiver.db")).unwrap();
    let stored: HashSet<String> = conn
        .prepare("SELECT provider_message_id FROM events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged callbacks lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    assert!(acked.len() >= 500);

    // The restarted service opens the same file and takes traffic again.
    let (mut again, addr) = spawn_binary(tmp.path(), &[]);
    let resp = http
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
