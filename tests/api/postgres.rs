//! The PostgreSQL backend with real processes on a real cluster: two
//! receivers sharing one database dedup each other's retries, two archive
//! runs at once leave each row in exactly one file, and an outage answers
//! 503 and heals without a restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::archive_support::{archive_files, lines, months_ahead, sha256sum_check_all};
use crate::helpers::cli;
use crate::pg_support::{env_refs, Node, PgCluster};

const MESSAGES: usize = 300;
/// Status, provider time (second of 10:00) of each message's three reports.
const STATUSES: [(&str, u32); 3] = [("sent", 1), ("delivered", 5), ("read", 9)];

/// (accepted, duplicates) of one callback answered 200.
async fn send_get(http: &reqwest::Client, node: &Node, query: &str) -> (i64, i64) {
    let resp = http
        .get(node.url(&format!("/v1/callbacks/default/whatsapp?{query}")))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{query}: {text}\n{}", node.log_tail());
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["rejected"], 0, "{query}: {text}");
    let (a, d) = (
        body["accepted"].as_i64().unwrap(),
        body["duplicates"].as_i64().unwrap(),
    );
    assert_eq!(a + d, 1, "{query}: {text}");
    (a, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receivers_share_one_database() {
    let Some(pg) = PgCluster::start() else {
        return;
    };
    // Both start (and migrate) at once.
    let nodes: [Node; 2] = std::thread::scope(|s| {
        let a = s.spawn(|| Node::start(&pg));
        let b = s.spawn(|| Node::start(&pg));
        [a.join().unwrap(), b.join().unwrap()]
    });
    let callbacks: Vec<(String, usize)> = (0..MESSAGES)
        .flat_map(|m| {
            STATUSES.iter().enumerate().map(move |(k, (status, sec))| {
                let query = format!(
                    "logid=pg{m:04}&mobile=9198765{m:05}&status={status}&time=2026-05-28+10:00:{sec:02}"
                );
                (query, (m * STATUSES.len() + k) % 2)
            })
        })
        .collect();
    let http = reqwest::Client::new();
    // Each callback goes to its home node and, as the provider's retry, to
    // the other one: for even messages both at once, for odd ones after.
    // `buffered` keeps the answers in the order of `callbacks`.
    let answers: Vec<[(i64, i64); 2]> = futures_util::stream::iter(callbacks.iter().enumerate())
        .map(|(i, (query, home))| {
            let (http, nodes) = (&http, &nodes);
            async move {
                let (first, retry) = (&nodes[*home], &nodes[1 - home]);
                let (a, b) = if (i / STATUSES.len()).is_multiple_of(2) {
                    tokio::join!(send_get(http, first, query), send_get(http, retry, query))
                } else {
                    let a = send_get(http, first, query).await;
                    (a, send_get(http, retry, query).await)
                };
                let mut per_node = [(0, 0); 2];
                per_node[*home] = a;
                per_node[1 - home] = b;
                per_node
            }
        })
        .buffered(32)
        .collect()
        .await;
    let unique = callbacks.len() as i64;
    for (answer, (query, _)) in answers.iter().zip(&callbacks) {
        let accepted = answer[0].0 + answer[1].0;
        assert_eq!(accepted, 1, "{query} accepted by both nodes or neither");
    }
    let accepted: [i64; 2] = [0, 1].map(|n| answers.iter().map(|a| a[n].0).sum());
    let duplicates: i64 = answers.iter().map(|a| a[0].1 + a[1].1).sum();
    assert_eq!(accepted[0] + accepted[1], unique);
    assert_eq!(duplicates, unique, "every retry is a duplicate");
    assert!(
        accepted.iter().all(|&n| n > 0),
        "both nodes stored events: {accepted:?}"
    );

    assert_eq!(pg.count("SELECT count(*) FROM events"), unique);
    assert_eq!(pg.count("SELECT count(*) FROM event_keys"), unique);
    assert_eq!(
        pg.count(
            "SELECT count(*) FROM event_keys k \
             WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.dedup_key = k.dedup_key)"
        ),
        0,
        "every key belongs to a stored event"
    );
    assert_eq!(
        pg.count(
            "SELECT count(*) FROM (SELECT 1 FROM events \
             GROUP BY provider_message_id, phone, status HAVING count(*) > 1) d"
        ),
        0,
        "a report is stored twice"
    );
    assert_eq!(pg.count("SELECT count(*) FROM schema_migrations"), 1);
    let states: Vec<(String, String, i64)> = pg.with_db(|db| {
        db.query(
            "SELECT provider_message_id, status, event_count FROM messages ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    });
    let expected: Vec<(String, String, i64)> = (0..MESSAGES)
        .map(|m| (format!("pg{m:04}"), "read".to_string(), 3))
        .collect();
    assert_eq!(states, expected);
}

/// Every row id, by table, with a column to recognise it in a file.
fn row_ids(pg: &PgCluster) -> BTreeMap<(String, i64), String> {
    pg.with_db(|db| {
        db.query(
            "SELECT 'events', id, provider_message_id FROM events \
             UNION ALL SELECT 'messages', id, provider_message_id FROM messages \
             UNION ALL SELECT 'rejected', id, code FROM rejected",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| ((r.get::<_, String>(0), r.get(1)), r.get(2)))
        .collect()
    })
}

/// Every line of every archive file under `root`, as (table, id) → how
/// many lines hold it, checking each line's recognisable column.
fn archived_ids(
    root: &std::path::Path,
    expected: &BTreeMap<(String, i64), String>,
) -> HashMap<(String, i64), usize> {
    let mut seen = HashMap::new();
    for file in archive_files(root) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let table = name.split('-').next().unwrap().to_string();
        for line in lines(&file) {
            let id = line["id"].as_i64().unwrap();
            let column = if table == "rejected" {
                "code"
            } else {
                "provider_message_id"
            };
            if let Some(want) = expected.get(&(table.clone(), id)) {
                assert_eq!(line[column], json!(want), "{name}: {line}");
            }
            *seen.entry((table.clone(), id)).or_insert(0) += 1;
        }
    }
    seen
}

/// Posts `n` SMS reports (in bodies of 500, each with one unreadable item
/// that is quarantined) and `n / 4` WhatsApp ones, all new.
async fn post_round(node: &Node, round: usize, n: usize) {
    let http = reqwest::Client::new();
    for (channel, count) in [("sms", n), ("whatsapp", n / 4)] {
        for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
            let mut items: Vec<Value> = chunk
                .iter()
                .map(|i| json!({"logid": format!("r{round}-{channel}-{i}"), "mobile": format!("9198765{i:05}"), "status": "delivered"}))
                .collect();
            items.push(json!({"nothing": "useful"}));
            let resp = http
                .post(node.url(&format!("/v1/callbacks/default/{channel}")))
                .header("content-type", "application/json")
                .body(Value::Array(items).to_string())
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap();
            assert_eq!(status, 200, "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_archive_runs_at_once() {
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let node = Node::start(&pg);
    let archive = tempfile::tempdir().unwrap();
    let runners = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut env = pg.env();
    env.push((
        "AUTHKEY_RECEIVER__ARCHIVE__DIR",
        archive.path().display().to_string(),
    ));
    // Small delete batches keep the winner busy long enough for the other
    // run to find the lease taken rather than free again.
    env.push(("AUTHKEY_RECEIVER__ARCHIVE__BATCH_ROWS", "25".into()));
    // The default client keeps 2 months; 3 months on, every row is expired.
    let now = months_ahead(3);
    let mut expected: BTreeMap<(String, i64), String> = BTreeMap::new();
    for round in 0..3 {
        post_round(&node, round, 1500).await;
        let round_rows = row_ids(&pg);
        assert!(round_rows.keys().any(|(t, _)| t == "rejected"));
        expected.extend(round_rows.clone());

        let barrier = Arc::new(Barrier::new(runners.len()));
        let outputs: Vec<std::process::Output> = std::thread::scope(|s| {
            let handles: Vec<_> = runners
                .iter()
                .map(|dir| {
                    let (barrier, env, now) = (Arc::clone(&barrier), &env, &now);
                    s.spawn(move || {
                        barrier.wait();
                        cli(dir.path(), &["archive", "--now", now], &env_refs(env))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let stdouts: Vec<String> = outputs
            .iter()
            .map(|o| {
                let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
                assert!(
                    o.status.success(),
                    "round {round}: archive failed: {stdout}{}",
                    String::from_utf8_lossy(&o.stderr)
                );
                stdout
            })
            .collect();
        let busy: Vec<&String> = stdouts
            .iter()
            .filter(|s| {
                s.contains(
                    "archive: another archive run holds the PostgreSQL archive lease (held by ",
                ) && s.contains("; nothing done")
            })
            .collect();
        assert_eq!(
            busy.len(),
            1,
            "round {round}: exactly one run is turned away: {stdouts:#?}"
        );
        let done = stdouts
            .iter()
            .find(|s| !s.contains("another archive run holds"))
            .unwrap();
        let summary = done
            .lines()
            .find(|l| l.starts_with("archive: "))
            .unwrap_or_else(|| panic!("round {round}: no summary: {done}"));
        assert!(
            summary.starts_with(&format!("archive: {} rows, ", round_rows.len())),
            "round {round}: the winner moves all {} rows: {done}",
            round_rows.len()
        );

        let seen = archived_ids(archive.path(), &expected);
        let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
        assert!(
            missing.is_empty(),
            "round {round}: not archived: {missing:?}"
        );
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "round {round}: archived twice: {twice:?}");
        assert_eq!(seen.len(), expected.len(), "round {round}: unexpected rows");
        sha256sum_check_all(archive.path());
        let verify = cli(runners[0].path(), &["verify-archive"], &env_refs(&env));
        assert!(
            verify.status.success(),
            "round {round}: verify-archive: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        for table in ["events", "event_keys", "messages", "rejected", "leases"] {
            assert_eq!(
                pg.count(&format!("SELECT count(*) FROM {table}")),
                0,
                "round {round}: rows left in {table}"
            );
        }
    }
}

/// One callback of the outage load.
struct Sent {
    id: String,
    sent_at: Instant,
    answered_at: Instant,
    /// `None`: no HTTP answer at all.
    status: Option<u16>,
    retry_after: bool,
}

/// Senders posting unique SMS reports until stopped, recording every answer
/// (unlike `helpers::Load`, they go on past a failure).
struct OutageLoad {
    sent: Arc<Mutex<Vec<Sent>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn sms_report(id: &str) -> String {
    format!("logid={id}&mobile=919876500001&status=DELIVRD&time=2026-05-28+10:00:00")
}

impl OutageLoad {
    fn start(node: &Node, workers: usize) -> OutageLoad {
        let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let http = reqwest::Client::new();
        let url = node.url("/v1/callbacks/default/sms");
        let tasks = (0..workers)
            .map(|w| {
                let (sent, stop, http, url) = (
                    Arc::clone(&sent),
                    Arc::clone(&stop),
                    http.clone(),
                    url.clone(),
                );
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("out{w}-{i}");
                        i += 1;
                        let sent_at = Instant::now();
                        let resp = http
                            .post(&url)
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(sms_report(&id))
                            .timeout(Duration::from_secs(10))
                            .send()
                            .await;
                        let (status, retry_after) = match resp {
                            Ok(r) => (
                                Some(r.status().as_u16()),
                                r.headers().contains_key("retry-after"),
                            ),
                            Err(_) => (None, false),
                        };
                        sent.lock().unwrap().push(Sent {
                            id,
                            sent_at,
                            answered_at: Instant::now(),
                            status,
                            retry_after,
                        });
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        OutageLoad { sent, stop, tasks }
    }

    /// Whether a callback sent at or after `t` was answered 200.
    fn ok_since(&self, t: Instant) -> bool {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.sent_at >= t && s.status == Some(200))
    }

    fn answered_200(&self) -> usize {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.status == Some(200))
            .count()
    }

    async fn finish(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

/// `/readyz`: (status, whether Retry-After was sent).
async fn readyz(node: &Node) -> (u16, bool) {
    let resp = reqwest::Client::new()
        .get(node.url("/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.headers().contains_key("retry-after"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_gets_503_and_recovers() {
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let node = Node::start(&pg);
    let load = OutageLoad::start(&node, 4);
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.answered_200() < 100 {
        assert!(Instant::now() < deadline, "no load: {}", node.log_tail());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    pg.kill();
    let down_from = Instant::now();
    let mut ready_while_down = Vec::new();
    while down_from.elapsed() < Duration::from_secs(2) {
        ready_while_down.push(readyz(&node).await);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let restart_from = Instant::now();
    pg.restart();
    let up_from = Instant::now();

    let deadline = up_from + Duration::from_secs(10);
    let mut ready = readyz(&node).await;
    while !(ready.0 == 200 && load.ok_since(up_from)) {
        assert!(
            Instant::now() < deadline,
            "not healed 10 s after PostgreSQL came back (readyz {}): {}",
            ready.0,
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = readyz(&node).await;
    }
    let sent = load.finish().await;

    for (status, retry_after) in &ready_while_down {
        assert_eq!(*status, 503, "/readyz while PostgreSQL is down");
        assert!(retry_after, "/readyz 503 without Retry-After");
    }
    // Sent after the kill and answered before the restart began.
    let down: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.sent_at >= down_from && s.answered_at < restart_from)
        .collect();
    assert!(down.len() >= 20, "only {} callbacks while down", down.len());
    for s in &down {
        assert_eq!(s.status, Some(503), "{} while PostgreSQL was down", s.id);
        assert!(s.retry_after, "{}: 503 without Retry-After", s.id);
    }

    // The provider retries what was not acknowledged; a report that was
    // stored although its answer was lost is now a duplicate.
    let http = reqwest::Client::new();
    for s in sent.iter().filter(|s| s.status != Some(200)) {
        let resp = http
            .post(node.url("/v1/callbacks/default/sms"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(sms_report(&s.id))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "retry of {}: {body}", s.id);
        assert_eq!(
            body["accepted"].as_i64().unwrap() + body["duplicates"].as_i64().unwrap(),
            1,
            "retry of {}: {body}",
            s.id
        );
    }

    let stored: Vec<(String, i64)> = pg.with_db(|db| {
        db.query(
            "SELECT provider_message_id, count(*) FROM events GROUP BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    });
    let twice: Vec<&(String, i64)> = stored.iter().filter(|(_, n)| *n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let stored: HashSet<String> = stored.into_iter().map(|(id, _)| id).collect();
    let acked_before_retries: Vec<&str> = sent
        .iter()
        .filter(|s| s.status == Some(200))
        .map(|s| s.id.as_str())
        .collect();
    let lost: Vec<&&str> = acked_before_retries
        .iter()
        .filter(|id| !stored.contains(**id))
        .collect();
    assert!(lost.is_empty(), "answered 200 but not stored: {lost:?}");
    let all: HashSet<String> = sent.iter().map(|s| s.id.clone()).collect();
    let unstored: Vec<&String> = all.difference(&stored).collect();
    assert!(
        unstored.is_empty(),
        "retried until 200 but not stored: {unstored:?}"
    );
    assert_eq!(stored.len(), all.len(), "rows nobody sent");
}

/// A past month's events, archived: their rows go to a file, their dedup
/// keys go with them, and the month's partition, empty now, is dropped. The
/// current month's partition stays whatever the run's `--now`.
#[tokio::test]
async fn an_archived_past_month_loses_its_partition() {
    let Some(pg) = PgCluster::start() else {
        return;
    };
    // Starting a receiver migrates and creates this month's partitions.
    let node = Node::start(&pg);
    drop(node);
    // 2026-01: received 2026-01-10T00:00:00Z, as a receiver of that month
    // would have stored it.
    const JAN_10: i64 = 1_768_003_200_000;
    pg.with_db(|db| {
        db.batch_execute(
            "CREATE TABLE events_p202601 PARTITION OF events \
             FOR VALUES FROM (1767225600000) TO (1769904000000)",
        )
        .unwrap();
        for n in 0..3i64 {
            let key = format!("{n:032x}");
            db.execute(
                "INSERT INTO event_keys (dedup_key) VALUES (decode($1, 'hex'))",
                &[&key],
            )
            .unwrap();
            db.execute(
                "INSERT INTO events (client_id, channel, direction, provider_message_id, phone, \
                 status, received_at, source_ip, payload, dedup_key) VALUES ('default', 'sms', \
                 'status', $1, '+919876500000', 'delivered', $2, '127.0.0.1', '{}', \
                 decode($3, 'hex'))",
                &[&format!("jan-{n}"), &(JAN_10 + n), &key],
            )
            .unwrap();
        }
    });
    let partitions = |pg: &PgCluster| {
        pg.count("SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE 'events_p2%'")
    };
    let before = partitions(&pg);
    let data = tempfile::tempdir().unwrap();
    let archive = data.path().join("archive");
    let mut env = pg.env();
    env.push((
        "AUTHKEY_RECEIVER__ARCHIVE__DIR",
        archive.display().to_string(),
    ));
    let out = cli(
        data.path(),
        &["archive", "--now", "2026-12-04T00:00:00Z"],
        &env_refs(&env),
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let archived: Vec<String> = archive_files(&archive)
        .iter()
        .flat_map(|f| lines(f))
        .filter_map(|row| row["provider_message_id"].as_str().map(String::from))
        .collect();
    assert_eq!(archived.len(), 3, "{archived:?}");
    assert!(
        archived.iter().all(|id| id.starts_with("jan-")),
        "{archived:?}"
    );
    assert_eq!(
        pg.count("SELECT count(*) FROM pg_class WHERE relname = 'events_p202601'"),
        0,
        "the emptied partition of 2026-01 is dropped"
    );
    assert_eq!(partitions(&pg), before - 1, "only that partition went");
    assert_eq!(pg.count("SELECT count(*) FROM event_keys"), 0);
    assert_eq!(pg.count("SELECT count(*) FROM events"), 0);
}
