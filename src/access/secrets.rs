//! Secrets kept in their own files (`*_file` config keys, `server.tls_key`):
//! a file that group or others may access is refused, so a secret never sits
//! world-readable next to a config that is often shared.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Permission bits a secret file must not have: any access by group or others.
const GROUP_OTHER_BITS: u32 = 0o077;

/// Why a secret file cannot be used. Messages name the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Group or others may access the file.
    #[error("{path} has mode {mode:o}; a secret file must not be accessible by group or others (chmod 600)")]
    TooOpen {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds nothing but whitespace.
    #[error("{path} is empty")]
    Empty {
        /// The file.
        path: String,
    },
}

/// Opens `path` and checks its mode on the open handle (so the file checked is
/// the file read).
fn open_private(path: &Path) -> Result<File, SecretFileError> {
    let read_error = |source| SecretFileError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o7777;
    if mode & GROUP_OTHER_BITS != 0 {
        return Err(SecretFileError::TooOpen {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(file)
}

/// Fails unless `path` exists and only its owner may access it.
pub fn ensure_private(path: &Path) -> Result<(), SecretFileError> {
    open_private(path).map(drop)
}

/// Reads the lines of a private secret file: each trimmed, blank lines
/// skipped. Several lines are several secrets (rotation).
pub fn read_secret_lines(path: &Path) -> Result<Vec<String>, SecretFileError> {
    let mut text = String::new();
    open_private(path)?
        .read_to_string(&mut text)
        .map_err(|source| SecretFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        return Err(SecretFileError::Empty {
            path: path.display().to_string(),
        });
    }
    Ok(lines)
}

/// Reads a private secret file holding exactly one secret.
pub fn read_secret(path: &Path) -> Result<String, SecretFileError> {
    let mut lines = read_secret_lines(path)?;
    if lines.len() > 1 {
        return Err(SecretFileError::Read {
            path: path.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "holds more than one line; this key takes one secret",
            ),
        });
    }
    Ok(lines.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn an_owner_only_file_is_read_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "s", "  s3cret \n\n", 0o600);
        assert_eq!(read_secret(&p).unwrap(), "s3cret");
        let p = write(dir.path(), "r", "whsec_a\nwhsec_b\n", 0o400);
        assert_eq!(read_secret_lines(&p).unwrap(), ["whsec_a", "whsec_b"]);
        assert!(read_secret(&p).unwrap_err().to_string().contains("one"));
    }

    #[test]
    fn group_or_other_access_is_refused_without_showing_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o604, 0o620, 0o644, 0o610] {
            let p = write(dir.path(), "s", "s3cret", mode);
            let err = read_secret(&p).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{mode:o}: {err}");
            assert!(!err.contains("s3cret"));
            assert!(ensure_private(&p).is_err());
        }
    }

    #[test]
    fn missing_and_blank_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_secret(&dir.path().join("nope")).is_err());
        let p = write(dir.path(), "blank", " \n", 0o600);
        assert!(read_secret(&p).unwrap_err().to_string().contains("empty"));
    }
}
