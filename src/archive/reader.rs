//! Reads rows back out of archive files: for exports that include the
//! archive. Streams file by file and line by line; memory does not grow
//! with the number of rows.

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use serde_json::{Map, Value};

use super::files::FileName;
use crate::store::archive::Kind;

const DAY_MS: i64 = 86_400_000;

/// Rows of one kind for one client, oldest day first, as the JSON objects
/// the archive holds (every column by name; BLOBs as hex).
pub struct ArchiveRows {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<(PathBuf, io::Split<BufReader<GzDecoder<std::fs::File>>>)>,
    time_column: &'static str,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

/// Streams the archived `kind` rows of `client` whose time column lies in
/// `[from_ms, to_ms)` (either end open), from every archive file under
/// `archive_dir/{client}/`. Files are opened one at a time as the iterator
/// advances.
pub fn read_rows(
    archive_dir: &Path,
    client: &str,
    kind: Kind,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> io::Result<ArchiveRows> {
    let mut files: Vec<(FileName, PathBuf)> = Vec::new();
    let root = archive_dir.join(client);
    if root.is_dir() {
        collect(&root, &mut |path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(FileName::parse);
            if let Some(name) = name.filter(|n| n.kind == kind) {
                let start = name
                    .day
                    .and_hms_opt(0, 0, 0)
                    .map(|d| d.and_utc().timestamp_millis())
                    .unwrap_or(0);
                let overlaps =
                    from_ms.is_none_or(|f| start + DAY_MS > f) && to_ms.is_none_or(|t| start < t);
                if overlaps {
                    files.push((name, path.to_path_buf()));
                }
            }
        })?;
    }
    files.sort_by_key(|(n, p)| (n.day, n.first_id, p.clone()));
    Ok(ArchiveRows {
        files: files
            .into_iter()
            .map(|(_, p)| p)
            .collect::<Vec<_>>()
            .into_iter(),
        current: None,
        time_column: kind.time_column(),
        from_ms,
        to_ms,
    })
}

fn collect(dir: &Path, found: &mut dyn FnMut(&Path)) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(&entry.path(), found)?;
        } else if kind.is_file() {
            found(&entry.path());
        }
    }
    Ok(())
}

/// Whether the row's time column lies in `[from, to)`.
fn in_range(row: &Map<String, Value>, column: &str, from: Option<i64>, to: Option<i64>) -> bool {
    let Some(t) = row.get(column).and_then(Value::as_i64) else {
        return false;
    };
    from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e)
}

impl Iterator for ArchiveRows {
    type Item = io::Result<Map<String, Value>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let path = self.files.next()?;
                match std::fs::File::open(&path) {
                    Ok(f) => {
                        let lines = BufReader::new(GzDecoder::new(f)).split(b'\n');
                        self.current = Some((path, lines));
                    }
                    Err(e) => return Some(Err(at(&path, e))),
                }
            }
            let (column, from, to) = (self.time_column, self.from_ms, self.to_ms);
            let (path, lines) = self.current.as_mut().expect("a file is open");
            match lines.next() {
                None => self.current = None,
                Some(Err(e)) => {
                    let e = at(path, e);
                    self.current = None;
                    return Some(Err(e));
                }
                Some(Ok(line)) => match serde_json::from_slice::<Map<String, Value>>(&line) {
                    Ok(row) if in_range(&row, column, from, to) => return Some(Ok(row)),
                    Ok(_) => {}
                    Err(e) => {
                        let e = at(path, io::Error::new(io::ErrorKind::InvalidData, e));
                        self.current = None;
                        return Some(Err(e));
                    }
                },
            }
        }
    }
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
