-- authkey-receiver PostgreSQL schema, version 1 (applied by src/store/postgres/migrate.rs
-- under an advisory lock, recorded in schema_migrations). The same tables and
-- columns as the SQLite schema (schema.sql), so queries, exports and archive
-- files read alike; times are Unix milliseconds, UTC. Why events are
-- partitioned by received_at with a separate dedup table: docs/postgres.md.

-- Every event ever received, one partition per UTC month of receipt
-- (events_pYYYYMM, created ahead of time by the receivers; events_default
-- catches anything outside them). Expired months are archived, then dropped.
CREATE TABLE events (
    id                  bigserial NOT NULL,
    client_id           text      NOT NULL,
    channel             text      NOT NULL,
    direction           text      NOT NULL CHECK (direction IN ('status', 'inbound')),
    provider_message_id text      NOT NULL,
    phone               text,             -- E.164
    email               text,
    status              text      NOT NULL, -- normalized (contract §3)
    provider_status     text,             -- as sent
    error_code          text,             -- as sent
    event_at            bigint,           -- provider time
    received_at         bigint    NOT NULL,
    source_ip           text      NOT NULL,
    text                text,             -- inbound text / button payload / reason
    media               text,             -- inbound media reference
    reply_to            text,             -- message an inbound message answers
    payload             text      NOT NULL, -- the item as received (JSON)
    dedup_key           bytea     NOT NULL  -- 16 bytes; see ingest::Event::dedup_key
) PARTITION BY RANGE (received_at);
CREATE INDEX events_client_received ON events (client_id, received_at);
CREATE INDEX events_message ON events (client_id, provider_message_id);
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Dedup across partitions: a provider retry may arrive in another month than
-- the original, so uniqueness cannot live on the partitioned table (its
-- unique indexes must contain received_at). One row per stored event; the
-- archive job deletes a key with its event.
CREATE TABLE event_keys (
    dedup_key bytea PRIMARY KEY
);

-- Current state per (client, provider message id, recipient).
CREATE TABLE messages (
    id                  bigserial PRIMARY KEY,
    client_id           text   NOT NULL,
    provider_message_id text   NOT NULL,
    recipient           text   NOT NULL, -- E.164 phone, else e-mail
    channel             text   NOT NULL,
    direction           text   NOT NULL,
    status              text   NOT NULL,
    status_rank         bigint NOT NULL, -- domain::Status::rank; never decreases
    provider_status     text,
    error_code          text,
    first_seen_at       bigint NOT NULL, -- received time of the first event
    last_event_at       bigint,          -- latest provider time seen
    last_received_at    bigint NOT NULL, -- received time of the latest event
    event_count         bigint NOT NULL
);
CREATE UNIQUE INDEX messages_key ON messages (client_id, provider_message_id, recipient);
CREATE INDEX messages_client_last ON messages (client_id, last_received_at);

-- Quarantine: bodies and items that could not be read, kept for inspection.
CREATE TABLE rejected (
    id           bigserial PRIMARY KEY,
    client_id    text   NOT NULL,
    channel      text   NOT NULL,
    received_at  bigint NOT NULL,
    source_ip    text   NOT NULL,
    content_type text,
    code         text   NOT NULL,
    reason       text   NOT NULL,
    body         bytea  NOT NULL
);
CREATE INDEX rejected_client_received ON rejected (client_id, received_at);

-- One row per archive file written.
CREATE TABLE archive_files (
    id          bigserial PRIMARY KEY,
    path        text   NOT NULL UNIQUE, -- relative to archive.dir
    client_id   text   NOT NULL,
    channel     text   NOT NULL,
    day         text   NOT NULL,        -- YYYY-MM-DD of receipt
    rows        bigint NOT NULL,
    bytes       bigint NOT NULL,
    sha256      text   NOT NULL,
    first_id    bigint NOT NULL,
    last_id     bigint NOT NULL,
    created_at  bigint NOT NULL,
    kind        text   NOT NULL CHECK (kind IN ('events', 'messages', 'rejected')),
    last_at     bigint NOT NULL         -- newest received time in the file
);
CREATE INDEX archive_files_group ON archive_files (client_id, channel, day);
CREATE INDEX archive_files_created ON archive_files (client_id, created_at);

-- Who read or changed what; no update or delete path except retention.
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         bigint NOT NULL,
    actor      text   NOT NULL,
    role       text,
    action     text   NOT NULL,
    client_id  text,
    filters    text,
    rows       bigint,
    reason     text,
    source_ip  text,
    outcome    text   NOT NULL DEFAULT 'ok' -- 'ok', 'aborted' or the refusal's error code
);
CREATE INDEX audit_log_at ON audit_log (at);

-- Admin API tokens, stored as SHA-256 hashes only.
CREATE TABLE api_tokens (
    id                bigserial PRIMARY KEY,
    name              text   NOT NULL UNIQUE,
    token_hash        bytea  NOT NULL UNIQUE,
    role              text   NOT NULL CHECK (role IN ('owner', 'compliance', 'support')),
    clients           text,                   -- JSON array of client ids; NULL = all
    totp_secret       bytea,
    totp_last_step    bigint,
    totp_failures     bigint NOT NULL DEFAULT 0, -- wrong codes in a row
    totp_locked_until bigint,                    -- no code accepted before this (Unix ms)
    created_at        bigint NOT NULL,
    revoked_at        bigint
);

-- Small service state (readiness probe).
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- Who may run the archive job: one lease for all receivers and cron jobs
-- on this database (a row, not a session lock, so it works behind a
-- transaction pooler such as PgBouncer). A lease is free once it expires or
-- once the server process that took it is gone (its holder died).
CREATE TABLE leases (
    name          text        PRIMARY KEY,
    holder        text        NOT NULL,
    expires_at    bigint      NOT NULL, -- Unix ms
    pid           integer     NOT NULL, -- pg_backend_pid() of the holder's connection
    backend_start timestamptz NOT NULL  -- with pid: that very server process
);
