-- authkey-receiver schema, version 1 (applied by migration 1; see src/store/sqlite/migrate.rs).
-- Times are Unix milliseconds, UTC.

-- Every event ever received (status reports and inbound messages).
CREATE TABLE events (
    id                  INTEGER PRIMARY KEY,
    client_id           TEXT    NOT NULL,
    channel             TEXT    NOT NULL,
    direction           TEXT    NOT NULL CHECK (direction IN ('status', 'inbound')),
    provider_message_id TEXT    NOT NULL,
    phone               TEXT,             -- E.164
    email               TEXT,
    status              TEXT    NOT NULL, -- normalized (contract §3)
    provider_status     TEXT,             -- as sent
    error_code          TEXT,             -- as sent
    event_at            INTEGER,          -- provider time
    received_at         INTEGER NOT NULL,
    source_ip           TEXT    NOT NULL,
    text                TEXT,             -- inbound text / button payload / reason
    media               TEXT,             -- inbound media reference
    reply_to            TEXT,             -- message an inbound message answers
    payload             TEXT    NOT NULL, -- the item as received (JSON)
    dedup_key           BLOB    NOT NULL  -- 16 bytes; see ingest::Event::dedup_key
);
CREATE UNIQUE INDEX events_dedup ON events (dedup_key);
CREATE INDEX events_client_received ON events (client_id, received_at);
CREATE INDEX events_message ON events (client_id, provider_message_id);

-- Current state per (client, provider message id, recipient).
CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY,
    client_id           TEXT    NOT NULL,
    provider_message_id TEXT    NOT NULL,
    recipient           TEXT    NOT NULL, -- E.164 phone, else e-mail
    channel             TEXT    NOT NULL,
    direction           TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    status_rank         INTEGER NOT NULL, -- domain::Status::rank; never decreases
    provider_status     TEXT,
    error_code          TEXT,
    first_seen_at       INTEGER NOT NULL, -- received time of the first event
    last_event_at       INTEGER,          -- latest provider time seen
    last_received_at    INTEGER NOT NULL, -- received time of the latest event
    event_count         INTEGER NOT NULL
);
CREATE UNIQUE INDEX messages_key ON messages (client_id, provider_message_id, recipient);
CREATE INDEX messages_client_last ON messages (client_id, last_received_at);

-- Quarantine: bodies and items that could not be read, kept for inspection.
CREATE TABLE rejected (
    id           INTEGER PRIMARY KEY,
    client_id    TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    source_ip    TEXT    NOT NULL,
    content_type TEXT,
    code         TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    body         BLOB    NOT NULL
);
CREATE INDEX rejected_client_received ON rejected (client_id, received_at);

-- One row per archive file written.
CREATE TABLE archive_files (
    id          INTEGER PRIMARY KEY,
    path        TEXT    NOT NULL UNIQUE, -- relative to archive.dir
    client_id   TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    day         TEXT    NOT NULL,        -- YYYY-MM-DD of receipt
    rows        INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    sha256      TEXT    NOT NULL,
    first_id    INTEGER NOT NULL,
    last_id     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('events', 'messages', 'rejected')),
    last_at     INTEGER NOT NULL         -- newest received time in the file
);
CREATE INDEX archive_files_group ON archive_files (client_id, channel, day);
CREATE INDEX archive_files_created ON archive_files (client_id, created_at);

-- Who read or changed what; no update or delete path except retention.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    role       TEXT,
    action     TEXT    NOT NULL,
    client_id  TEXT,
    filters    TEXT,
    rows       INTEGER,
    reason     TEXT,
    source_ip  TEXT,
    outcome    TEXT    NOT NULL DEFAULT 'ok' -- 'ok', 'aborted' or the refusal's error code
);
CREATE INDEX audit_log_at ON audit_log (at);

-- Admin API tokens, stored as SHA-256 hashes only.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    token_hash  BLOB    NOT NULL UNIQUE,
    role        TEXT    NOT NULL CHECK (role IN ('owner', 'compliance', 'support')),
    clients     TEXT,                    -- JSON array of client ids; NULL = all
    totp_secret BLOB,
    totp_last_step INTEGER,
    totp_failures INTEGER NOT NULL DEFAULT 0, -- wrong codes in a row
    totp_locked_until INTEGER,               -- no code accepted before this (Unix ms)
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Small service state (readiness probe, lock leases).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
