//! `verify-archive`: re-reads every archive file under a directory and
//! checks it against its directory's `SHA256SUMS`, against `archive_files`
//! (when the database is at hand) and line by line (gzip decodes, each line
//! is a JSON object).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::files::{hex, read_sums, SUFFIX, SUMS};
use crate::store::archive::FileRecord;

/// One bad or missing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path relative to the checked directory.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Archive files read.
    pub files: u64,
    /// Lines read.
    pub rows: u64,
    /// Everything wrong, by path.
    pub problems: Vec<Problem>,
}

/// The ledger to check against.
pub enum Ledger {
    /// No database: `SHA256SUMS` and file contents only.
    None,
    /// Files present are checked against their rows; a recorded file that
    /// is absent is not reported (a copy in cold storage may be partial).
    Copy(Vec<FileRecord>),
    /// The live archive directory: every recorded file must be present.
    Live(Vec<FileRecord>),
}

/// Hashes and reads one file in a single pass.
struct Hashed<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Content check of one file: (sha256, lines) or the first defect.
fn read_file(path: &Path) -> Result<(String, u64), (Option<String>, String)> {
    let file = std::fs::File::open(path).map_err(|e| (None, e.to_string()))?;
    let mut hashed = Hashed {
        inner: file,
        hasher: Sha256::new(),
    };
    let mut lines = 0;
    let mut defect = None;
    {
        let reader = io::BufReader::new(flate2::read::GzDecoder::new(&mut hashed));
        for line in reader.split(b'\n') {
            match line {
                Ok(bytes) => {
                    lines += 1;
                    let ok = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .map(|v| v.is_object())
                        .unwrap_or(false);
                    if !ok {
                        defect = Some(format!("line {lines} is not a JSON object"));
                        break;
                    }
                }
                Err(e) => {
                    defect = Some(format!("not a complete gzip stream: {e}"));
                    break;
                }
            }
        }
    }
    // Hash the whole file even when decoding stopped early.
    let rest = io::copy(&mut hashed, &mut io::sink());
    let sha = rest.ok().map(|_| hex(&hashed.hasher.finalize()));
    match (defect, sha) {
        (None, Some(sha)) => Ok((sha, lines)),
        (Some(d), sha) => Err((sha, d)),
        (None, None) => Err((None, "cannot be read to the end".into())),
    }
}

fn archive_dirs(root: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    out.push(root.to_path_buf());
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            archive_dirs(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// Checks every archive file under `root`.
pub fn verify(root: &Path, ledger: &Ledger) -> io::Result<Report> {
    let records: HashMap<&str, &FileRecord> = match ledger {
        Ledger::None => HashMap::new(),
        Ledger::Copy(r) | Ledger::Live(r) => r.iter().map(|f| (f.path.as_str(), f)).collect(),
    };
    let mut report = Report::default();
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut dirs = Vec::new();
    archive_dirs(root, &mut dirs)?;
    for dir in dirs {
        let rel_dir = dir
            .strip_prefix(root)
            .unwrap_or(&dir)
            .to_string_lossy()
            .into_owned();
        let rel = |name: &str| {
            if rel_dir.is_empty() {
                name.to_string()
            } else {
                format!("{rel_dir}/{name}")
            }
        };
        let mut names: Vec<String> = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        let has_archives = names.iter().any(|n| n.ends_with(SUFFIX));
        let sums: Option<HashMap<String, String>> = if names.iter().any(|n| n == SUMS) {
            match read_sums(&dir.join(SUMS)) {
                Ok(s) => Some(s.into_iter().collect()),
                Err(e) => {
                    problems.entry(rel(SUMS)).or_default().push(e.to_string());
                    None
                }
            }
        } else {
            if has_archives {
                problems
                    .entry(rel(SUMS))
                    .or_default()
                    .push("missing".into());
            }
            None
        };
        for name in names.iter().filter(|n| n.ends_with(SUFFIX)) {
            let path = rel(name);
            seen.insert(path.clone());
            report.files += 1;
            let mut why = Vec::new();
            let sha = match read_file(&dir.join(name)) {
                Ok((sha, lines)) => {
                    report.rows += lines;
                    if let Some(rec) = records.get(path.as_str()) {
                        if rec.rows != lines {
                            why.push(format!("{lines} lines, archive_files says {}", rec.rows));
                        }
                    }
                    Some(sha)
                }
                Err((sha, defect)) => {
                    why.push(defect);
                    sha
                }
            };
            if let Some(sums) = &sums {
                match (sums.get(name), &sha) {
                    (None, _) => why.push("not listed in SHA256SUMS".into()),
                    (Some(want), Some(got)) if want != got => {
                        why.push("checksum does not match SHA256SUMS".into())
                    }
                    _ => {}
                }
            }
            match (records.get(path.as_str()), &sha) {
                (Some(rec), Some(got)) if &rec.sha256 != got => {
                    why.push("checksum does not match archive_files".into())
                }
                (None, _) if matches!(ledger, Ledger::Live(_)) => {
                    why.push("not recorded in archive_files".into())
                }
                _ => {}
            }
            if !why.is_empty() {
                problems.entry(path).or_default().extend(why);
            }
        }
        if let Some(sums) = &sums {
            for listed in sums.keys() {
                if !names.contains(listed) {
                    problems
                        .entry(rel(listed))
                        .or_default()
                        .push("missing (listed in SHA256SUMS)".into());
                }
            }
        }
    }
    if let Ledger::Live(records) = ledger {
        for rec in records {
            if !seen.contains(&rec.path) && !problems.contains_key(&rec.path) {
                problems
                    .entry(rec.path.clone())
                    .or_default()
                    .push("missing (recorded in archive_files)".into());
            }
        }
    }
    report.problems = problems
        .into_iter()
        .map(|(path, reasons)| Problem {
            path,
            reason: reasons.join("; "),
        })
        .collect();
    Ok(report)
}
