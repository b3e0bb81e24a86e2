//! Graceful shutdown of the real binary: SIGTERM or SIGINT stops accepting,
//! lets in-flight requests finish, flushes the writer and exits 0 within
//! `server.shutdown_timeout`; every callback answered 200 is stored.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use crate::helpers::{spawn_binary, stored_ids, Load, TestDb};

const SHUTDOWN_TIMEOUT: &str = "5s";

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} failed");
}

/// Waits for the child to exit, failing the test after `limit`.
fn wait_within(child: &mut Child, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("the service did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_exits_0_and_every_200_has_its_row() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_binary(
        tmp.path(),
        &[(
            "AUTHKEY_RECEIVER__SERVER__SHUTDOWN_TIMEOUT",
            SHUTDOWN_TIMEOUT,
        )],
    );
    let load = Load::start(addr, 16, "t");
    load.until_acked(500).await;
    signal(&child, "TERM");
    let status = tokio::task::spawn_blocking(move || {
        // The deadline plus the writer flush and process exit.
        wait_within(&mut child, Duration::from_secs(5 + 5))
    })
    .await
    .unwrap();
    let acked = load.finish().await;
    assert_eq!(status.code(), Some(0), "{status}");

    let stored = stored_ids(&TestDb::open(tmp.path()));
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged callbacks lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    assert!(acked.len() >= 500);
    // Stopped accepting: nothing listens on the address any more.
    assert!(reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .is_err());
}

/// Sends half a callback body, delivers `sig`, then the other half: a
/// graceful stop answers it 200 and stores it before exiting 0.
async fn in_flight_request_survives(sig: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_binary(
        tmp.path(),
        &[(
            "AUTHKEY_RECEIVER__SERVER__SHUTDOWN_TIMEOUT",
            SHUTDOWN_TIMEOUT,
        )],
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(tokio_stream(rx));
    let request = tokio::spawn(
        reqwest::Client::new()
            .post(format!("http://{addr}/v1/callbacks/default/sms"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send(),
    );
    tx.send(Ok(b"logid=inflight-1&mobile=9198765".to_vec()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&child, sig);
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(Ok(b"00001&status=DELIVRD".to_vec())).await.unwrap();
    drop(tx);
    let resp = request
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(resp.status().as_u16(), 200);
    let status =
        tokio::task::spawn_blocking(move || wait_within(&mut child, Duration::from_secs(10)))
            .await
            .unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(stored_ids(&TestDb::open(tmp.path())).contains("inflight-1"));
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_and_store() {
    in_flight_request_survives("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_as_gracefully_as_sigterm() {
    in_flight_request_survives("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_open_at_the_deadline_does_not_hold_the_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_binary(
        tmp.path(),
        &[("AUTHKEY_RECEIVER__SERVER__SHUTDOWN_TIMEOUT", "1s")],
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let request = tokio::spawn(
        reqwest::Client::new()
            .post(format!("http://{addr}/v1/callbacks/default/sms"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(reqwest::Body::wrap_stream(tokio_stream(rx)))
            .send(),
    );
    tx.send(Ok(b"logid=never-finished".to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    signal(&child, "TERM");
    let status =
        tokio::task::spawn_blocking(move || wait_within(&mut child, Duration::from_secs(8)))
            .await
            .unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "exit took {:?} with a 1s deadline",
        started.elapsed()
    );
    let answered = request.await.unwrap();
    assert!(
        answered
            .as_ref()
            .map_or(true, |r| r.status().as_u16() != 200),
        "a request cut off at the deadline is never answered 200"
    );
    drop(tx);
    assert!(!stored_ids(&TestDb::open(tmp.path())).contains("never-finished"));
}
