#!/usr/bin/env bash
# Analytics benchmark (issue 19): fills a state directory offline with BENCH_JOBS (default
# 100,000) finished backups over BENCH_SOURCES (default 50) sources through the daemon's own
# code (daemon/examples/fill_analytics.rs, which prints the time to record one finished job:
# target < 1 ms), starts backupd on it and prints the p50 (hyperfine median) of the analytics
# requests, end to end through backupctl and the socket (targets: predict and risk < 50 ms,
# report < 500 ms). No peer has these features, so there is nothing to run side by side; the
# `system health` line is the floor of one request in the same run, for scale.
#
# Reproduce: bench/analytics.sh            (PROFILE=dev uses the faster-to-build dev profile)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_JOBS:-100000}
SOURCES=${BENCH_SOURCES:-50}
PROFILE=${PROFILE:-release}
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
cargo build --profile "$PROFILE" --bins --example fill_analytics
BIN=$PWD/target/$DIR
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install -y hyperfine)" >&2; exit 1; }

W=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

printf '[history]\nmax_entries = %s\n' "$((N * 2))" > "$W/config.toml"
"$BIN/examples/fill_analytics" "$W/state" "$N" "$SOURCES"
"$BIN/backupd" --config "$W/config.toml" --state-dir "$W/state" --socket "$W/sock" --log-level warn &
PID=$!
CTL="$BIN/backupctl --socket $W/sock"
for _ in $(seq 300); do $CTL system health >/dev/null 2>&1 && break; sleep 0.1; done
$CTL repo list >/dev/null  # waits for start-up work (creating `default`) to finish
$CTL analytics predict --source source03 --days 7
$CTL analytics report --format html > "$W/report.html"
echo "HTML report: $(wc -c < "$W/report.html") bytes, $(grep -o '<svg' "$W/report.html" | wc -l) charts"

hyperfine -N --warmup 3 --runs 30 --export-json "$W/result.json" \
    "$CTL system health" \
    "$CTL analytics predict --days 30" \
    "$CTL analytics risk" \
    "$CTL analytics trends" \
    "$CTL analytics anomalies" \
    "$CTL analytics recommendations" \
    "$CTL analytics estimate" \
    "$CTL analytics report --format json" \
    "$CTL analytics report --format html" >&2
python3 - "$W/result.json" "$N" "$SOURCES" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
print(f"analytics: {int(sys.argv[2]):,} finished backups over {sys.argv[3]} sources")
for r in results:
    cmd = r["command"].split(" --socket ")[1].split(" ", 1)[1]
    print(f"  p50 {r['median'] * 1000:6.1f} ms  (mean {r['mean'] * 1000:.1f} ms)  backupctl {cmd}")
PY
