//! HTTPS with rustls: a real TLS client completes a callback against a
//! certificate generated here; a bad key or cert stops the service at start.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use authkey_receiver::startup::{Application, StartError};

use crate::helpers::{json_with_status, spawn_app_with, test_settings};

/// Writes a self-signed certificate for `localhost` and its key (mode 0600).
fn write_cert(dir: &Path) -> (PathBuf, PathBuf, String) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = generated.cert.pem();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key, cert_pem)
}

#[tokio::test]
async fn a_tls_client_trusting_the_generated_certificate_completes_a_callback() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, cert_pem) = write_cert(certs.path());
    let app = spawn_app_with(|s| {
        s.server.tls_cert = Some(cert);
        s.server.tls_key = Some(key);
    })
    .await;
    let https = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", app.addr)
        .build()
        .unwrap();
    let url = format!(
        "https://localhost:{}/v1/callbacks/default/sms?logid=tls1&mobile=919876500001&status=sent",
        app.addr.port()
    );
    let body = json_with_status(https.get(&url).send().await.unwrap(), 200).await;
    assert_eq!(body["accepted"], 1);
    assert_eq!(app.count("events"), 1);
    // Plain HTTP on the TLS port gets no HTTP answer at all.
    assert!(app.http.get(app.url("/healthz")).send().await.is_err());
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_cannot_post() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, _) = write_cert(certs.path());
    let app = spawn_app_with(|s| {
        s.server.tls_cert = Some(cert);
        s.server.tls_key = Some(key);
    })
    .await;
    let https = reqwest::Client::builder()
        .use_rustls_tls()
        .resolve("localhost", app.addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/healthz", app.addr.port());
    assert!(https.get(&url).send().await.is_err());
}

#[tokio::test]
async fn a_key_that_does_not_match_the_certificate_stops_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let (cert, _, _) = write_cert(&a);
    let (_, other_key, _) = write_cert(&b);
    let mut settings = test_settings(&tmp.path().join("data"));
    settings.server.tls_cert = Some(cert.clone());
    settings.server.tls_key = Some(other_key);
    let err = Application::build(settings.clone()).err().unwrap();
    assert!(matches!(err, StartError::Tls(_)), "{err}");
    settings.server.tls_key = Some(cert);
    let err = Application::build(settings).err().unwrap().to_string();
    assert!(err.contains("private key"), "{err}");
}
