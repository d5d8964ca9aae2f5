#!/usr/bin/env bash
# Continuous-backup benchmark (issue 5), side by side with restic in one run: on a private copy
# of the 200,000-file many-small set, the time from a one-file change to backupd's committed
# snapshot (and the backup job's own time) vs. restic's incremental backup after the same kind
# of change; the idle daemon's RSS and CPU while watching the tree.
# env: BENCH_DATA (default /tmp/bench-data), BENCH_ROUNDS (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=${BENCH_DATA:-/tmp/bench-data}
MKDATA=${MKDATA:-$ROOT/../shared/bench/mkdata.sh}
command -v restic >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null; }
"$MKDATA" "$DATA" many-small >/dev/null
WORK=$(mktemp -d /tmp/backupd-watch-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cp -a "$DATA/many-small" "$WORK/tree"
find "$WORK/tree" -type f -print0 | xargs -0 cat > /dev/null   # into the page cache
cargo build --release --bins -q
BENCH_TREE=$WORK/tree cargo bench -q -p backupd-tests --bench watch
