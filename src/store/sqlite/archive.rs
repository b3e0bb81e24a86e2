//! SQL of the archive job. It runs on its own write connection (the cron
//! command is another process), so every write here is a short transaction
//! and the server's writer thread keeps committing callbacks in between.

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, TransactionBehavior};
use serde::ser::{Error as _, SerializeMap};

use super::{open_error, open_writer, Opener};
use crate::config::StorageSettings;
use crate::store::archive::{hex, Covered, FileRecord, Group, Kind, StreamError};
use crate::store::StoreError;

const DAY_MS: i64 = 86_400_000;

/// Pages handed back per `incremental_vacuum` step: each step is one write
/// transaction, so small steps keep callbacks flowing while space is
/// reclaimed after a large run.
const VACUUM_STEP_PAGES: u32 = 256;

/// Pause between vacuum steps, so the server's writer (polling each
/// millisecond for the lock) gets it in between.
const VACUUM_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// A connection for the archive job (read-write) or for dry runs and
/// `verify-archive` (read-only), on SQLite.
pub struct SqliteArchiveDb {
    conn: Connection,
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

const FILE_COLUMNS: &str = "id, path, kind, client_id, channel, day, rows, bytes, sha256, \
     first_id, last_id, created_at, last_at";

fn file_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRecord> {
    let kind: String = r.get(2)?;
    Ok(FileRecord {
        id: r.get(0)?,
        path: r.get(1)?,
        kind: Kind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("unknown archive kind `{kind}`").into(),
            )
        })?,
        client_id: r.get(3)?,
        channel: r.get(4)?,
        day: r.get(5)?,
        rows: r.get(6)?,
        bytes: r.get(7)?,
        sha256: r.get(8)?,
        first_id: r.get(9)?,
        last_id: r.get(10)?,
        created_at: r.get(11)?,
        last_at: r.get(12)?,
    })
}

impl SqliteArchiveDb {
    /// Opens the database for writing, creating and migrating it if needed.
    pub fn open(settings: &StorageSettings) -> Result<SqliteArchiveDb, StoreError> {
        let (_, conn, _) = open_writer(settings)?;
        // Each file is fsynced before the commit that records it, and WAL
        // keeps commits in order, so a commit of this connection lost to a
        // power cut is only redone by the next run: no fsync per batch.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| open_error(&settings.db_path(), e.to_string()))?;
        Ok(SqliteArchiveDb { conn })
    }

    /// Opens an existing database read-only; never creates or migrates.
    pub fn open_read_only(settings: &StorageSettings) -> Result<SqliteArchiveDb, StoreError> {
        let path = settings.db_path();
        if !path.exists() {
            return Err(open_error(&path, "no such file"));
        }
        let opener = Opener {
            path: path.clone(),
            synchronous: settings.synchronous,
        };
        let conn = opener
            .open(true)
            .map_err(|e| open_error(&path, e.to_string()))?;
        Ok(SqliteArchiveDb { conn })
    }

    /// Expired rows of `client` (time column before `cutoff_ms`), grouped by
    /// channel and UTC day, oldest first.
    pub fn expired_groups(
        &self,
        kind: Kind,
        client: &str,
        cutoff_ms: i64,
    ) -> Result<Vec<Group>, StoreError> {
        let t = kind.time_column();
        let sql = format!(
            "SELECT channel, {t} / {DAY_MS} AS day, count(*) FROM {kind} \
             WHERE client_id = ?1 AND {t} < ?2 GROUP BY day, channel ORDER BY day, channel"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(db_err)?;
        let rows = stmt
            .query_map(params![client, cutoff_ms], |r| {
                Ok(Group {
                    kind,
                    channel: r.get(0)?,
                    day: r.get(1)?,
                    rows: r.get(2)?,
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }

    /// Archive files already written for one group.
    pub fn files_for_group(
        &self,
        kind: Kind,
        client: &str,
        channel: &str,
        day: &str,
    ) -> Result<Vec<FileRecord>, StoreError> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM archive_files \
             WHERE client_id = ?1 AND channel = ?2 AND day = ?3 AND kind = ?4 ORDER BY first_id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(db_err)?;
        let rows = stmt
            .query_map(params![client, channel, day, kind.as_str()], file_record)
            .map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }

    /// Every recorded archive file, by path.
    pub fn all_files(&self) -> Result<Vec<FileRecord>, StoreError> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM archive_files ORDER BY path");
        let mut stmt = self.conn.prepare(&sql).map_err(db_err)?;
        let rows = stmt.query_map([], file_record).map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }

    /// (file name, SHA-256) of every recorded file directly in `rel_dir`
    /// (a path relative to `archive.dir`, `/`-separated): what its
    /// `SHA256SUMS` must list.
    pub fn sums_for_dir(&self, rel_dir: &str) -> Result<Vec<(String, String)>, StoreError> {
        let prefix = format!("{rel_dir}/");
        let mut stmt = self
            .conn
            .prepare("SELECT path, sha256 FROM archive_files WHERE substr(path, 1, ?2) = ?1")
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![prefix, prefix.len() as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(db_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (path, sha) = row.map_err(db_err)?;
            let name = &path[prefix.len()..];
            if !name.contains('/') {
                out.push((name.to_string(), sha));
            }
        }
        Ok(out)
    }

    /// Recorded files of `client` written before `created_before_ms`.
    pub fn files_created_before(
        &self,
        client: &str,
        created_before_ms: i64,
    ) -> Result<Vec<FileRecord>, StoreError> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM archive_files \
             WHERE client_id = ?1 AND created_at < ?2 ORDER BY path"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(db_err)?;
        let rows = stmt
            .query_map(params![client, created_before_ms], file_record)
            .map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }

    /// Streams the rows of one group, in time then id order (the order of
    /// the `(client_id, time)` index, so nothing is sorted in memory), to
    /// `sink`. Returns how many rows were streamed.
    pub fn stream_group(
        &self,
        kind: Kind,
        client: &str,
        channel: &str,
        day: i64,
        mut sink: impl FnMut(&SqliteArchiveRow<'_>) -> std::io::Result<()>,
    ) -> Result<u64, StreamError> {
        let t = kind.time_column();
        let sql = format!(
            "SELECT * FROM {kind} WHERE client_id = ?1 AND {t} >= ?2 AND {t} < ?3 \
             AND channel = ?4 ORDER BY {t}, id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(db_err)?;
        let names: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
        let at_index = names
            .iter()
            .position(|n| n == t)
            .ok_or_else(|| StoreError::Unavailable(format!("{kind} has no column {t}")))?;
        let mut rows = stmt
            .query(params![client, day * DAY_MS, (day + 1) * DAY_MS, channel])
            .map_err(db_err)?;
        let mut count = 0;
        while let Some(row) = rows.next().map_err(db_err)? {
            let id: i64 = row.get(0).map_err(db_err)?;
            let at: i64 = row.get(at_index).map_err(db_err)?;
            sink(&SqliteArchiveRow {
                id,
                at,
                row,
                names: &names,
            })?;
            count += 1;
        }
        Ok(count)
    }

    /// Rows of `kind` for `client`/`channel` whose id lies in
    /// `first_id..=last_id`, whatever their time: an orphan file whose rows
    /// are all still here can be dropped and written again.
    pub fn count_id_range(
        &self,
        kind: Kind,
        client: &str,
        channel: &str,
        first_id: i64,
        last_id: i64,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT count(*) FROM {kind} WHERE id BETWEEN ?1 AND ?2 \
             AND client_id = ?3 AND channel = ?4"
        );
        self.conn
            .query_row(&sql, params![first_id, last_id, client, channel], |r| {
                r.get(0)
            })
            .map_err(db_err)
    }

    /// Records a written file and deletes the first batch of its rows in
    /// one transaction: from this commit on, the file owns those rows.
    /// Returns the rows deleted.
    pub fn record_file(
        &mut self,
        file: &FileRecord,
        covered: &Covered<'_>,
        batch: usize,
    ) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        tx.execute(
            "INSERT INTO archive_files (path, kind, client_id, channel, day, rows, bytes, \
             sha256, first_id, last_id, created_at, last_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                file.path,
                file.kind.as_str(),
                file.client_id,
                file.channel,
                file.day,
                file.rows,
                file.bytes,
                file.sha256,
                file.first_id,
                file.last_id,
                file.created_at,
                file.last_at,
            ],
        )
        .map_err(db_err)?;
        let deleted = delete_batch(&tx, covered, batch)?;
        tx.commit().map_err(db_err)?;
        Ok(deleted)
    }

    /// Deletes up to `batch` rows that an archive file holds, in one short
    /// transaction; 0 when none are left.
    pub fn delete_covered(
        &mut self,
        covered: &Covered<'_>,
        batch: usize,
    ) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let deleted = delete_batch(&tx, covered, batch)?;
        tx.commit().map_err(db_err)?;
        Ok(deleted)
    }

    /// Forgets a deleted archive file and writes the audit row saying so,
    /// in one transaction.
    pub fn forget_file(&mut self, file: &FileRecord, at_ms: i64) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        tx.execute("DELETE FROM archive_files WHERE id = ?1", params![file.id])
            .map_err(db_err)?;
        let filters = serde_json::json!({
            "path": file.path,
            "sha256": file.sha256,
            "first_id": file.first_id,
            "last_id": file.last_id,
        });
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, client_id, filters, rows, reason) \
             VALUES (?1, 'archive', 'archive_file_deleted', ?2, ?3, ?4, ?5)",
            params![
                at_ms,
                file.client_id,
                filters.to_string(),
                file.rows,
                "archive.keep_months elapsed"
            ],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// Audit-log rows older than `cutoff_ms`.
    pub fn count_audit_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM audit_log WHERE at < ?1",
                params![cutoff_ms],
                |r| r.get(0),
            )
            .map_err(db_err)
    }

    /// Deletes up to `batch` audit-log rows older than `cutoff_ms`.
    pub fn prune_audit(&mut self, cutoff_ms: i64, batch: usize) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM audit_log WHERE id IN \
                 (SELECT id FROM audit_log WHERE at < ?1 LIMIT ?2)",
                params![cutoff_ms, batch as i64],
            )
            .map_err(db_err)?;
        Ok(n as u64)
    }

    /// Writes one audit row summarising a run that changed something.
    pub fn audit_run(
        &mut self,
        at_ms: i64,
        client: Option<&str>,
        rows: u64,
        filters: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO audit_log (at, actor, action, client_id, filters, rows) \
                 VALUES (?1, 'archive', 'archive_run', ?2, ?3, ?4)",
                params![at_ms, client, filters, rows],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// Hands free pages back to the file system in small steps, each its own
    /// short write transaction. Returns the pages freed.
    pub fn incremental_vacuum(&mut self) -> Result<u64, StoreError> {
        let mut freed = 0;
        loop {
            let free: u64 = self
                .conn
                .pragma_query_value(None, "freelist_count", |r| r.get(0))
                .map_err(db_err)?;
            if free == 0 {
                return Ok(freed);
            }
            let step = free.min(u64::from(VACUUM_STEP_PAGES));
            // The pragma frees one page per step: run it to completion.
            let mut stmt = self
                .conn
                .prepare(&format!("PRAGMA incremental_vacuum({step})"))
                .map_err(db_err)?;
            let mut rows = stmt.query([]).map_err(db_err)?;
            while rows.next().map_err(db_err)?.is_some() {}
            drop(rows);
            drop(stmt);
            std::thread::sleep(VACUUM_PAUSE);
            let after: u64 = self
                .conn
                .pragma_query_value(None, "freelist_count", |r| r.get(0))
                .map_err(db_err)?;
            if after >= free {
                return Ok(freed);
            }
            freed += free - after;
        }
    }
}

fn delete_batch(conn: &Connection, c: &Covered<'_>, batch: usize) -> Result<u64, StoreError> {
    let t = c.kind.time_column();
    let sql = format!(
        "DELETE FROM {kind} WHERE id IN (SELECT id FROM {kind} WHERE client_id = ?1 \
         AND {t} >= ?2 AND {t} < ?3 AND channel = ?4 AND id BETWEEN ?5 AND ?6 LIMIT ?7)",
        kind = c.kind
    );
    let n = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.execute(params![
                c.client_id,
                c.from_ms,
                c.to_ms,
                c.channel,
                c.first_id,
                c.last_id,
                batch as i64
            ])
        })
        .map_err(db_err)?;
    Ok(n as u64)
}

/// One row on its way into an archive file: serializes as a JSON object with
/// every column by name. BLOB columns (`dedup_key`, `rejected.body`) are
/// lower-case hex.
pub struct SqliteArchiveRow<'a> {
    id: i64,
    at: i64,
    row: &'a rusqlite::Row<'a>,
    names: &'a [String],
}

impl SqliteArchiveRow<'_> {
    /// The row's id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The row's retention column (UTC Unix ms).
    pub fn at(&self) -> i64 {
        self.at
    }
}

impl SqliteArchiveRow<'_> {
    /// Writes every column into `map`.
    pub fn serialize_into<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        for (i, name) in self.names.iter().enumerate() {
            match self.row.get_ref(i).map_err(M::Error::custom)? {
                ValueRef::Null => map.serialize_entry(name, &())?,
                ValueRef::Integer(v) => map.serialize_entry(name, &v)?,
                ValueRef::Real(v) => map.serialize_entry(name, &v)?,
                ValueRef::Text(t) => map.serialize_entry(name, &String::from_utf8_lossy(t))?,
                ValueRef::Blob(b) => map.serialize_entry(name, &hex(b))?,
            }
        }
        Ok(())
    }
}
