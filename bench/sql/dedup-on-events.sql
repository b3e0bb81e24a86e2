-- Alternative: 100 events straight into events partitioned on the key minute.
INSERT INTO ev_b (client_id, received_at, key_minute, payload, dedup_key) SELECT 'c', 1796400000000, 29940000, repeat('x', 200), decode(md5(random()::text), 'hex') FROM generate_series(1, 100) ON CONFLICT DO NOTHING;
