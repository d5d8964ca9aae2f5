#!/usr/bin/env bash
# Control-plane benchmark (issue 2): builds release binaries, then runs the bench that drives a
# real backupd over its socket with 1, 10 and 100 clients. BENCH_SECONDS=N sets the time per level.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
cargo bench -p backupd-tests --bench control_plane
