#!/usr/bin/env bash
# Job history benchmark (issue 11): fills a state directory's job history offline with
# BENCH_JOBS (default 100,000) finished jobs (daemon/examples/fill_history.rs, through the
# daemon's own state code), starts backupd on it and prints the p50 (hyperfine median) of
# `backupctl queue status` and `backupctl queue history --limit 100` (target: < 20 ms each).
#
# Reproduce: bench/history.sh            (PROFILE=dev uses the faster-to-build dev profile)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_JOBS:-100000}
PROFILE=${PROFILE:-release}
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
cargo build --profile "$PROFILE" --bins --example fill_history
BIN=$PWD/target/$DIR
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install -y hyperfine)" >&2; exit 1; }

W=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

printf '[history]\nmax_entries = %s\n' "$((N * 2))" > "$W/config.toml"
"$BIN/examples/fill_history" "$W/state" "$N"
"$BIN/backupd" --config "$W/config.toml" --state-dir "$W/state" --socket "$W/sock" --log-level warn &
PID=$!
CTL="$BIN/backupctl --socket $W/sock"
for _ in $(seq 300); do $CTL system health >/dev/null 2>&1 && break; sleep 0.1; done
$CTL repo list >/dev/null  # waits for start-up work (creating `default`) to finish
$CTL queue history --limit 3

hyperfine -N --warmup 10 --runs 100 --export-json "$W/result.json" \
    "$CTL queue status" \
    "$CTL queue history --limit 100" \
    "$CTL queue history --limit 100 --source source3 --since 7d" >&2
python3 - "$W/result.json" "$N" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
print(f"job history: {int(sys.argv[2]):,} finished jobs")
for r in results:
    cmd = r["command"].split(" --socket ")[1].split(" ", 1)[1]
    print(f"  p50 {r['median'] * 1000:6.1f} ms  (mean {r['mean'] * 1000:.1f} ms)  backupctl {cmd}")
PY
