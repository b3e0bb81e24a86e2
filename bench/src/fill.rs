//! Fills a migrated database with expired rows for the archive and export
//! runs: one event and one message per row, received 120 to 90 days ago,
//! spread over 30 days and two channels (so 60 archive files).

use std::path::Path;

use anyhow::Result;
use rusqlite::Connection;

const DAY_MS: i64 = 86_400_000;

/// Inserts `rows` events and messages for client `bench`.
pub fn expired_rows(db: &Path, rows: u64) -> Result<()> {
    let conn = Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let start = now - 120 * DAY_MS;
    let step = (30 * DAY_MS) / rows.max(1) as i64;
    conn.execute_batch("BEGIN")?;
    conn.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1) \
         INSERT INTO events (client_id, channel, direction, provider_message_id, phone, status, \
           provider_status, error_code, event_at, received_at, source_ip, payload, dedup_key) \
         SELECT 'bench', CASE x % 2 WHEN 0 THEN 'sms' ELSE 'whatsapp' END, 'status', 'fill-' || x, \
           '+91980' || printf('%07d', x), 'delivered', 'DELIVRD', '000', ?2 + x * ?3, ?2 + x * ?3, \
           '127.0.0.1', json_object('logid', 'fill-' || x, 'mobile', '91980' || printf('%07d', x), \
           'status', 'DELIVRD', 'time', '2026-01-01 10:00:00', '1', 'Asha Rao'), randomblob(16) FROM c",
        rusqlite::params![rows, start, step],
    )?;
    conn.execute(
        "INSERT INTO messages (client_id, provider_message_id, recipient, channel, direction, status, \
           status_rank, provider_status, error_code, first_seen_at, last_event_at, last_received_at, \
           event_count) \
         SELECT client_id, provider_message_id, phone, channel, direction, status, 4, provider_status, \
           error_code, received_at, event_at, received_at, 1 FROM events",
        [],
    )?;
    conn.execute_batch("COMMIT")?;
    Ok(())
}
