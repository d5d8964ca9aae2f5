#!/usr/bin/env bash
# Snapshot catalog benchmark (issue 11): a repository with BENCH_SNAPSHOTS (default 10,000)
# snapshots (daemon/examples/fill_snapshots.rs: one real backup, then snapshots of the same
# tree through the repository API), registered in a fresh backupd. Prints, with hyperfine:
# `backupctl snapshots` (target < 100 ms) and a one-file incremental backup of the directory
# (`backupctl backup DIR --wait`, one file changed before each run; target < 50 ms). The first
# listing, which fills the catalog from the repository, is timed once.
# BASELINE=DIR (e.g. /work/baseline-bin) also times the same commands with those binaries.
#
# Reproduce: bench/catalog.sh            (PROFILE=dev uses the faster-to-build dev profile)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_SNAPSHOTS:-10000}
PROFILE=${PROFILE:-release}
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
cargo build --profile "$PROFILE" --bins --example fill_snapshots
BIN=$PWD/target/$DIR
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install -y hyperfine)" >&2; exit 1; }

W=$(mktemp -d)
PID=
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap 'stop; rm -rf "$W"' EXIT

mkdir -p "$W/src/sub"
for i in $(seq 50); do head -c 2000 /dev/urandom > "$W/src/sub/f$i"; done
echo bench-pass > "$W/pw"
"$BIN/examples/fill_snapshots" "$W/repo" "$W/pw" "$W/src" "$N"

# Runs the daemon of $1 on a fresh state dir and times the commands; $2 labels the figures.
measure() {
    local bin=$1 label=$2 state="$W/state-$2"
    "$bin/backupd" --state-dir "$state" --socket "$W/sock" --log-level warn &
    PID=$!
    local ctl="$bin/backupctl --socket $W/sock"
    for _ in $(seq 300); do $ctl system health >/dev/null 2>&1 && break; sleep 0.1; done
    $ctl repo list >/dev/null  # waits for start-up work (creating `default`) to finish
    $ctl repo add --name bench --path "$W/repo" --password-file "$W/pw" >/dev/null
    local t0 t1
    t0=$(date +%s%N)
    $ctl snapshots --repo bench > "$W/list"
    t1=$(date +%s%N)
    echo "[$label] first listing ($(($(wc -l < "$W/list") - 1)) snapshots; fills the catalog where there is one): $(((t1 - t0) / 1000000)) ms" >&2
    hyperfine -N --warmup 3 --runs 30 --export-json "$W/$label.json" \
        "$ctl snapshots --repo bench" >&2
    hyperfine --warmup 2 --runs 30 --export-json "$W/$label-backup.json" \
        --prepare "date +%s%N > $W/src/sub/changing" \
        "$ctl backup $W/src --repo bench --wait" >&2
    stop
}

measure "$BIN" new
[ -n "${BASELINE:-}" ] && measure "$BASELINE" baseline
python3 - "$W" "$N" ${BASELINE:+baseline} <<'PY'
import json, sys
w, n, labels = sys.argv[1], int(sys.argv[2]), ["new"] + sys.argv[3:]
print(f"snapshot catalog: {n:,} snapshots in the repository")
for label in labels:
    s = json.load(open(f"{w}/{label}.json"))["results"][0]
    b = json.load(open(f"{w}/{label}-backup.json"))["results"][0]
    print(f"  [{label}] backupctl snapshots:             p50 {s['median'] * 1000:7.1f} ms (mean {s['mean'] * 1000:.1f})")
    print(f"  [{label}] one-file incremental backup:     p50 {b['median'] * 1000:7.1f} ms (mean {b['mean'] * 1000:.1f})")
PY
