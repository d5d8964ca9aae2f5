#!/usr/bin/env bash
# Audit log cost (issue 13): one entry's append (hash, day-file append + fdatasync, sled insert)
# timed 10,000 times, p50/p99 against the 1 ms target. AUDIT_BENCH_DIR=DIR picks the file system
# (default /var/tmp); the read-throughput comparison with auditing on and off is part of
# bench/control-plane.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p backupd --bench audit_append
