//! The run lock shared by the in-process pruning task and the `archive`
//! command: an advisory `flock` on `{data_dir}/archive.lock`. The kernel
//! drops it when the holder exits, so a killed run never leaves it stuck.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::files::create_private_dir;

/// Name of the lock file in the data directory.
pub const LOCK_FILE: &str = "archive.lock";

/// Held while a run works; released on drop.
pub struct RunLock {
    _file: File,
}

/// Path of the lock file.
pub fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LOCK_FILE)
}

/// Takes the lock, or `None` when another run (in this process or
/// another) holds it.
pub fn try_lock(data_dir: &Path) -> io::Result<Option<RunLock>> {
    create_private_dir(data_dir)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path(data_dir))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(RunLock { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = try_lock(dir.path()).unwrap().expect("free lock is taken");
        assert!(try_lock(dir.path()).unwrap().is_none());
        drop(first);
        assert!(try_lock(dir.path()).unwrap().is_some());
    }
}
