//! The files in deploy/ work with the real programs: nginx accepts the site
//! and, in front of the service, passes on the real client address and never
//! a forged one; systemd-analyze accepts the units; the Dockerfile builds in
//! stages and runs as a non-root user.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{spawn_app_with, tool_available, TestApp};
use crate::pg_support::{Node, PgCluster};

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Replaces `from` (which must be there: the test follows the shipped file).
fn swap(text: String, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "deploy/nginx.conf no longer has `{from}`"
    );
    text.replace(from, to)
}

/// nginx with the shipped site, in a temp prefix, on loopback ports, with a
/// throwaway certificate for 127.0.0.1, proxying to `upstream`.
struct Nginx {
    dir: tempfile::TempDir,
    tls_port: u16,
    child: Option<Child>,
}

impl Nginx {
    fn tools_available() -> bool {
        tool_available("nginx", "-v")
            && tool_available("openssl", "version")
            && tool_available("curl", "--version")
    }

    fn prepare(upstream: SocketAddr) -> Nginx {
        Nginx::prepare_for(&[upstream])
    }

    /// The shipped site with one upstream `server` line per receiver, as
    /// README's "Several receivers on one PostgreSQL" says to list them.
    fn prepare_for(upstreams: &[SocketAddr]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        // Worker processes (nobody, when the tests run as root) read below here.
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let (cert, key) = (p.join("cert.pem"), p.join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(made.success(), "openssl could not make a test certificate");
        let tls_port = free_port();
        let http_port = free_port();
        let site = std::fs::read_to_string(deploy_file("nginx.conf")).unwrap();
        let site = swap(
            site,
            "/etc/letsencrypt/live/hooks.example.com/fullchain.pem",
            cert.to_str().unwrap(),
        );
        let site = swap(
            site,
            "/etc/letsencrypt/live/hooks.example.com/privkey.pem",
            key.to_str().unwrap(),
        );
        let site = swap(
            site,
            "listen 443 ssl;",
            &format!("listen 127.0.0.1:{tls_port} ssl;"),
        );
        let site = swap(site, "listen [::]:443 ssl;", "");
        let site = swap(
            site,
            "listen 80;",
            &format!("listen 127.0.0.1:{http_port};"),
        );
        let site = swap(site, "listen [::]:80;", "");
        let servers: Vec<String> = upstreams.iter().map(|u| format!("server {u};")).collect();
        let site = swap(site, "server 127.0.0.1:8080;", &servers.join("\n    "));
        let site = swap(
            site,
            "/var/log/nginx/authkey-receiver.access.log",
            p.join("access.log").to_str().unwrap(),
        );
        std::fs::write(p.join("site.conf"), site).unwrap();
        let d = p.display();
        let main = format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nworker_processes 1;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include {d}/site.conf;\n}}\n"
        );
        std::fs::write(p.join("nginx.conf"), main).unwrap();
        Nginx {
            dir,
            tls_port,
            child: None,
        }
    }

    fn command(&self) -> Command {
        let p = self.dir.path();
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(p)
            .arg("-e")
            .arg(p.join("error.log"))
            .arg("-c")
            .arg(p.join("nginx.conf"));
        cmd
    }

    fn start(&mut self) {
        let child = self
            .command()
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.tls_port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not start: {}",
                std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `curl` over TLS from the loopback address `from`; returns the status
    /// and the body.
    fn curl(&self, from: &str, path_and_query: &str, headers: &[&str]) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--interface", from, "--cacert"])
            .arg(self.dir.path().join("cert.pem"))
            .args(["-w", "\n%{http_code}"]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        let out = cmd
            .arg(format!(
                "https://127.0.0.1:{}{path_and_query}",
                self.tls_port
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "curl failed: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), body.to_string())
    }

    /// The access log, once nginx has written a line to it (it logs after
    /// sending the response).
    fn access_log(&self) -> String {
        let started = Instant::now();
        loop {
            let log =
                std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
            if !log.is_empty() || started.elapsed() > Duration::from_secs(5) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: the master stops its workers too (a SIGKILL would orphan
        // them).
        if let Some(child) = &mut self.child {
            let quit = Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .status();
            if !quit.is_ok_and(|s| s.success()) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// The service as deploy/config.production.toml runs it behind nginx: nginx
/// (connecting from 127.0.0.1) is the trusted proxy, and only the client
/// address 127.0.0.2 may post callbacks.
async fn app_behind_nginx() -> TestApp {
    spawn_app_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.allowlist.default = vec!["127.0.0.2/32".parse().unwrap()];
        s.clients[0].url_token = Some("tok-in-the-url".into());
    })
    .await
}

const CALLBACK: &str =
    "/v1/callbacks/default/sms?logid=ngx-1&mobile=919876500001&status=DELIVRD&token=tok-in-the-url";

#[tokio::test]
async fn nginx_accepts_the_shipped_site_with_a_test_certificate() {
    if !Nginx::tools_available() {
        return;
    }
    let nginx = Nginx::prepare("127.0.0.1:8080".parse().unwrap());
    let out = nginx.command().arg("-t").output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nginx -t refused the site: {log}");
    assert!(log.contains("test is successful"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_x_forwarded_for_sent_to_nginx_does_not_get_through() {
    if !Nginx::tools_available() {
        return;
    }
    let app = app_behind_nginx().await;
    let mut nginx = Nginx::prepare(app.addr);
    nginx.start();
    // 127.0.0.3 claims to be the allowed 127.0.0.2; nginx replaces the header
    // with the address it really saw.
    let (status, body, log) = tokio::task::spawn_blocking(move || {
        let (status, body) = nginx.curl("127.0.0.3", CALLBACK, &["X-Forwarded-For: 127.0.0.2"]);
        (status, body, nginx.access_log())
    })
    .await
    .unwrap();
    assert!(log.contains("127.0.0.3"), "nginx logged the request: {log}");
    assert!(
        !log.contains("tok-in-the-url"),
        "the URL token is in nginx's log: {log}"
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("ip_not_allowed"), "{body}");
    assert_eq!(app.count("events"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_not_served_through_nginx() {
    if !Nginx::tools_available() {
        return;
    }
    let app = app_behind_nginx().await;
    let mut nginx = Nginx::prepare(app.addr);
    nginx.start();
    let (metrics, health) = tokio::task::spawn_blocking(move || {
        (
            nginx.curl("127.0.0.1", "/metrics", &[]),
            nginx.curl("127.0.0.1", "/healthz", &[]),
        )
    })
    .await
    .unwrap();
    assert_eq!(metrics.0, 404, "{}", metrics.1);
    assert_eq!(health.0, 200, "{}", health.1);
    // The service itself refuses a relayed scrape too.
    let relayed = app
        .http
        .get(app.url("/metrics"))
        .header("x-forwarded-for", "127.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(relayed.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allowlist_judges_the_original_client_address_behind_nginx() {
    if !Nginx::tools_available() {
        return;
    }
    let app = app_behind_nginx().await;
    let mut nginx = Nginx::prepare(app.addr);
    nginx.start();
    let (status, body) =
        tokio::task::spawn_blocking(move || nginx.curl("127.0.0.2", CALLBACK, &[]))
            .await
            .unwrap();
    assert_eq!(status, 200, "{body}");
    let source: String = app.db().one(
        "SELECT source_ip FROM events WHERE provider_message_id = 'ngx-1'",
        &[],
    );
    assert_eq!(source, "127.0.0.2");
    // The same callback straight from nginx's own address is not allowed.
    let direct = app
        .get_callback(
            "default",
            "sms",
            "logid=ngx-2&mobile=919876500001&token=tok-in-the-url",
        )
        .await;
    assert_eq!(direct.status().as_u16(), 403);
}

#[test]
fn systemd_analyze_accepts_the_unit_files() {
    if !tool_available("systemd-analyze", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for entry in std::fs::read_dir(deploy_file("")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !(name.ends_with(".service") || name.ends_with(".timer")) {
            continue;
        }
        // The units name the installed binary; verify checks it is executable.
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "/usr/local/bin/authkey-receiver",
            env!("CARGO_BIN_EXE_authkey-receiver"),
        );
        std::fs::write(dir.path().join(&name), text).unwrap();
        units.push(name);
    }
    assert!(units.iter().any(|u| u == "authkey-receiver.service"));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units.iter().map(|u| dir.path().join(u)))
        .output()
        .unwrap();
    let complaints: Vec<_> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| units.iter().any(|u| l.contains(u.as_str())))
        .map(str::to_string)
        .collect();
    assert!(out.status.success(), "{out:?}");
    assert!(complaints.is_empty(), "systemd-analyze: {complaints:#?}");
    let unit = std::fs::read_to_string(deploy_file("authkey-receiver.service")).unwrap();
    for line in [
        "User=authkey-receiver",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/authkey-receiver",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_as_a_non_root_user() {
    let text = std::fs::read_to_string(deploy_file("Dockerfile")).unwrap();
    let from: Vec<_> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(from.len() >= 2, "multi-stage: {from:?}");
    assert!(text.contains("COPY --from=build "));
    let user = text
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
    assert!(text.contains("cargo build --release --locked"));
}

/// README's two receivers on one PostgreSQL behind the shipped nginx site:
/// with one receiver gone, nginx hands its callbacks to the other, and a
/// callback sent again is a duplicate whichever receiver gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_hands_callbacks_to_the_other_receiver_when_one_is_gone() {
    if !Nginx::tools_available() {
        return;
    }
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let (first, second) = (Node::start(&pg), Node::start(&pg));
    let mut nginx = Nginx::prepare_for(&[first.addr, second.addr]);
    nginx.start();
    let callback = |n: u32| {
        format!("/v1/callbacks/default/sms?logid=two-{n}&mobile=9198765{n:05}&status=DELIVRD")
    };
    let (nginx, outcomes) = tokio::task::spawn_blocking(move || {
        let mut outcomes = Vec::new();
        for n in 0..4 {
            outcomes.push(nginx.curl("127.0.0.1", &callback(n), &[]));
        }
        drop(first);
        for n in 4..12 {
            outcomes.push(nginx.curl("127.0.0.1", &callback(n), &[]));
        }
        // The first callbacks again: stored by either receiver, still known.
        for n in 0..4 {
            outcomes.push(nginx.curl("127.0.0.1", &callback(n), &[]));
        }
        (nginx, outcomes)
    })
    .await
    .unwrap();
    for (i, (status, body)) in outcomes.iter().enumerate() {
        assert_eq!(*status, 200, "callback {i} through nginx: {body}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        let expected = if i < 12 { (1, 0) } else { (0, 1) };
        assert_eq!(
            (
                body["accepted"].as_u64().unwrap(),
                body["duplicates"].as_u64().unwrap()
            ),
            expected,
            "callback {i}: {body}"
        );
    }
    assert_eq!(pg.count("SELECT count(*) FROM events"), 12);
    assert_eq!(
        pg.count("SELECT count(DISTINCT provider_message_id) FROM events"),
        12
    );
    drop(nginx);
    drop(second);
}
