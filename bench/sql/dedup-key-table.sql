-- Chosen: 100 events, keys first into event_keys, then the new ones into events.
WITH k AS (INSERT INTO keys_a SELECT decode(md5(random()::text), 'hex') FROM generate_series(1, 100) ON CONFLICT DO NOTHING RETURNING dedup_key)
INSERT INTO ev_a (client_id, received_at, payload, dedup_key) SELECT 'c', 1796400000000, repeat('x', 200), dedup_key FROM k;
