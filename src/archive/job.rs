//! One archive run: take the lock, reconcile what a crashed run left, move
//! expired rows into files and delete them, delete archive files past
//! `archive.keep_months`, prune the audit log, hand space back.
//!
//! The order per file (docs/archive.md): write a temp file → fsync →
//! rename to a name that carries its id range → fsync the directory →
//! rewrite `SHA256SUMS` → record the file in `archive_files` together with
//! the first batch of deletes (one transaction: the commit point) → delete
//! the rest in short batches. A re-run first deletes rows that a recorded
//! file already holds, so every expired row ends up in exactly one file.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::failpoint;
use super::files::{
    create_private_dir, day_date, fsync_dir, group_dir, write_sums, ArchiveWriter, FileName,
    TMP_SUFFIX,
};
use super::lock;
use crate::config::{ClientSettings, Settings};
use crate::retention::{client_cutoff_ms, cutoff_ms, AUDIT_LOG_MONTHS};
use crate::store::archive::{ArchiveDb, Covered, FileRecord, Group, Kind, StreamError};
use crate::store::StoreError;

/// Pause after each delete batch, so the server's writer gets the write
/// lock between two batches.
const BATCH_PAUSE: Duration = Duration::from_millis(2);

pub(super) const DAY_MS: i64 = 86_400_000;

/// What to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The clock: retention and `keep_months` are counted back from it.
    pub now: DateTime<Utc>,
    /// Report what would change, change nothing.
    pub dry_run: bool,
    /// Only this client (and then the audit log is left alone).
    pub client: Option<String>,
}

/// Why a run failed. Whatever it had finished stays finished and consistent.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `--client` names no configured client.
    #[error("unknown client `{0}`")]
    UnknownClient(String),
    /// A file is in the way of a new archive file.
    #[error("{0} already exists and is not recorded in archive_files; move it aside and re-run")]
    InTheWay(PathBuf),
}

pub(super) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a run did (or, dry, would do).
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Rows removed from the database (archived now or by an earlier,
    /// interrupted run).
    pub rows: u64,
    /// Archive files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Archive files deleted after `archive.keep_months`.
    pub files_deleted: u64,
    /// Audit-log rows older than 12 months deleted.
    pub audit_rows: u64,
    /// Leftovers of a crashed run removed (temp and unrecorded files whose
    /// rows were all still in the database).
    pub leftovers_removed: u64,
    /// Files in the archive tree that are not recorded and whose rows are
    /// gone from the database: kept, reported, exit status non-zero.
    pub unrecorded: Vec<String>,
    /// One line per file written or deleted (or, dry, per planned action).
    pub lines: Vec<String>,
    /// Stopped early at a safe point because the server is shutting down.
    pub interrupted: bool,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// The run finished (or stopped at a safe point).
    Done(Summary),
    /// Another run holds the lock (named here: the lock file, or the
    /// PostgreSQL lease and its holder); nothing was done.
    Busy(String),
}

pub(super) struct Job<'a> {
    pub(super) settings: &'a Settings,
    pub(super) db: ArchiveDb,
    pub(super) now: DateTime<Utc>,
    pub(super) cancel: &'a AtomicBool,
    pub(super) summary: Summary,
}

/// Runs the archive job. `cancel` is checked between files and between
/// delete batches; every such point is safe to stop at.
pub fn run(
    settings: &Settings,
    opts: &RunOptions,
    cancel: &AtomicBool,
) -> Result<Outcome, ArchiveError> {
    let started = Instant::now();
    let clients = selected_clients(settings, opts.client.as_deref())?;
    if opts.dry_run {
        let db = ArchiveDb::open_read_only(&settings.storage)?;
        let mut summary = super::plan::plan(settings, &db, &clients, opts)?;
        summary.seconds = started.elapsed().as_secs_f64();
        return Ok(Outcome::Done(summary));
    }
    let data_dir = &settings.storage.data_dir;
    let Some(_lock) = lock::try_lock(data_dir).map_err(io_at(&lock::lock_path(data_dir)))? else {
        return Ok(Outcome::Busy(
            lock::lock_path(data_dir).display().to_string(),
        ));
    };
    let mut db = ArchiveDb::open(&settings.storage)?;
    if let Err(holder) = db.try_lease()? {
        return Ok(Outcome::Busy(holder));
    }
    let mut job = Job {
        settings,
        db,
        now: opts.now,
        cancel,
        summary: Summary::default(),
    };
    let root = &settings.archive.dir;
    create_private_dir(root).map_err(io_at(root))?;
    job.reconcile(root)?;
    'clients: for client in &clients {
        let cutoff = client_cutoff_ms(client, job.now);
        for kind in Kind::ALL {
            for group in job.db.expired_groups(kind, client.id.as_str(), cutoff)? {
                if job.cancelled() {
                    break 'clients;
                }
                job.archive_group(client.id.as_str(), &group)?;
            }
        }
    }
    for client in &clients {
        if job.cancelled() {
            break;
        }
        job.delete_old_files(client)?;
    }
    if opts.client.is_none() && !job.cancelled() {
        let cutoff = cutoff_ms(job.now, AUDIT_LOG_MONTHS);
        loop {
            let n = job.db.prune_audit(cutoff, settings.archive.batch_rows)?;
            job.summary.audit_rows += n;
            if n == 0 || job.cancelled() {
                break;
            }
        }
    }
    let s = &job.summary;
    if s.rows + s.files_deleted + s.audit_rows > 0 {
        job.db.reclaim_space(job.now.timestamp_millis())?;
        let filters = serde_json::json!({
            "now": job.now.to_rfc3339(),
            "files": s.files,
            "bytes": s.bytes,
            "files_deleted": s.files_deleted,
            "audit_rows": s.audit_rows,
        });
        job.db.audit_run(
            job.now.timestamp_millis(),
            opts.client.as_deref(),
            s.rows,
            &filters.to_string(),
        )?;
    }
    job.summary.seconds = started.elapsed().as_secs_f64();
    Ok(Outcome::Done(job.summary))
}

fn selected_clients<'a>(
    settings: &'a Settings,
    only: Option<&str>,
) -> Result<Vec<&'a ClientSettings>, ArchiveError> {
    match only {
        None => Ok(settings.clients.iter().collect()),
        Some(id) => settings
            .client(id)
            .map(|c| vec![c])
            .ok_or_else(|| ArchiveError::UnknownClient(id.to_string())),
    }
}

pub(super) fn rel_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

impl Job<'_> {
    fn cancelled(&mut self) -> bool {
        let stop = self.cancel.load(Ordering::Relaxed);
        if stop {
            self.summary.interrupted = true;
        }
        stop
    }

    fn batch(&self) -> usize {
        self.settings.archive.batch_rows
    }

    /// Deletes rows that a recorded file holds, batch by batch; false when
    /// cancelled before all were gone.
    fn delete_covered(&mut self, covered: &Covered<'_>) -> Result<bool, ArchiveError> {
        loop {
            if self.cancelled() {
                return Ok(false);
            }
            let n = self.db.delete_covered(covered, self.batch())?;
            if n == 0 {
                return Ok(true);
            }
            self.summary.rows += n;
            failpoint::hit("after_delete_batch");
            // Let a waiting writer (the server's, polling each millisecond)
            // take the lock before the next batch does.
            std::thread::sleep(BATCH_PAUSE);
        }
    }

    fn archive_group(&mut self, client: &str, g: &Group) -> Result<(), ArchiveError> {
        let date = day_date(g.day);
        let day = date.format("%Y-%m-%d").to_string();
        let (from_ms, to_ms) = (g.day * DAY_MS, (g.day + 1) * DAY_MS);
        let covered = |first_id, last_id, last_at: i64| Covered {
            kind: g.kind,
            client_id: client,
            channel: &g.channel,
            from_ms,
            to_ms: to_ms.min(last_at.saturating_add(1)),
            first_id,
            last_id,
        };
        // Rows an earlier, interrupted run already put into a file.
        for f in self.db.files_for_group(g.kind, client, &g.channel, &day)? {
            if !self.delete_covered(&covered(f.first_id, f.last_id, f.last_at))? {
                return Ok(());
            }
        }
        let rel_dir = group_dir(client, &g.channel, date);
        let dir = self.settings.archive.dir.join(&rel_dir);
        create_private_dir(&dir).map_err(io_at(&dir))?;
        let tmp = dir.join(format!(".{}-{day}{TMP_SUFFIX}", g.kind));
        let mut writer = ArchiveWriter::create(&tmp).map_err(io_at(&tmp))?;
        let streamed = self
            .db
            .stream_group(g.kind, client, &g.channel, g.day, |row| {
                writer.write_row(row)
            });
        match streamed {
            Ok(_) => {}
            Err(StreamError::Store(e)) => return Err(e.into()),
            Err(StreamError::Sink(e)) => return Err(io_at(&tmp)(e)),
        }
        if writer.rows() == 0 {
            std::fs::remove_file(&tmp).map_err(io_at(&tmp))?;
            return Ok(());
        }
        let written = writer.finish().map_err(io_at(&tmp))?;
        failpoint::hit("before_rename");
        let name = FileName {
            kind: g.kind,
            day: date,
            first_id: written.first_id,
            last_id: written.last_id,
        }
        .to_string();
        let path = dir.join(&name);
        if path.exists() {
            std::fs::remove_file(&tmp).map_err(io_at(&tmp))?;
            return Err(ArchiveError::InTheWay(path));
        }
        std::fs::rename(&tmp, &path).map_err(io_at(&path))?;
        fsync_dir(&dir).map_err(io_at(&dir))?;
        failpoint::hit("after_rename");
        let rel_dir_str = rel_str(&rel_dir);
        let mut sums = self.db.sums_for_dir(&rel_dir_str)?;
        sums.push((name.clone(), written.sha256.clone()));
        write_sums(&dir, &mut sums).map_err(io_at(&dir))?;
        failpoint::hit("after_sums");
        let record = FileRecord {
            id: 0,
            path: format!("{rel_dir_str}/{name}"),
            kind: g.kind,
            client_id: client.to_string(),
            channel: g.channel.clone(),
            day,
            rows: written.rows,
            bytes: written.bytes,
            sha256: written.sha256,
            first_id: written.first_id,
            last_id: written.last_id,
            created_at: self.now.timestamp_millis(),
            last_at: written.last_at,
        };
        let covered = covered(written.first_id, written.last_id, written.last_at);
        let first = self.db.record_file(&record, &covered, self.batch())?;
        failpoint::hit("after_record");
        self.summary.rows += first;
        self.summary.files += 1;
        self.summary.bytes += written.bytes;
        self.summary.lines.push(format!(
            "archived {} rows into {} ({} bytes)",
            written.rows, record.path, written.bytes
        ));
        self.delete_covered(&covered)?;
        Ok(())
    }

    /// Deletes the client's archive files older than `archive.keep_months`
    /// unless it is under legal hold. File first, then the ledger row with
    /// its audit row: a crash in between leaves a recorded file that is
    /// missing, which the next run finishes deleting.
    fn delete_old_files(&mut self, client: &ClientSettings) -> Result<(), ArchiveError> {
        if client.legal_hold {
            return Ok(());
        }
        let before = cutoff_ms(self.now, self.settings.archive.keep_months);
        for f in self.db.files_created_before(client.id.as_str(), before)? {
            if self.cancelled() {
                return Ok(());
            }
            let path = self.settings.archive.dir.join(&f.path);
            let dir = path
                .parent()
                .unwrap_or(&self.settings.archive.dir)
                .to_path_buf();
            let rel_dir = Path::new(&f.path).parent().map(rel_str).unwrap_or_default();
            let mut sums = self.db.sums_for_dir(&rel_dir)?;
            sums.retain(|(name, _)| format!("{rel_dir}/{name}") != f.path);
            if dir.exists() {
                write_sums(&dir, &mut sums).map_err(io_at(&dir))?;
            }
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(&path)(e)),
                _ => {}
            }
            failpoint::hit("after_file_removed");
            self.db.forget_file(&f, self.now.timestamp_millis())?;
            self.summary.files_deleted += 1;
            self.summary
                .lines
                .push(format!("deleted archive file {} ({} rows)", f.path, f.rows));
            if sums.is_empty() {
                remove_empty_dirs(&self.settings.archive.dir, &dir);
            }
        }
        Ok(())
    }
}

/// Removes `dir` and then its parents while they are empty, stopping at
/// `root`. Failures only leave an empty directory behind.
fn remove_empty_dirs(root: &Path, dir: &Path) {
    let mut dir = dir.to_path_buf();
    while dir.starts_with(root) && dir != root {
        if std::fs::remove_dir(&dir).is_err() {
            return;
        }
        if !dir.pop() {
            return;
        }
    }
}
