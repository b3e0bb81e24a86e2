-- The two dedup designs of docs/postgres.md, reduced to what an insert touches.
-- A: chosen design: events partitioned by received_at month + event_keys(dedup_key PK)
CREATE TABLE ev_a (id bigserial, client_id text, received_at bigint NOT NULL, payload text, dedup_key bytea NOT NULL) PARTITION BY RANGE (received_at);
CREATE TABLE ev_a_p PARTITION OF ev_a FOR VALUES FROM (0) TO (10000000000000);
CREATE INDEX ON ev_a (client_id, received_at);
CREATE TABLE keys_a (dedup_key bytea PRIMARY KEY);
-- B: alternative: events partitioned by the key's minute, unique (dedup_key, key_minute) on events
CREATE TABLE ev_b (id bigserial, client_id text, received_at bigint NOT NULL, key_minute bigint NOT NULL, payload text, dedup_key bytea NOT NULL) PARTITION BY RANGE (key_minute);
CREATE TABLE ev_b_p PARTITION OF ev_b FOR VALUES FROM (0) TO (10000000000000);
CREATE INDEX ON ev_b (client_id, received_at);
CREATE UNIQUE INDEX ON ev_b (dedup_key, key_minute);
