//! The command line: config errors give one line naming the key and exit 2;
//! `--config` works before or after the subcommand; migrate; print-default.

use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::{backend_env, on_postgres, TestDb};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authkey-receiver"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("AUTHKEY_RECEIVER_CONFIG")
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn invalid_configs_stop_with_one_line_naming_the_key_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("[allowlist]\ndefault = [\"10.0.0.0/33\"]\n", "allowlist.default[0]"),
        ("[[clients]]\nid = \"bank\"\nclass = \"platinum\"\n", "clients[0].class"),
        ("[[clients]]\nid = \"a\"\nclass = \"standard\"\n[[clients]]\nid = \"a\"\nclass = \"banking\"\n", "clients[1].id"),
        ("[server]\nlisten = \"127.0.0.1:8080\"\nmax_body = 5\n", "max_body"),
        ("[server\n", "not valid TOML"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let file = write(tmp.path(), &format!("c{i}.toml"), text);
        for args in [
            vec!["--config", &file, "serve"],
            vec!["config", "check", "--config", &file],
        ] {
            let out = run(&args, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{text:?}: {stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
            assert!(stderr.contains(needle), "{needle} not in {stderr}");
        }
    }
}

#[test]
fn an_environment_override_is_validated_like_the_file() {
    let out = run(
        &["config", "check"],
        &[("AUTHKEY_RECEIVER__ALLOWLIST__DEFAULT", "[\"bogus\"]")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allowlist.default[0]"));
}

#[test]
fn the_printed_default_is_a_valid_config_file() {
    let out = run(&["config", "print-default"], &[]);
    assert!(out.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "d.toml",
        &String::from_utf8(out.stdout).unwrap(),
    );
    let out = run(&["config", "check", "--config", &file], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("127.0.0.1:8080"), "{stdout}");
}

#[test]
fn migrate_creates_the_schema_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let backend = backend_env(&dir);
    let mut env = vec![("AUTHKEY_RECEIVER__STORAGE__DATA_DIR", dir.to_str().unwrap())];
    env.extend(backend.iter().map(|(k, v)| (*k, v.as_str())));
    let first = run(&["migrate"], &env);
    assert!(first.status.success());
    assert_eq!(
        String::from_utf8_lossy(&first.stdout).trim(),
        "schema version 0 -> 1"
    );
    let again = run(&["migrate"], &env);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "schema version 1 -> 1"
    );
    let tables = TestDb::open(&dir).tables();
    for t in [
        "api_tokens",
        "archive_files",
        "audit_log",
        "events",
        "messages",
        "rejected",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} missing from {tables:?}");
    }
    if !on_postgres() {
        // The directory that holds receiver.db is private.
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&dir).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
    }
}
