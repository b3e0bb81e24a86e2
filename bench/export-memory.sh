#!/usr/bin/env bash
# Measures the streamed export: rows/s and peak RSS of the server while a
# compliance token pulls N rows as CSV over HTTP, and of the `export` command.
# Usage: bench/export-memory.sh [ROWS] [BINARY]   (defaults: 1000000, target/release)
# Loopback only; the data lives in a temp dir that is removed afterwards.
set -euo pipefail
ROWS=${1:-1000000}
BIN=${2:-target/release/authkey-receiver}
DIR=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
export AUTHKEY_RECEIVER__STORAGE__DATA_DIR="$DIR/data" AUTHKEY_RECEIVER__LOG__LEVEL=warn
"$BIN" migrate >/dev/null
python3 - "$DIR/data/receiver.db" "$ROWS" <<'PY'
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1]); n = int(sys.argv[2])
rows = ((f"m{i}", f"+9198{i:08d}", 1779942731000 + i, os.urandom(16),
         f'{{"logid":"m{i}","mobile":"9198{i:08d}","status":"DELIVRD","1":"OTP for 9198{i:08d}"}}')
        for i in range(n))
db.executemany("INSERT INTO events (client_id, channel, direction, provider_message_id, phone, "
               "status, provider_status, received_at, source_ip, payload, dedup_key) "
               "VALUES ('default','sms','status',?,?,'delivered','DELIVRD',?,'127.0.0.1',?,?)",
               (r[:3] + r[4:] + (r[3],) for r in rows))
db.commit()
PY
TOKEN=$("$BIN" token create --name bench --role compliance | tail -1)
AUTHKEY_RECEIVER__SERVER__LISTEN=127.0.0.1:0 AUTHKEY_RECEIVER__LOG__LEVEL=info \
    "$BIN" serve 2>"$DIR/serve.log" &
PID=$!
for _ in $(seq 100); do
    ADDR=$(grep -o 'listening on http://[0-9.:]*' "$DIR/serve.log" | cut -d/ -f3) || true
    [ -n "$ADDR" ] && break
    sleep 0.1
done
[ -n "$ADDR" ] || { echo "the server did not start:" >&2; cat "$DIR/serve.log" >&2; exit 1; }
BASE=$(grep VmRSS /proc/$PID/status | awk '{print $2}')
START=$(date +%s.%N)
BYTES=$(curl -sS -H "Authorization: Bearer $TOKEN" "http://$ADDR/v1/exports" | wc -c)
END=$(date +%s.%N)
PEAK=$(grep VmHWM /proc/$PID/status | awk '{print $2}')
echo "http export: $ROWS rows, $BYTES bytes in $(echo "$END - $START" | bc) s;" \
     "$(echo "$ROWS / ($END - $START)" | bc) rows/s; server RSS before ${BASE} KiB, peak ${PEAK} KiB"
kill "$PID"; wait "$PID" || true
/usr/bin/time -f "cli export: %e s, peak RSS %M KiB" "$BIN" export --output "$DIR/out.csv" 2>&1 | tail -1
