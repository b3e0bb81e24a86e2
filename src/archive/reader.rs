//! Reads rows back out of archive files: for exports that include the
//! archive. Streams file by file and line by line; memory does not grow
//! with the number of rows.

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use serde_json::{Map, Value};

use super::files::FileName;
use crate::store::archive::Kind;
use crate::store::EventRow;

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
/// advances; a file deleted between listing and opening is skipped.
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
                    // Deleted since it was listed (past keep_months, or a
                    // crashed run's leftover whose rows are still live).
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
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

/// An archived `events` line as the row it was.
pub fn event_row(row: &Map<String, Value>) -> Result<EventRow, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        match row.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{key}` is not text")),
        }
    };
    let int = |key: &str| -> Result<Option<i64>, String> {
        match row.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("`{key}` is not an integer")),
        }
    };
    let need = |key: &str, v: Option<String>| v.ok_or_else(|| format!("`{key}` is missing"));
    Ok(EventRow {
        id: int("id")?.ok_or("`id` is missing")?,
        client_id: need("client_id", text("client_id")?)?,
        channel: need("channel", text("channel")?)?,
        direction: need("direction", text("direction")?)?,
        provider_message_id: need("provider_message_id", text("provider_message_id")?)?,
        phone: text("phone")?,
        email: text("email")?,
        status: need("status", text("status")?)?,
        provider_status: text("provider_status")?,
        error_code: text("error_code")?,
        event_at: int("event_at")?,
        received_at: int("received_at")?.ok_or("`received_at` is missing")?,
        source_ip: need("source_ip", text("source_ip")?)?,
        text: text("text")?,
        media: text("media")?,
        reply_to: text("reply_to")?,
        payload: need("payload", text("payload")?)?,
    })
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use serde_json::json;

    use super::*;

    fn line(id: i64, received_at: i64) -> Value {
        json!({
            "id": id, "client_id": "c", "channel": "sms", "direction": "status",
            "provider_message_id": format!("m{id}"), "phone": "+919876543210", "email": null,
            "status": "sent", "provider_status": "SENT", "error_code": null, "event_at": null,
            "received_at": received_at, "source_ip": "127.0.0.1", "text": null, "media": null,
            "reply_to": null, "payload": "{}", "dedup_key": "00ff",
        })
    }

    fn write_file(dir: &Path, name: &str, rows: &[Value]) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        let mut gz = GzEncoder::new(std::fs::File::create(&path).unwrap(), Default::default());
        for r in rows {
            writeln!(gz, "{r}").unwrap();
        }
        gz.finish().unwrap();
        path
    }

    #[test]
    fn an_archived_line_reads_back_as_the_event_row_it_was() {
        let row = event_row(line(7, 1_779_942_732_500).as_object().unwrap()).unwrap();
        assert_eq!((row.id, row.received_at), (7, 1_779_942_732_500));
        assert_eq!(row.phone.as_deref(), Some("+919876543210"));
        assert_eq!(row.email, None);
        assert_eq!(row.provider_status.as_deref(), Some("SENT"));

        let mut bad = line(7, 1);
        bad.as_object_mut().unwrap().remove("payload");
        let e = event_row(bad.as_object().unwrap()).unwrap_err();
        assert!(e.contains("`payload` is missing"), "{e}");
        let mut bad = line(7, 1);
        bad["received_at"] = json!("yesterday");
        let e = event_row(bad.as_object().unwrap()).unwrap_err();
        assert!(e.contains("`received_at` is not an integer"), "{e}");
    }

    #[test]
    fn a_file_deleted_after_listing_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c/sms/2026/05");
        let day = 1_779_926_400_000;
        write_file(&dir, "events-2026-05-28-1-1.ndjson.gz", &[line(1, day)]);
        let gone = write_file(&dir, "events-2026-05-28-2-2.ndjson.gz", &[line(2, day)]);
        write_file(&dir, "events-2026-05-28-3-3.ndjson.gz", &[line(3, day)]);
        let rows = read_rows(tmp.path(), "c", Kind::Events, None, None).unwrap();
        std::fs::remove_file(gone).unwrap();
        let ids: Vec<i64> = rows.map(|r| r.unwrap()["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [1, 3]);
    }
}
