//! Secrets from `*_file` keys: read when private, refused (service does not
//! start) when group or others may read them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use authkey_receiver::config::Settings;

use crate::helpers::spawn_binary;

fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("AUTHKEY_RECEIVER_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn every_secret_can_come_from_a_private_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = secret_file(dir, "url", "url-token-from-file\n", 0o600);
    let sign = secret_file(
        dir,
        "sign",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n\nwhsec_c2lnbmluZy1zZWNyZXQtYWZ0ZXItcm90YXRpb24=\n",
        0o400,
    );
    let meta = secret_file(dir, "meta", "meta-secret", 0o600);
    let rbm = secret_file(dir, "rbm", "rbm-token", 0o600);
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[[clients]]\nid = \"a\"\nclass = \"standard\"\nurl_token_file = {:?}\nsigning_secret_file = {:?}\nmeta_app_secret_file = {:?}\nrbm_client_token_file = {:?}\n",
            url, sign, meta, rbm
        ),
    )
    .unwrap();
    let s = Settings::load(Some(&config), Vec::new()).unwrap();
    let c = &s.clients[0];
    assert_eq!(c.url_token.as_deref(), Some("url-token-from-file"));
    assert_eq!(
        c.signing_secret.as_deref().unwrap(),
        [
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_c2lnbmluZy1zZWNyZXQtYWZ0ZXItcm90YXRpb24="
        ]
    );
    assert_eq!(c.meta_app_secret.as_deref(), Some("meta-secret"));
    assert_eq!(c.rbm_client_token.as_deref(), Some("rbm-token"));
}

#[test]
fn a_secret_file_readable_by_group_or_others_stops_the_service_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let url = secret_file(tmp.path(), "url", "leaky-token-value", 0o644);
    let url = url.to_str().unwrap();
    let tls = secret_file(tmp.path(), "key.pem", "not read", 0o640);
    let tls = tls.to_str().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let cases = [
        (
            vec![("AUTHKEY_RECEIVER__CLIENTS__0__URL_TOKEN_FILE", url)],
            "clients[0].url_token_file",
        ),
        (
            vec![
                ("AUTHKEY_RECEIVER__SERVER__TLS_KEY", tls),
                ("AUTHKEY_RECEIVER__SERVER__TLS_CERT", "cert.pem"),
            ],
            "server.tls_key",
        ),
    ];
    for (mut env, key) in cases {
        env.push(("AUTHKEY_RECEIVER__STORAGE__DATA_DIR", data));
        for args in [vec!["serve"], vec!["config", "check"]] {
            let out = run(&args, &env);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
            assert!(stderr.contains(&format!("`{key}`")), "{stderr}");
            assert!(stderr.contains("chmod 600"), "{stderr}");
            assert!(!stderr.contains("leaky-token-value"), "{stderr}");
        }
    }
}

#[test]
fn a_secret_and_its_file_together_or_a_bad_signing_secret_are_config_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let url = secret_file(tmp.path(), "url", "t", 0o600);
    let out = run(
        &["config", "check"],
        &[
            ("AUTHKEY_RECEIVER__CLIENTS__0__URL_TOKEN", "t"),
            (
                "AUTHKEY_RECEIVER__CLIENTS__0__URL_TOKEN_FILE",
                url.to_str().unwrap(),
            ),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`clients[0].url_token_file`"));
    let out = run(
        &["config", "check"],
        &[(
            "AUTHKEY_RECEIVER__CLIENTS__0__SIGNING_SECRET",
            "[\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", \"whsec_!!\"]",
        )],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`clients[0].signing_secret[1]`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_served_url_token_is_the_one_in_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let url = secret_file(tmp.path(), "url", "file-token-77\n", 0o600);
    let (mut child, addr) = spawn_binary(
        &tmp.path().join("data"),
        &[(
            "AUTHKEY_RECEIVER__CLIENTS__0__URL_TOKEN_FILE",
            url.to_str().unwrap(),
        )],
    );
    let base =
        format!("http://{addr}/v1/callbacks/default/sms?logid=f1&mobile=919876500001&status=sent");
    let http = reqwest::Client::new();
    let without = http.get(&base).send().await.unwrap();
    let with = http
        .get(format!("{base}&token=file-token-77"))
        .send()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(without.status().as_u16(), 401);
    assert_eq!(with.status().as_u16(), 200);
}
