//! SQL of the archive job on PostgreSQL. One archive run at a time across
//! every receiver and cron job on the database: the run holds a lease row
//! (`leases`, renewed as it goes, free once it expires or its holder's
//! server process is gone), which works behind a transaction pooler where
//! session advisory locks do not. Every write transaction of a run first
//! checks, under a row lock, that the run still holds the lease (fencing): a
//! run that lost it (it stalled past the expiry, or a pooler made its process
//! look gone) stops before it changes anything. Rows are streamed from a
//! portal; deletes go in short batches by `ctid`, and a past month's
//! partition is dropped once nothing is left in it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde::ser::SerializeMap;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient, Row};

use super::{open_error, pg_config, unavailable, PgRuntime};
use crate::config::StorageSettings;
use crate::store::archive::{Covered, FileRecord, Group, Kind, StreamError};
use crate::store::StoreError;

const DAY_MS: i64 = 86_400_000;

/// Name of the archive job's lease row.
const LEASE: &str = "archive";

/// A lease not renewed for this long is free for another node: its holder
/// died. Renewed every [`LEASE_RENEW`] while the run works.
const LEASE_TTL_MS: i64 = 10 * 60 * 1000;
const LEASE_RENEW: Duration = Duration::from_secs(60);

/// How long dropping an emptied partition waits for its lock on `events`.
const PARTITION_LOCK_WAIT_MS: u32 = 200;

/// Tries at taking a held lease, [`LEASE_RETRY`] apart: long enough for the
/// server process of a killed holder to notice and go (milliseconds), short
/// enough that a run starting beside a live one is turned away rather than
/// run after it.
const LEASE_ATTEMPTS: u32 = 5;
const LEASE_RETRY: Duration = Duration::from_millis(50);

/// The database's clock in Unix ms, so nodes with skewed clocks agree.
const DB_NOW: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

const FILE_COLUMNS: &str = "id, path, kind, client_id, channel, day, rows, bytes, sha256, \
     first_id, last_id, created_at, last_at";

/// A connection of the archive job (or of a dry run / `verify-archive`).
pub struct PgArchiveDb {
    rt: Arc<PgRuntime>,
    client: Client,
    /// Holder id and last renewal, while this run holds the lease.
    lease: Option<(String, Instant)>,
    /// Where the deletes of the covered range being deleted have got to.
    resume: Option<Resume>,
}

/// How far the batches deleting one covered range have got: every batch
/// takes the oldest covered rows, so none older than `from_ms` is left. The
/// next batch starts its index scan there instead of walking again past the
/// entries of every row deleted so far (dead until vacuum), which made a
/// group's delete quadratic in its size.
struct Resume {
    /// The covered range: kind, client, channel, from, to, first and last id.
    range: (Kind, String, String, i64, i64, i64, i64),
    /// Time of the newest row deleted so far.
    from_ms: i64,
}

impl Resume {
    fn range(c: &Covered<'_>) -> (Kind, String, String, i64, i64, i64, i64) {
        (
            c.kind,
            c.client_id.to_string(),
            c.channel.to_string(),
            c.from_ms,
            c.to_ms,
            c.first_id,
            c.last_id,
        )
    }
}

fn db_err(e: tokio_postgres::Error) -> StoreError {
    unavailable(e)
}

fn file_record(r: &Row) -> Result<FileRecord, StoreError> {
    let kind: String = r.get(2);
    Ok(FileRecord {
        id: r.get(0),
        path: r.get(1),
        kind: Kind::parse(&kind)
            .ok_or_else(|| unavailable(format!("unknown archive kind `{kind}`")))?,
        client_id: r.get(3),
        channel: r.get(4),
        day: r.get(5),
        rows: u64::try_from(r.get::<_, i64>(6)).unwrap_or(0),
        bytes: u64::try_from(r.get::<_, i64>(7)).unwrap_or(0),
        sha256: r.get(8),
        first_id: r.get(9),
        last_id: r.get(10),
        created_at: r.get(11),
        last_at: r.get(12),
    })
}

fn count(r: &Row) -> u64 {
    u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)
}

impl PgArchiveDb {
    /// Connects (migrating first, as a receiver would): the cron job may run
    /// before any receiver did.
    pub(crate) fn open(settings: &StorageSettings) -> Result<PgArchiveDb, StoreError> {
        super::migrate_only(settings)?;
        Self::open_read_only(settings)
    }

    /// Connects without migrating.
    pub(crate) fn open_read_only(settings: &StorageSettings) -> Result<PgArchiveDb, StoreError> {
        let config = pg_config(settings)?;
        let rt = PgRuntime::new().map_err(|e| open_error(e.to_string()))?;
        let client = rt.block_on_anywhere(async {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| open_error(format!("cannot connect: {e}")))?;
            tokio::spawn(connection);
            Ok::<_, StoreError>(client)
        })?;
        Ok(PgArchiveDb {
            rt,
            client,
            lease: None,
            resume: None,
        })
    }

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        self.rt
            .block_on(self.client.query(sql, params))
            .map_err(db_err)
    }

    /// Takes the archive lease for this run; false when another live run,
    /// on any node, holds it. A lease whose holder's server process is gone
    /// (the run was killed and its connection closed) is free at once; one
    /// whose process lives on is free when it expires. The process can take
    /// a moment to go after its client died, so a held lease is asked again
    /// a few times before giving up.
    pub(crate) fn try_lease(&mut self) -> Result<bool, StoreError> {
        let holder = format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let take = format!(
            "INSERT INTO leases AS l (name, holder, expires_at, pid, backend_start) \
             SELECT $1, $2, {DB_NOW} + $3, a.pid, a.backend_start FROM pg_stat_activity a \
             WHERE a.pid = pg_backend_pid() \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
               expires_at = excluded.expires_at, pid = excluded.pid, \
               backend_start = excluded.backend_start \
             WHERE l.expires_at < {DB_NOW} OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a \
               WHERE a.pid = l.pid AND a.backend_start = l.backend_start) \
             RETURNING holder"
        );
        for attempt in 0..LEASE_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(LEASE_RETRY);
            }
            if !self
                .query(&take, &[&LEASE, &holder, &LEASE_TTL_MS])?
                .is_empty()
            {
                self.lease = Some((holder, Instant::now()));
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Who holds the archive lease, for the "busy" message.
    pub(crate) fn lease_holder(&self) -> String {
        self.query("SELECT holder FROM leases WHERE name = $1", &[&LEASE])
            .ok()
            .and_then(|rows| rows.first().map(|r| r.get::<_, String>(0)))
            .unwrap_or_else(|| "another run".into())
    }

    /// The run's lease holder id, if it holds the lease.
    fn holder(&self) -> Option<String> {
        self.lease.as_ref().map(|(h, _)| h.clone())
    }

    /// Renews the lease when a minute has passed; an error when it was lost
    /// (this run stalled past the TTL and another took over), so the run
    /// stops before it writes anything more.
    fn renew(&mut self) -> Result<(), StoreError> {
        let Some((holder, at)) = &self.lease else {
            return Ok(());
        };
        if at.elapsed() < LEASE_RENEW {
            return Ok(());
        }
        let renewed = self.query(
            &format!(
                "UPDATE leases l SET expires_at = {DB_NOW} + $3, pid = a.pid, \
                   backend_start = a.backend_start FROM pg_stat_activity a \
                 WHERE a.pid = pg_backend_pid() AND l.name = $1 AND l.holder = $2 RETURNING 1"
            ),
            &[&LEASE, holder, &LEASE_TTL_MS],
        )?;
        if renewed.is_empty() {
            self.lease = None;
            return Err(StoreError::Unavailable(
                "the archive lease expired and another run took it".into(),
            ));
        }
        if let Some((_, at)) = &mut self.lease {
            *at = Instant::now();
        }
        Ok(())
    }

    pub(crate) fn expired_groups(
        &self,
        kind: Kind,
        client: &str,
        cutoff_ms: i64,
    ) -> Result<Vec<Group>, StoreError> {
        let t = kind.time_column();
        let sql = format!(
            "SELECT channel, {t} / {DAY_MS} AS day, count(*) FROM {kind} \
             WHERE client_id = $1 AND {t} < $2 GROUP BY day, channel ORDER BY day, channel"
        );
        Ok(self
            .query(&sql, &[&client, &cutoff_ms])?
            .iter()
            .map(|r| Group {
                kind,
                channel: r.get(0),
                day: r.get(1),
                rows: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            })
            .collect())
    }

    pub(crate) fn files_for_group(
        &self,
        kind: Kind,
        client: &str,
        channel: &str,
        day: &str,
    ) -> Result<Vec<FileRecord>, StoreError> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM archive_files \
             WHERE client_id = $1 AND channel = $2 AND day = $3 AND kind = $4 ORDER BY first_id"
        );
        self.query(&sql, &[&client, &channel, &day, &kind.as_str()])?
            .iter()
            .map(file_record)
            .collect()
    }

    pub(crate) fn all_files(&self) -> Result<Vec<FileRecord>, StoreError> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM archive_files ORDER BY path");
        self.query(&sql, &[])?.iter().map(file_record).collect()
    }

    pub(crate) fn sums_for_dir(&self, rel_dir: &str) -> Result<Vec<(String, String)>, StoreError> {
        let prefix = format!("{rel_dir}/");
        let len = i32::try_from(prefix.len()).unwrap_or(i32::MAX);
        let rows = self.query(
            "SELECT path, sha256 FROM archive_files WHERE substr(path, 1, $2) = $1",
            &[&prefix, &len],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let path: String = r.get(0);
                let name = path[prefix.len()..].to_string();
                (!name.contains('/')).then(|| (name, r.get(1)))
            })
            .collect())
    }

    pub(crate) fn files_created_before(
        &self,
        client: &str,
        created_before_ms: i64,
    ) -> Result<Vec<FileRecord>, StoreError> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM archive_files \
             WHERE client_id = $1 AND created_at < $2 ORDER BY path"
        );
        self.query(&sql, &[&client, &created_before_ms])?
            .iter()
            .map(file_record)
            .collect()
    }

    /// Streams one group's rows from a portal, in time then id order.
    pub(crate) fn stream_group(
        &self,
        kind: Kind,
        client: &str,
        channel: &str,
        day: i64,
        mut sink: impl FnMut(&PgArchiveRow<'_>) -> std::io::Result<()>,
    ) -> Result<u64, StreamError> {
        let t = kind.time_column();
        let sql = format!(
            "SELECT * FROM {kind} WHERE client_id = $1 AND {t} >= $2 AND {t} < $3 \
             AND channel = $4 ORDER BY {t}, id"
        );
        let (from, to) = (day * DAY_MS, (day + 1) * DAY_MS);
        self.rt.block_on(async {
            let stmt = self.client.prepare(&sql).await.map_err(db_err)?;
            let at_index = stmt
                .columns()
                .iter()
                .position(|c| c.name() == t)
                .ok_or_else(|| StoreError::Unavailable(format!("{kind} has no column {t}")))?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                [&client, &from, &to, &channel];
            let rows = self.client.query_raw(&stmt, params).await.map_err(db_err)?;
            let mut rows = std::pin::pin!(rows);
            let mut n = 0;
            while let Some(row) = rows.try_next().await.map_err(db_err)? {
                sink(&PgArchiveRow {
                    id: row.get(0),
                    at: row.get(at_index),
                    row: &row,
                })?;
                n += 1;
            }
            Ok(n)
        })
    }

    pub(crate) fn count_id_range(
        &self,
        kind: Kind,
        client: &str,
        channel: &str,
        first_id: i64,
        last_id: i64,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT count(*) FROM {kind} WHERE id BETWEEN $1 AND $2 \
             AND client_id = $3 AND channel = $4"
        );
        let rows = self.query(&sql, &[&first_id, &last_id, &client, &channel])?;
        Ok(rows.first().map_or(0, count))
    }

    /// Records a written file and deletes the first batch of its rows in one
    /// transaction.
    pub(crate) fn record_file(
        &mut self,
        file: &FileRecord,
        covered: &Covered<'_>,
        batch: usize,
    ) -> Result<u64, StoreError> {
        self.renew()?;
        let rows = i64::try_from(file.rows).unwrap_or(i64::MAX);
        let bytes = i64::try_from(file.bytes).unwrap_or(i64::MAX);
        let holder = self.holder();
        let deleted = self.rt.block_on(async {
            let tx = self.client.transaction().await.map_err(db_err)?;
            fence(&tx, holder.as_deref()).await?;
            tx.execute(
                "INSERT INTO archive_files (path, kind, client_id, channel, day, rows, bytes, \
                 sha256, first_id, last_id, created_at, last_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    &file.path,
                    &file.kind.as_str(),
                    &file.client_id,
                    &file.channel,
                    &file.day,
                    &rows,
                    &bytes,
                    &file.sha256,
                    &file.first_id,
                    &file.last_id,
                    &file.created_at,
                    &file.last_at,
                ],
            )
            .await
            .map_err(db_err)?;
            let deleted = delete_batch(&tx, covered, covered.from_ms, batch).await?;
            tx.commit().await.map_err(db_err)?;
            Ok(deleted)
        })?;
        Ok(self.resumed(covered, deleted))
    }

    pub(crate) fn delete_covered(
        &mut self,
        covered: &Covered<'_>,
        batch: usize,
    ) -> Result<u64, StoreError> {
        self.renew()?;
        let holder = self.holder();
        let from_ms = match &self.resume {
            Some(r) if r.range == Resume::range(covered) => r.from_ms,
            _ => covered.from_ms,
        };
        let deleted = self.rt.block_on(async {
            let tx = self.client.transaction().await.map_err(db_err)?;
            fence(&tx, holder.as_deref()).await?;
            let deleted = delete_batch(&tx, covered, from_ms, batch).await?;
            tx.commit().await.map_err(db_err)?;
            Ok(deleted)
        })?;
        Ok(self.resumed(covered, deleted))
    }

    /// Remembers where a committed batch of `covered` stopped; returns how
    /// many rows it deleted.
    fn resumed(&mut self, covered: &Covered<'_>, (rows, newest): (u64, Option<i64>)) -> u64 {
        if let Some(from_ms) = newest {
            self.resume = Some(Resume {
                range: Resume::range(covered),
                from_ms,
            });
        }
        rows
    }

    pub(crate) fn forget_file(&mut self, file: &FileRecord, at_ms: i64) -> Result<(), StoreError> {
        self.renew()?;
        let filters = serde_json::json!({
            "path": file.path,
            "sha256": file.sha256,
            "first_id": file.first_id,
            "last_id": file.last_id,
        })
        .to_string();
        let rows = i64::try_from(file.rows).unwrap_or(i64::MAX);
        let holder = self.holder();
        self.rt.block_on(async {
            let tx = self.client.transaction().await.map_err(db_err)?;
            fence(&tx, holder.as_deref()).await?;
            tx.execute("DELETE FROM archive_files WHERE id = $1", &[&file.id])
                .await
                .map_err(db_err)?;
            tx.execute(
                "INSERT INTO audit_log (at, actor, action, client_id, filters, rows, reason) \
                 VALUES ($1, 'archive', 'archive_file_deleted', $2, $3, $4, $5)",
                &[
                    &at_ms,
                    &file.client_id,
                    &filters,
                    &rows,
                    &"archive.keep_months elapsed",
                ],
            )
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
    }

    pub(crate) fn count_audit_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let rows = self.query(
            "SELECT count(*) FROM audit_log WHERE at < $1",
            &[&cutoff_ms],
        )?;
        Ok(rows.first().map_or(0, count))
    }

    pub(crate) fn prune_audit(&mut self, cutoff_ms: i64, batch: usize) -> Result<u64, StoreError> {
        self.renew()?;
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let holder = self.holder();
        self.rt.block_on(async {
            let tx = self.client.transaction().await.map_err(db_err)?;
            fence(&tx, holder.as_deref()).await?;
            let n = tx
                .execute(
                    "DELETE FROM audit_log WHERE id IN \
                     (SELECT id FROM audit_log WHERE at < $1 LIMIT $2)",
                    &[&cutoff_ms, &limit],
                )
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(n)
        })
    }

    pub(crate) fn audit_run(
        &mut self,
        at_ms: i64,
        client: Option<&str>,
        rows: u64,
        filters: &str,
    ) -> Result<(), StoreError> {
        let rows = i64::try_from(rows).unwrap_or(i64::MAX);
        self.rt
            .block_on(self.client.execute(
                "INSERT INTO audit_log (at, actor, action, client_id, filters, rows) \
                 VALUES ($1, 'archive', 'archive_run', $2, $3, $4)",
                &[&at_ms, &client, &filters, &rows],
            ))
            .map(|_| ())
            .map_err(db_err)
    }

    /// Detaches and drops every partition of a month before `now`'s that
    /// holds no row any more (all archived and deleted); returns how many.
    pub(crate) fn drop_empty_partitions(&mut self, now_ms: i64) -> Result<u64, StoreError> {
        self.renew()?;
        let parts = self.query(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'events'::regclass AND c.relname <> 'events_default' \
             ORDER BY c.relname",
            &[],
        )?;
        let mut dropped = 0;
        for part in parts {
            let (name, bound): (String, String) = (part.get(0), part.get(1));
            // "FOR VALUES FROM ('1764547200000') TO ('1767225600000')"
            let Some(to_ms) = bound
                .rsplit('(')
                .next()
                .map(|s| s.trim_matches(|c: char| !c.is_ascii_digit()))
                .and_then(|s| s.parse::<i64>().ok())
            else {
                continue;
            };
            if to_ms > now_ms.min(chrono::Utc::now().timestamp_millis()) {
                continue;
            }
            let empty = self
                .query(&format!("SELECT NOT EXISTS (SELECT 1 FROM {name})"), &[])?
                .first()
                .is_some_and(|r| r.get::<_, bool>(0));
            if !empty {
                continue;
            }
            let holder = self.holder();
            let detached = self.rt.block_on(async {
                let tx = self.client.transaction().await.map_err(db_err)?;
                fence(&tx, holder.as_deref()).await?;
                // DETACH locks `events` exclusively: never queue for that
                // lock behind a long export, with every insert queued behind
                // the DETACH. Busy now means: next run.
                let sql = format!(
                    "SET LOCAL lock_timeout = '{PARTITION_LOCK_WAIT_MS}ms'; \
                     ALTER TABLE events DETACH PARTITION {name}; DROP TABLE {name}"
                );
                match tx.batch_execute(&sql).await {
                    Ok(()) => tx.commit().await.map(|()| true).map_err(db_err),
                    Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => Ok(false),
                    Err(e) => Err(db_err(e)),
                }
            })?;
            if !detached {
                tracing::info!(partition = %name, "partition busy; it is dropped by a later run");
                continue;
            }
            tracing::info!(partition = %name, "dropped an archived month's empty partition");
            dropped += 1;
        }
        Ok(dropped)
    }
}

impl Drop for PgArchiveDb {
    fn drop(&mut self) {
        if let Some((holder, _)) = self.lease.take() {
            let released = self.rt.block_on(self.client.execute(
                "DELETE FROM leases WHERE name = $1 AND holder = $2",
                &[&LEASE, &holder],
            ));
            if let Err(e) = released {
                tracing::warn!(error = %e, "could not release the archive lease; it expires by itself");
            }
        }
    }
}

/// Fails the transaction unless `holder` still holds the archive lease, and
/// keeps the lease row locked until the transaction ends, so no other run
/// can take it in between. Without a holder (not a leased run) it passes.
async fn fence(tx: &impl GenericClient, holder: Option<&str>) -> Result<(), StoreError> {
    let Some(holder) = holder else {
        return Ok(());
    };
    let held = tx
        .query_opt(
            "SELECT 1 FROM leases WHERE name = $1 AND holder = $2 FOR SHARE",
            &[&LEASE, &holder],
        )
        .await
        .map_err(db_err)?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Unavailable(
            "this run no longer holds the archive lease; another run took it over".into(),
        )),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// Deletes up to `batch` covered rows by `ctid`, the oldest first, looking
/// only at rows from `from_ms` on (no older covered row is left); for
/// events, their dedup keys go with them. The time range keeps the delete on
/// one partition. Returns the rows deleted and the time of the newest.
async fn delete_batch(
    tx: &impl GenericClient,
    c: &Covered<'_>,
    from_ms: i64,
    batch: usize,
) -> Result<(u64, Option<i64>), StoreError> {
    let t = c.kind.time_column();
    let kind = c.kind;
    let returning = if kind == Kind::Events {
        format!("RETURNING {t}, dedup_key")
    } else {
        format!("RETURNING {t}, NULL::bytea")
    };
    let sql = format!(
        "DELETE FROM {kind} WHERE {t} >= $2 AND {t} < $3 AND ctid = ANY(ARRAY(\
           SELECT ctid FROM {kind} WHERE client_id = $1 AND {t} >= $2 AND {t} < $3 \
           AND channel = $4 AND id BETWEEN $5 AND $6 ORDER BY {t} LIMIT $7)) {returning}"
    );
    let from_ms = from_ms.max(c.from_ms);
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let rows = tx
        .query(
            &sql,
            &[
                &c.client_id,
                &from_ms,
                &c.to_ms,
                &c.channel,
                &c.first_id,
                &c.last_id,
                &limit,
            ],
        )
        .await
        .map_err(db_err)?;
    if kind == Kind::Events && !rows.is_empty() {
        let keys: Vec<Vec<u8>> = rows.iter().map(|r| r.get(1)).collect();
        tx.execute("DELETE FROM event_keys WHERE dedup_key = ANY($1)", &[&keys])
            .await
            .map_err(db_err)?;
    }
    let newest = rows.iter().map(|r| r.get::<_, i64>(0)).max();
    Ok((rows.len() as u64, newest))
}

/// One row on its way into an archive file (see the SQLite twin): every
/// column by name, bytea as lower-case hex.
pub struct PgArchiveRow<'a> {
    id: i64,
    at: i64,
    row: &'a Row,
}

impl PgArchiveRow<'_> {
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    pub(crate) fn at(&self) -> i64 {
        self.at
    }

    pub(crate) fn serialize_into<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        use serde::ser::Error as _;
        for (i, col) in self.row.columns().iter().enumerate() {
            let name = col.name();
            let err = |e: tokio_postgres::Error| M::Error::custom(e.to_string());
            match *col.type_() {
                Type::INT8 => {
                    map.serialize_entry(name, &self.row.try_get::<_, Option<i64>>(i).map_err(err)?)?
                }
                Type::INT4 => {
                    map.serialize_entry(name, &self.row.try_get::<_, Option<i32>>(i).map_err(err)?)?
                }
                Type::BYTEA => {
                    let v: Option<Vec<u8>> = self.row.try_get(i).map_err(err)?;
                    map.serialize_entry(name, &v.map(|b| crate::store::archive::hex(&b)))?
                }
                _ => map.serialize_entry(
                    name,
                    &self.row.try_get::<_, Option<String>>(i).map_err(err)?,
                )?,
            }
        }
        Ok(())
    }
}
