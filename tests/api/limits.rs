//! Nothing an attacker sends may cost availability: slow heads and slow bodies
//! are cut off while others are served, idle connections close, connections
//! are capped, heads and JSON nesting are bounded, and compressed bodies are
//! refused unread, so a decompression bomb leaves memory flat.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{json_with_status, spawn_app, spawn_app_with, spawn_binary};

const FORM: &str = "logid=lim1&mobile=919876500001&status=sent";

/// What a trickling client saw.
struct Trickle {
    /// Bytes of `slow` written before the server cut the connection.
    sent: usize,
    /// Everything the server answered.
    answer: String,
    /// Time from the first byte until the connection ended.
    lasted: Duration,
}

/// Connects, writes `head` at once, then `slow` one byte per `every`, until
/// the server answers and closes or everything is sent.
async fn trickle(addr: SocketAddr, head: Vec<u8>, slow: Vec<u8>, every: Duration) -> Trickle {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&head).await.unwrap();
    let mut answer = Vec::new();
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    'outer: for byte in slow {
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        sent += 1;
        let until = tokio::time::Instant::now() + every;
        loop {
            match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(0)) | Ok(Err(_)) => break 'outer,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            }
        }
    }
    Trickle {
        sent,
        answer: String::from_utf8_lossy(&answer).into_owned(),
        lasted: started.elapsed(),
    }
}

#[tokio::test]
async fn a_client_sending_one_header_byte_per_second_is_cut_off_while_others_are_served() {
    let app = spawn_app_with(|s| s.server.head_timeout = Duration::from_secs(2)).await;
    let head = format!(
        "POST /v1/callbacks/default/sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        FORM.len()
    );
    let slow = tokio::spawn(trickle(
        app.addr,
        Vec::new(),
        head.into_bytes(),
        Duration::from_secs(1),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    json_with_status(app.post_form("sms", FORM).await, 200).await;
    let cut = slow.await.unwrap();
    // Cut at the configured 2 s, well before actix's own 5 s default.
    assert!(cut.sent <= 3, "sent {} header bytes", cut.sent);
    assert!(cut.lasted < Duration::from_secs(4), "{:?}", cut.lasted);
    assert!(
        cut.answer.is_empty() || cut.answer.starts_with("HTTP/1.1 408"),
        "{}",
        cut.answer
    );
    assert_eq!(app.count("events"), 1);
}

#[tokio::test]
async fn a_client_sending_the_body_one_byte_per_second_is_cut_off_while_others_are_served() {
    let app = spawn_app_with(|s| s.server.body_timeout = Duration::from_secs(2)).await;
    let body = "logid=slow1&mobile=919876500002&status=sent&pad=xxxxxxxxxxxxxxxxxxxx";
    let head = format!(
        "POST /v1/callbacks/default/sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let slow = tokio::spawn(trickle(
        app.addr,
        head.into_bytes(),
        body.as_bytes().to_vec(),
        Duration::from_secs(1),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    json_with_status(app.post_form("sms", FORM).await, 200).await;
    let cut = slow.await.unwrap();
    assert!(cut.sent <= 5, "sent {} body bytes", cut.sent);
    assert!(cut.lasted < Duration::from_secs(6), "{:?}", cut.lasted);
    assert!(cut.answer.starts_with("HTTP/1.1 408"), "{}", cut.answer);
    assert!(cut.answer.contains("body_timeout"), "{}", cut.answer);
    assert_eq!(app.count("events"), 1);
    assert_eq!(app.count("rejected"), 0);
}

/// Sends one request on a raw connection, reads the answer, then reports how
/// long the server kept the idle connection open (capped at `wait`).
async fn idle_after_one_request(addr: SocketAddr, wait: Duration) -> (String, Duration) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    let idle = Instant::now();
    let _ = tokio::time::timeout(wait, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    (answer, idle.elapsed())
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_time() {
    let app = spawn_app_with(|s| s.server.keep_alive = Duration::from_secs(1)).await;
    let (answer, open) = idle_after_one_request(app.addr, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(open >= Duration::from_millis(500), "{open:?}");
    assert!(open < Duration::from_secs(3), "{open:?}");

    let app = spawn_app_with(|s| s.server.keep_alive = Duration::ZERO).await;
    let (answer, open) = idle_after_one_request(app.addr, Duration::from_secs(5)).await;
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(open < Duration::from_secs(2), "{open:?}");
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let app = spawn_app_with(|s| {
        s.server.workers = 1;
        s.server.max_connections = 2;
        s.server.head_timeout = Duration::from_secs(20);
    })
    .await;
    let idle = [
        TcpStream::connect(app.addr).await.unwrap(),
        TcpStream::connect(app.addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = |timeout| reqwest::Client::builder().timeout(timeout).build().unwrap();
    let third = fresh(Duration::from_secs(1))
        .get(app.url("/healthz"))
        .send()
        .await;
    assert!(third.is_err(), "a third connection was served: {third:?}");
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let served = fresh(Duration::from_secs(10))
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status().as_u16(), 200);
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_431() {
    let app = spawn_app_with(|s| s.server.max_header_bytes = 1024).await;
    let resp = app
        .http
        .post(app.url("/v1/callbacks/default/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-padding", "p".repeat(1100))
        .body(FORM)
        .send()
        .await
        .unwrap();
    let err = json_with_status(resp, 431).await;
    assert_eq!(err["error"]["code"], "headers_too_large");
    let long_query = format!("{FORM}&pad={}", "q".repeat(1100));
    let resp = app.get_callback("default", "sms", &long_query).await;
    assert_eq!(resp.status().as_u16(), 431);
    assert_eq!(app.count("events") + app.count("rejected"), 0);
    json_with_status(app.post_form("sms", FORM).await, 200).await;
}

#[tokio::test]
async fn json_nested_past_the_configured_depth_is_400_and_quarantined() {
    let app = spawn_app_with(|s| s.server.max_json_depth = 4).await;
    let ok = r#"[{"logid":"d1","mobile":"919876500001","status":"sent","x":{"y":{"z":1}}}]"#;
    json_with_status(app.post_json("sms", ok).await, 200).await;
    let deep = r#"[{"logid":"d2","mobile":"919876500001","status":"sent","x":{"y":{"z":[1]}}}]"#;
    let err = json_with_status(app.post_json("sms", deep).await, 400).await;
    assert_eq!(err["error"]["code"], "invalid_json");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("4 levels"));
    assert_eq!(app.count("events"), 1);
    assert_eq!(app.count("rejected"), 1);
}

#[tokio::test]
async fn a_compressed_body_is_refused_with_415_before_it_is_read() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // The head promises a 1 MiB gzip body that never comes: the answer
    // arrives anyway, so nothing of the body was waited for.
    stream
        .write_all(
            b"POST /v1/callbacks/default/sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 1048576\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    assert!(answer.contains("unsupported_content_encoding"), "{answer}");
    for encoding in ["deflate", "br", "identity, gzip"] {
        let resp = app
            .http
            .post(app.url("/v1/callbacks/default/sms"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-encoding", encoding)
            .body(FORM)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 415, "{encoding}");
    }
    assert_eq!(app.count("events") + app.count("rejected"), 0);
    let resp = app
        .http
        .post(app.url("/v1/callbacks/default/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-encoding", "identity")
        .body(FORM)
        .send()
        .await
        .unwrap();
    json_with_status(resp, 200).await;
}

fn gzip(data: impl FnOnce(&mut dyn Write)) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    data(&mut enc);
    enc.finish().unwrap()
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_gzip_bomb_that_inflates_to_1_gib_is_refused_and_memory_stays_flat() {
    // One layer: 1 GiB of zeros deflates to about 1 MiB; a second layer
    // brings that to a few KiB.
    let one_layer = gzip(|w| {
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            w.write_all(&zeros).unwrap();
        }
    });
    let two_layers = gzip(|w| w.write_all(&one_layer).unwrap());
    assert!(two_layers.len() < 16 * 1024, "{} bytes", two_layers.len());

    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_binary(
        tmp.path(),
        &[("AUTHKEY_RECEIVER__SERVER__MAX_BODY_BYTES", "2097152")],
    );
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/callbacks/default/sms");
    // Warm up: the server's usual working set for a few ordinary callbacks.
    for i in 0..20 {
        let resp = http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("logid=warm{i}&mobile=919876500001&status=sent"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let before = peak_rss_kib(child.id());
    for _ in 0..3 {
        for (body, encoding) in [(&one_layer, "gzip"), (&two_layers, "gzip, gzip")] {
            let resp = http
                .post(&url)
                .header("content-type", "application/json")
                .header("content-encoding", encoding)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let err = json_with_status(resp, 415).await;
            assert_eq!(err["error"]["code"], "unsupported_content_encoding");
        }
    }
    let after = peak_rss_kib(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        after.saturating_sub(before) < 4 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
}
