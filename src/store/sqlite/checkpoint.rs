//! Checkpoints the WAL on a thread of its own, so the writer thread never
//! copies pages into the database file inside a callback batch's commit
//! (its connection has `wal_autocheckpoint = 0`). A PASSIVE checkpoint takes
//! no write lock: commits go on while it runs.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::Opener;

/// How often the WAL is checkpointed.
const PERIOD: Duration = Duration::from_millis(200);

/// The running checkpoint thread; [`Checkpointer::stop`] ends it.
pub(crate) struct Checkpointer {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<()>,
}

impl Checkpointer {
    pub(crate) fn spawn(opener: Opener) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&opener, &stopped))?;
        Ok(Checkpointer { stop, handle })
    }

    /// Ends the thread after the checkpoint in progress, if any.
    pub(crate) fn stop(self) {
        drop(self.stop);
        if self.handle.join().is_err() {
            tracing::error!("the sqlite checkpoint thread panicked");
        }
    }
}

fn run(opener: &Opener, stopped: &mpsc::Receiver<()>) {
    let mut conn: Option<Connection> = None;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(PERIOD) {
        if conn.is_none() {
            conn = opener.open(false).ok();
        }
        let Some(c) = &conn else { continue };
        if let Err(e) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying with a new connection");
            conn = None;
        }
    }
}
