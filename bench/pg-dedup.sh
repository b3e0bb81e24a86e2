#!/usr/bin/env bash
# The measurement behind docs/postgres.md's dedup-table choice: pgbench
# inserts batches of 100 events (4 clients, 15 s each, alternating twice) into
#   A: events partitioned by received_at + event_keys(dedup_key PRIMARY KEY)
#   B: events partitioned by the key's minute with UNIQUE (dedup_key, minute)
# on a throwaway cluster (scripts/pg-scratch), and prints tps (× 100 = events/s)
# and the sizes. Usage: bench/pg-dedup.sh [SCRATCH_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/authkey-pg-dedup}
rm -rf "$dir"
url=$(scripts/pg-scratch start "$dir")
trap 'scripts/pg-scratch stop "$dir"; rm -rf "$dir"' EXIT
base=${url%/postgres}
psql -qX "$url" -c "CREATE DATABASE dedup"
psql -qX "$base/dedup" -f bench/sql/dedup-schemas.sql
pgbench="$(scripts/pg-scratch bin)/pgbench"
for round in 1 2; do
    for design in key-table on-events; do
        printf '%-10s round %s: ' "$design" "$round"
        "$pgbench" -n -c 4 -j 2 -T 15 -f "bench/sql/dedup-$design.sql" "$base/dedup" 2>/dev/null | grep '^tps'
    done
done
psql -qX "$base/dedup" -c "SELECT pg_size_pretty(pg_total_relation_size('keys_a')) AS event_keys, \
    pg_size_pretty(pg_total_relation_size('ev_a_p')) AS events_a, \
    pg_size_pretty(pg_total_relation_size('ev_b_p')) AS events_b, \
    (SELECT count(*) FROM ev_a) AS rows_a, (SELECT count(*) FROM ev_b) AS rows_b"
