//! Archive files on disk: names, the gzip NDJSON writer (temp file, fsync,
//! rename, fsync directory) and `SHA256SUMS`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use crate::store::archive::{ArchiveRow, Kind};

/// Checksum file in every archive directory, in `sha256sum` format.
pub const SUMS: &str = "SHA256SUMS";
/// Suffix of archive files.
pub const SUFFIX: &str = ".ndjson.gz";
/// Suffix of files being written; any left over is from a crashed run.
pub const TMP_SUFFIX: &str = ".tmp";

const DAY_MS: i64 = 86_400_000;

/// The parts of an archive file name:
/// `{kind}-{YYYY-MM-DD}-{first_id}-{last_id}.ndjson.gz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// Table the rows came from.
    pub kind: Kind,
    /// UTC day of the rows.
    pub day: NaiveDate,
    /// Smallest row id in the file.
    pub first_id: i64,
    /// Largest row id in the file.
    pub last_id: i64,
}

impl FileName {
    /// Reads a file name; `None` if it is not an archive file name.
    pub fn parse(name: &str) -> Option<FileName> {
        let stem = name.strip_suffix(SUFFIX)?;
        let (kind, rest) = stem.split_once('-')?;
        let day = NaiveDate::parse_from_str(rest.get(..10)?, "%Y-%m-%d").ok()?;
        let (first, last) = rest.get(10..)?.strip_prefix('-')?.split_once('-')?;
        Some(FileName {
            kind: Kind::parse(kind)?,
            day,
            first_id: first.parse().ok()?,
            last_id: last.parse().ok()?,
        })
    }
}

impl std::fmt::Display for FileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}-{}-{}{SUFFIX}",
            self.kind,
            self.day.format("%Y-%m-%d"),
            self.first_id,
            self.last_id
        )
    }
}

/// The UTC date of a day number (days since the Unix epoch).
pub fn day_date(day: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(day * DAY_MS)
        .map(|d| d.date_naive())
        .unwrap_or_default()
}

/// `{client}/{channel}/YYYY/MM`, relative to `archive.dir`.
pub fn group_dir(client: &str, channel: &str, day: NaiveDate) -> PathBuf {
    PathBuf::from(client)
        .join(channel)
        .join(format!("{:04}", day.year()))
        .join(format!("{:02}", day.month()))
}

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Makes a rename or unlink in `dir` durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Counts and hashes the bytes on their way to the file.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a finished file holds.
#[derive(Debug, Clone)]
pub struct Written {
    /// Lines (rows).
    pub rows: u64,
    /// Compressed size.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the compressed file.
    pub sha256: String,
    /// Smallest row id.
    pub first_id: i64,
    /// Largest row id.
    pub last_id: i64,
    /// Newest retention-column value.
    pub last_at: i64,
}

/// A gzip NDJSON file being written under a temporary name.
pub struct ArchiveWriter {
    /// Buffered in front of the encoder too: serde_json writes many tiny
    /// pieces, and flate2 does fixed work per `write` call.
    gz: BufWriter<GzEncoder<Hashing<BufWriter<File>>>>,
    rows: u64,
    first_id: i64,
    last_id: i64,
    last_at: i64,
}

impl ArchiveWriter {
    /// Creates (truncating) the temp file, mode 0600.
    pub fn create(tmp: &Path) -> io::Result<ArchiveWriter> {
        let file = create_private_file(tmp)?;
        let hashing = Hashing {
            inner: BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            bytes: 0,
        };
        Ok(ArchiveWriter {
            // Level 1: archive speed matters more than the last few percent
            // of size; NDJSON still shrinks several-fold.
            gz: BufWriter::with_capacity(256 * 1024, GzEncoder::new(hashing, Compression::fast())),
            rows: 0,
            first_id: i64::MAX,
            last_id: i64::MIN,
            last_at: i64::MIN,
        })
    }

    /// Appends one row as one line.
    pub fn write_row(&mut self, row: &ArchiveRow<'_, '_>) -> io::Result<()> {
        serde_json::to_writer(&mut self.gz, row)?;
        self.gz.write_all(b"\n")?;
        self.rows += 1;
        self.first_id = self.first_id.min(row.id());
        self.last_id = self.last_id.max(row.id());
        self.last_at = self.last_at.max(row.at());
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Ends the gzip stream and fsyncs the file.
    pub fn finish(self) -> io::Result<Written> {
        let hashing = self.gz.into_inner().map_err(|e| e.into_error())?.finish()?;
        let Hashing {
            inner,
            hasher,
            bytes,
        } = hashing;
        let file = inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(Written {
            rows: self.rows,
            bytes,
            sha256: hex(&hasher.finalize()),
            first_id: self.first_id,
            last_id: self.last_id,
            last_at: self.last_at,
        })
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rewrites `dir/SHA256SUMS` to list exactly `entries` (file name, hex
/// SHA-256), atomically; removes it when `entries` is empty.
pub fn write_sums(dir: &Path, entries: &mut [(String, String)]) -> io::Result<()> {
    let path = dir.join(SUMS);
    if entries.is_empty() {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => return fsync_dir(dir),
        }
    }
    entries.sort();
    let tmp = dir.join(format!(".{SUMS}{TMP_SUFFIX}"));
    let mut file = create_private_file(&tmp)?;
    for (name, sha) in entries.iter() {
        writeln!(file, "{sha}  {name}")?;
    }
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    fsync_dir(dir)
}

/// Reads a `SHA256SUMS` file into (file name, hex SHA-256) pairs; a line
/// that is not `HASH  NAME` is an error naming the line.
pub fn read_sums(path: &Path) -> io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let bad = || {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("line {} is not `SHA256  NAME`", i + 1),
                )
            };
            let (sha, name) = line.split_once("  ").ok_or_else(bad)?;
            let name = name.strip_prefix('*').unwrap_or(name);
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) || name.is_empty() {
                return Err(bad());
            }
            Ok((name.to_string(), sha.to_ascii_lowercase()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        let name = FileName {
            kind: Kind::Messages,
            day: NaiveDate::from_ymd_opt(2026, 3, 9).unwrap(),
            first_id: 17,
            last_id: 4021,
        };
        assert_eq!(name.to_string(), "messages-2026-03-09-17-4021.ndjson.gz");
        assert_eq!(FileName::parse(&name.to_string()), Some(name));
        for bad in [
            "SHA256SUMS",
            "events-2026-03-09-17.ndjson.gz",
            "other-2026-03-09-1-2.ndjson.gz",
            "events-2026-13-09-1-2.ndjson.gz",
            "events-2026-03-09-1-2.ndjson",
        ] {
            assert_eq!(FileName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn day_numbers_map_to_utc_dates_and_directories() {
        let day = day_date(20_000);
        assert_eq!(day, NaiveDate::from_ymd_opt(2024, 10, 4).unwrap());
        assert_eq!(
            group_dir("bank", "sms", day),
            PathBuf::from("bank/sms/2024/10")
        );
    }

    #[test]
    fn sums_files_are_written_sorted_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let mut entries = vec![
            ("z.gz".to_string(), a.clone()),
            ("y.gz".to_string(), b.clone()),
        ];
        write_sums(dir.path(), &mut entries).unwrap();
        let text = std::fs::read_to_string(dir.path().join(SUMS)).unwrap();
        assert_eq!(text, format!("{b}  y.gz\n{a}  z.gz\n"));
        assert_eq!(read_sums(&dir.path().join(SUMS)).unwrap().len(), 2);
        write_sums(dir.path(), &mut []).unwrap();
        assert!(!dir.path().join(SUMS).exists());
        std::fs::write(dir.path().join(SUMS), "nonsense\n").unwrap();
        let err = read_sums(&dir.path().join(SUMS)).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
