//! Who may write: allowlists over IPv4, IPv6 and IPv4-mapped IPv6, the
//! client address behind trusted proxies, and the URL token kept out of the
//! database and the logs.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command};

use authkey_receiver::access::proxies::ForwardedHeader;
use authkey_receiver::config::ClientSettings;

use crate::helpers::{backend_env, json_with_status, spawn_app_with, TestApp, TestDb};

const BODY: &str = "logid=acc1&mobile=919876500001&status=sent";

fn client(id: &str, allow: &[&str]) -> ClientSettings {
    let mut c = authkey_receiver::config::Settings::default()
        .clients
        .remove(0);
    c.id = id.parse().unwrap();
    c.allow = Some(allow.iter().map(|n| n.parse().unwrap()).collect());
    c
}

/// Posts a form callback from the local address `from` to `host` (an
/// address literal, bracketed for IPv6) on the app's port.
async fn post_from(
    app: &TestApp,
    from: &str,
    host: &str,
    client: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let from: IpAddr = from.parse().unwrap();
    let http = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let mut req = http
        .post(format!(
            "http://{host}:{}/v1/callbacks/{client}/sms",
            app.addr.port()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(BODY);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn source_ips(app: &TestApp) -> Vec<String> {
    app.db()
        .col("SELECT source_ip FROM events ORDER BY id", &[])
}

async fn assert_denied(resp: reqwest::Response) {
    let err = json_with_status(resp, 403).await;
    assert_eq!(err["error"]["code"], "ip_not_allowed");
}

#[tokio::test]
async fn ipv4_addresses_inside_the_client_list_are_allowed_and_others_denied() {
    let app = spawn_app_with(|s| s.clients.push(client("v4", &["127.0.0.2/32"]))).await;
    assert_denied(post_from(&app, "127.0.0.1", "127.0.0.1", "v4", &[]).await).await;
    assert_eq!(app.count("events") + app.count("rejected"), 0);
    json_with_status(
        post_from(&app, "127.0.0.2", "127.0.0.1", "v4", &[]).await,
        200,
    )
    .await;
    assert_eq!(source_ips(&app), ["127.0.0.2"]);
}

#[tokio::test]
async fn a_client_list_replaces_the_default_list() {
    let app = spawn_app_with(|s| {
        s.allowlist.default = vec!["127.0.0.1/32".parse().unwrap()];
        s.clients.push(client("own", &["127.0.0.3/32"]));
    })
    .await;
    // The default list lets 127.0.0.1 post for `default`, not for `own`.
    json_with_status(
        post_from(&app, "127.0.0.1", "127.0.0.1", "default", &[]).await,
        200,
    )
    .await;
    assert_denied(post_from(&app, "127.0.0.1", "127.0.0.1", "own", &[]).await).await;
    assert_denied(post_from(&app, "127.0.0.3", "127.0.0.1", "default", &[]).await).await;
    assert_eq!(app.count("events"), 1);
}

#[tokio::test]
async fn on_a_dual_stack_listener_ipv6_and_mapped_ipv4_peers_are_judged_correctly() {
    let app = spawn_app_with(|s| {
        s.server.listen = "[::]:0".parse().unwrap();
        s.clients.push(client("only4", &["127.0.0.1/32"]));
        s.clients.push(client("only6", &["::1/128"]));
    })
    .await;
    // A mapped peer (::ffff:127.0.0.1) is judged as 127.0.0.1...
    json_with_status(
        post_from(&app, "::ffff:127.0.0.1", "[::ffff:127.0.0.1]", "only4", &[]).await,
        200,
    )
    .await;
    assert_denied(post_from(&app, "::ffff:127.0.0.1", "[::ffff:127.0.0.1]", "only6", &[]).await)
        .await;
    // ...and a real IPv6 peer by its IPv6 address.
    assert_denied(post_from(&app, "::1", "[::1]", "only4", &[]).await).await;
    json_with_status(post_from(&app, "::1", "[::1]", "only6", &[]).await, 200).await;
    // The mapped peer is stored as the IPv4 address it is.
    assert_eq!(source_ips(&app), ["127.0.0.1", "::1"]);
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.clients.push(client("prov", &["198.51.100.0/24"]));
    })
    .await;
    let spoof = [("x-forwarded-for", "198.51.100.7")];
    assert_denied(post_from(&app, "127.0.0.2", "127.0.0.1", "prov", &spoof).await).await;
    let spoof = [("forwarded", "for=198.51.100.7")];
    assert_denied(post_from(&app, "127.0.0.2", "127.0.0.1", "prov", &spoof).await).await;
    assert_eq!(app.count("events") + app.count("rejected"), 0);
}

#[tokio::test]
async fn a_trusted_proxy_chain_yields_the_rightmost_untrusted_address() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        s.clients.push(client("prov", &["198.51.100.0/24"]));
    })
    .await;
    let chain = [("x-forwarded-for", "203.0.113.5, 198.51.100.7, 10.1.2.3")];
    json_with_status(
        post_from(&app, "127.0.0.1", "127.0.0.1", "prov", &chain).await,
        200,
    )
    .await;
    assert_eq!(source_ips(&app), ["198.51.100.7"]);
}

#[tokio::test]
async fn a_forged_leftmost_entry_does_not_help_an_attacker() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.clients.push(client("prov", &["198.51.100.0/24"]));
    })
    .await;
    // The attacker at 203.0.113.5 sent `X-Forwarded-For: 198.51.100.7`; the
    // proxy appended the address it saw.
    let forged = [("x-forwarded-for", "198.51.100.7, 203.0.113.5")];
    assert_denied(post_from(&app, "127.0.0.1", "127.0.0.1", "prov", &forged).await).await;
    // Two header lines are read as one list: the last line still wins.
    let http = reqwest::Client::new();
    let resp = http
        .post(app.url("/v1/callbacks/prov/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-forwarded-for", "203.0.113.5")
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_denied(resp).await;
    // A proxy that names no readable client gets no benefit of the doubt.
    let unknown = [("x-forwarded-for", "unknown")];
    assert_denied(post_from(&app, "127.0.0.1", "127.0.0.1", "prov", &unknown).await).await;
    assert_eq!(app.count("events") + app.count("rejected"), 0);
}

#[tokio::test]
async fn with_rfc7239_configured_only_forwarded_is_read() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.server.forwarded_header = ForwardedHeader::Forwarded;
        s.clients.push(client("prov", &["2001:db8::/32"]));
    })
    .await;
    let xff = [("x-forwarded-for", "2001:db8::7")];
    assert_denied(post_from(&app, "127.0.0.1", "127.0.0.1", "prov", &xff).await).await;
    let fwd = [("forwarded", r#"for="[2001:db8::7]:4711";proto=https"#)];
    json_with_status(
        post_from(&app, "127.0.0.1", "127.0.0.1", "prov", &fwd).await,
        200,
    )
    .await;
    assert_eq!(source_ips(&app), ["2001:db8::7"]);
}

#[tokio::test]
async fn the_url_token_never_reaches_the_log_or_the_database_files() {
    const TOKEN: &str = "Tk9-s3cr3t-url-t0ken";
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (child, addr) = serve_logged(
        tmp.path(),
        &[("AUTHKEY_RECEIVER__CLIENTS__0__URL_TOKEN", TOKEN)],
    );
    let base = format!("http://{addr}/v1/callbacks/default/sms");
    let http = reqwest::Client::new();
    for (query, status) in [
        (format!("{BODY}&token={TOKEN}x"), 401),
        (format!("token={TOKEN}&{BODY}"), 200),
        (format!("token={TOKEN}&status=sent"), 400),
        (
            format!("logid=acc2&mobile=919876500002&token={TOKEN}&status=read"),
            200,
        ),
    ] {
        let resp = http.get(format!("{base}?{query}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{query}");
    }
    let resp = http
        .post(format!("{base}?token={TOKEN}"))
        .header("content-type", "application/json")
        .body("{\"logid\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    let log = stop_and_read_log(child, tmp.path());
    assert!(log.contains("missing or wrong url token"), "{log}");
    assert!(!log.contains(TOKEN), "the token is in the log:\n{log}");
    let db = TestDb::open(&data);
    let rows: i64 = db.one(
        "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM rejected)",
        &[],
    );
    assert_eq!(rows, 4, "two events and two quarantined bodies");
    let stored = db.all_text();
    assert!(stored.contains("acc2"), "{stored}");
    assert!(!stored.contains(TOKEN), "the token is in the database");
    drop(db);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
                "the token is in {}",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn a_denied_address_is_logged_with_the_client_and_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, addr) = serve_logged(
        tmp.path(),
        &[("AUTHKEY_RECEIVER__ALLOWLIST__DEFAULT", "[\"127.0.0.1/32\"]")],
    );
    let http = reqwest::Client::builder()
        .local_address("127.0.0.9".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let resp = http
        .get(format!("http://{addr}/v1/callbacks/default/sms?{BODY}"))
        .send()
        .await
        .unwrap();
    assert_denied(resp).await;
    let log = stop_and_read_log(child, tmp.path());
    let line = log
        .lines()
        .find(|l| l.contains("not in allowlist"))
        .unwrap_or_else(|| panic!("no denial line in:\n{log}"));
    assert!(line.contains("127.0.0.9"), "{line}");
    assert!(line.contains("\"client\":\"default\""), "{line}");
    let rows: i64 = TestDb::open(&tmp.path().join("data")).one(
        "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM rejected)",
        &[],
    );
    assert_eq!(rows, 0);
}

/// Starts the binary with its data in `dir/data`, logging JSON at `trace`
/// level to `dir/stderr.log`.
fn serve_logged(dir: &Path, env: &[(&str, &str)]) -> (Child, SocketAddr) {
    let data = dir.join("data");
    let log = dir.join("stderr.log");
    let child = Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
        .arg("serve")
        .env("AUTHKEY_RECEIVER__SERVER__LISTEN", "127.0.0.1:0")
        .env("AUTHKEY_RECEIVER__STORAGE__DATA_DIR", &data)
        .env("AUTHKEY_RECEIVER__ARCHIVE__DIR", data.join("archive"))
        .envs(backend_env(&data))
        .env("AUTHKEY_RECEIVER__LOG__LEVEL", "trace")
        .env("AUTHKEY_RECEIVER__LOG__FORMAT", "json")
        .envs(env.iter().copied())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, wait_for_listen_line(&log))
}

/// Stops the binary with SIGTERM and returns its whole log.
fn stop_and_read_log(mut child: Child, dir: &Path) -> String {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(log.contains("stopped cleanly"), "{log}");
    log
}

/// Waits for the binary's "listening on" line in its log file.
fn wait_for_listen_line(log: &Path) -> SocketAddr {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("listening on http://").nth(1) {
            let addr = rest
                .split(|c: char| c.is_whitespace() || c == '"')
                .next()
                .unwrap();
            return addr.parse().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no listen line: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
