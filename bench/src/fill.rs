//! Fills a migrated database with expired rows for the archive and export
//! runs: one event and one message per row, received 120 to 90 days ago,
//! spread over 30 days and two channels (so 60 archive files per table).
//! Message ids are random hex like Authkey's `logid`, and dedup keys have
//! the receiver's shape (provider minute, then 12 hash bytes).

use std::path::Path;

use anyhow::Result;
use rusqlite::{params, Connection};

const DAY_MS: i64 = 86_400_000;

/// Inserts `rows` events and messages for client `bench`.
pub fn expired_rows(db: &Path, rows: u64) -> Result<()> {
    let mut conn = Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let start = now - 120 * DAY_MS;
    let step = ((30 * DAY_MS) / rows.max(1) as i64).max(1);
    let mut rng = fastrand::Rng::with_seed(7);
    let tx = conn.transaction()?;
    {
        let mut event = tx.prepare(
            "INSERT INTO events (client_id, channel, direction, provider_message_id, phone, status, \
               provider_status, error_code, event_at, received_at, source_ip, payload, dedup_key) \
             VALUES ('bench', ?1, 'status', ?2, ?3, 'delivered', 'DELIVRD', '000', ?4, ?4, \
               '127.0.0.1', ?5, ?6)",
        )?;
        let mut message = tx.prepare(
            "INSERT INTO messages (client_id, provider_message_id, recipient, channel, direction, \
               status, status_rank, provider_status, error_code, first_seen_at, last_event_at, \
               last_received_at, event_count) \
             VALUES ('bench', ?1, ?2, ?3, 'status', 'delivered', 4, 'DELIVRD', '000', ?4, ?4, ?4, 1)",
        )?;
        for x in 0..rows {
            let at = start + x as i64 * step;
            let channel = if x % 2 == 0 { "sms" } else { "whatsapp" };
            let logid = format!("{:016x}{:016x}", rng.u64(..), rng.u64(..));
            let phone = format!("+91980{:07}", x % 10_000_000);
            let payload = format!(
                r#"{{"logid":"{logid}","mobile":"{}","status":"DELIVRD","time":"2026-01-01 10:00:00","1":"Asha Rao"}}"#,
                &phone[1..]
            );
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&((at / 60_000) as u32).to_be_bytes());
            key[4..12].copy_from_slice(&rng.u64(..).to_le_bytes());
            key[12..].copy_from_slice(&rng.u32(..).to_le_bytes());
            event.execute(params![channel, logid, phone, at, payload, &key[..]])?;
            message.execute(params![logid, phone, channel, at])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The same fill on PostgreSQL, server-side (`generate_series`): first the
/// monthly `events` partitions of the filled months (receivers running back
/// then would have created them), then `rows` events with their dedup keys
/// and messages. Logids and the random key bytes are md5 hex of the row
/// number, so a fill is repeatable.
pub async fn expired_rows_postgres(db: &tokio_postgres::Client, rows: u64) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let start = now - 120 * DAY_MS;
    let end = start + 30 * DAY_MS;
    let step = ((30 * DAY_MS) / rows.max(1) as i64).max(1);
    let rows = i64::try_from(rows)?;
    db.batch_execute("SET TIME ZONE 'UTC'; SET synchronous_commit = off")
        .await?;
    let months = db
        .query(
            "SELECT to_char(m, 'YYYYMM'), (extract(epoch FROM m) * 1000)::bigint, \
               (extract(epoch FROM m + interval '1 month') * 1000)::bigint \
             FROM generate_series(date_trunc('month', to_timestamp($1::bigint / 1000.0)), \
               to_timestamp($2::bigint / 1000.0), interval '1 month') m",
            &[&start, &end],
        )
        .await?;
    for m in months {
        let (name, from, to): (String, i64, i64) = (m.get(0), m.get(1), m.get(2));
        db.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS events_p{name} PARTITION OF events \
             FOR VALUES FROM ({from}) TO ({to})"
        ))
        .await?;
    }
    // Row x: received at $1 + x * $2, channel by parity, logid md5(x).
    let series = "FROM (SELECT x, $1::bigint + x * $2::bigint AS at, \
                    CASE WHEN x % 2 = 0 THEN 'sms' ELSE 'whatsapp' END AS channel, \
                    md5(x::text) AS logid, \
                    '+91980' || lpad((x % 10000000)::text, 7, '0') AS phone \
                  FROM generate_series(0::bigint, $3::bigint - 1) x) r";
    let key = "int4send((r.at / 60000)::int) || substr(decode(md5('key' || r.x), 'hex'), 1, 12)";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&start, &step, &rows];
    db.execute(
        &format!(
            "INSERT INTO events (client_id, channel, direction, provider_message_id, phone, \
               status, provider_status, error_code, event_at, received_at, source_ip, payload, \
               dedup_key) \
             SELECT 'bench', r.channel, 'status', r.logid, r.phone, 'delivered', 'DELIVRD', \
               '000', r.at, r.at, '127.0.0.1', \
               '{{\"logid\":\"' || r.logid || '\",\"mobile\":\"' || substr(r.phone, 2) || \
               '\",\"status\":\"DELIVRD\",\"time\":\"2026-01-01 10:00:00\",\"1\":\"Asha Rao\"}}', \
               {key} {series}"
        ),
        &params,
    )
    .await?;
    db.execute(
        &format!("INSERT INTO event_keys (dedup_key) SELECT {key} {series}"),
        &params,
    )
    .await?;
    db.execute(
        &format!(
            "INSERT INTO messages (client_id, provider_message_id, recipient, channel, \
               direction, status, status_rank, provider_status, error_code, first_seen_at, \
               last_event_at, last_received_at, event_count) \
             SELECT 'bench', r.logid, r.phone, r.channel, 'status', 'delivered', 4, 'DELIVRD', \
               '000', r.at, r.at, r.at, 1 {series}"
        ),
        &params,
    )
    .await?;
    db.batch_execute("ANALYZE events; ANALYZE messages; ANALYZE event_keys")
        .await?;
    Ok(())
}
