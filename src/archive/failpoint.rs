//! Crash points for tests: with `AUTHKEY_RECEIVER_FAILPOINT=NAME` set, the
//! process aborts (as abruptly as a SIGKILL) when it reaches the point
//! `NAME`. Unset, each point costs one comparison. Points, in run order:
//! `before_rename`, `after_rename`, `after_sums`, `after_record`,
//! `after_delete_batch`, `after_file_removed`.

use std::sync::OnceLock;

/// Environment variable naming the point to abort at.
pub const ENV: &str = "AUTHKEY_RECEIVER_FAILPOINT";

/// Aborts the process if `name` is the configured failpoint.
pub fn hit(name: &str) {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    if POINT.get_or_init(|| std::env::var(ENV).ok()).as_deref() == Some(name) {
        eprintln!("authkey-receiver: failpoint `{name}` reached; aborting");
        std::process::abort();
    }
}
