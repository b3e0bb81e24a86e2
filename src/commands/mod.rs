//! The subcommands for the people who read the data, run on the host:
//! `token create|list|revoke`, `export`, `audit`. `main.rs` only dispatches
//! here. Each opens the store, does its work on a small runtime, flushes the
//! writer and returns the exit status (0 ok, 1 runtime failure, 2 bad input).

mod audit;
mod export;
mod token;

use std::future::Future;
use std::process::ExitCode;

use crate::config::Settings;
use crate::store::{Store, StoreError};

pub use audit::audit;
pub use export::export;
pub use token::token;

/// Exit status of a runtime failure.
const EXIT_FAILURE: u8 = 1;
/// Exit status of bad input.
const EXIT_USAGE: u8 = 2;

/// A command that did not succeed: exit status and a one-line reason.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    fn runtime(message: impl std::fmt::Display) -> Failure {
        Failure {
            code: EXIT_FAILURE,
            message: message.to_string(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::runtime(e)
    }
}

/// Opens the store, runs `work` with it on a current-thread runtime, then
/// flushes the writer; maps the result to an exit status.
fn with_store<F, Fut>(settings: &Settings, work: F) -> ExitCode
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Failure::runtime(e)),
    };
    let result = runtime.block_on(async {
        let (store, writer) = Store::open(&settings.storage)?;
        let result = work(store).await;
        writer.shutdown().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => report(f),
    }
}

fn report(f: Failure) -> ExitCode {
    eprintln!("authkey-receiver: {}", f.message);
    ExitCode::from(f.code)
}

/// The actor the audit log names for commands run on the host.
fn local_actor() -> String {
    use std::os::unix::fs::MetadataExt;
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            std::fs::metadata("/proc/self")
                .ok()
                .map(|m| format!("uid {}", m.uid()))
        })
        .unwrap_or_else(|| "unknown".into());
    format!("local:{user}")
}

/// Checks that every id names a configured client.
fn check_clients(settings: &Settings, clients: &[String]) -> Result<(), Failure> {
    match clients.iter().find(|c| settings.client(c).is_none()) {
        Some(c) => Err(Failure::usage(format!(
            "unknown client `{c}`; configured: {}",
            settings
                .clients
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => Ok(()),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
