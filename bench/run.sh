#!/usr/bin/env bash
# The benchmark in one command: builds release binaries, then runs the
# baseline, the receiver on SQLite and on PostgreSQL (one and two nodes, on a
# throwaway cluster from scripts/pg-scratch), the constant-rate,
# archive/export and latency-during-archive measurements and prints
# Markdown tables.
#   bench/run.sh                    full run (several minutes)
#   bench/run.sh --only-throughput  no archive/export runs
#   bench/run.sh --smoke            a few seconds, for CI
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet -p authkey-receiver -p authkey-bench
exec target/release/authkey-bench "$@"
