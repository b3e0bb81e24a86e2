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
