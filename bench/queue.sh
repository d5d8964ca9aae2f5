#!/usr/bin/env bash
# Queue benchmark (issue 4): builds release binaries, then submits 10,000 jobs to a real backupd
# and reports submit and status latency and restart time. BENCH_JOBS=N changes the job count.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
cargo bench -p backupd-tests --bench queue
