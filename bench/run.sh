#!/usr/bin/env bash
# The benchmark in one command: builds release binaries, then runs the
# baseline, the receiver, the constant-rate, archive/export and
# latency-during-archive measurements and prints a Markdown table.
#   bench/run.sh            full run (a few minutes)
#   bench/run.sh --smoke    a few seconds, for CI
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet -p authkey-receiver -p authkey-bench
exec target/release/authkey-bench "$@"
