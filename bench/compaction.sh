#!/usr/bin/env bash
# Index compaction benchmark (issue 15). A repository with BENCH_SNAPSHOTS (default 10,000)
# one-file incremental backups (daemon/examples/fill_incremental.rs: each a real backup through
# the engine, so 10,000 snapshots, 10,000 small packs and 10,000 index files), registered in a
# fresh backupd. Prints, for three repositories:
#   many:      the 10,000 backups as they are (10,000 index files);
#   compacted: the same after `forget --keep-last 100` and `repo prune` (which compacts);
#   fresh:     a new repository with 100 such backups (100 index files);
# the time of: the first `backupctl snapshots --json` on a fresh daemon (opens the repository,
# fills the snapshot catalog), `snapshots --json` on a restarted daemon (the catalog kept; the
# first listing after the restart opens the repository again), the median of 5 more listings,
# and `repo check` (structure only: loads the index, reads every snapshot and tree).
# Also the time of `repo compact` on a copy of the 10,000-file repository.
#
# Reproduce: bench/compaction.sh      (PROFILE=dev uses the faster-to-build dev profile)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_SNAPSHOTS:-10000}
KEEP=${BENCH_KEEP:-100}
PROFILE=${PROFILE:-release}
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
cargo build --profile "$PROFILE" --bins --example fill_incremental
BIN=$PWD/target/$DIR

W=$(mktemp -d)
PID=
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap 'stop; rm -rf "$W"' EXIT
echo bench-pass > "$W/pw"
ctl() { "$BIN/backupctl" --socket "$W/sock" "$@"; }
ms() { echo $((($2 - $1) / 1000000)); }
now() { date +%s%N; }

start() { # $1: state dir
    "$BIN/backupd" --state-dir "$1" --socket "$W/sock" --log-level warn 2>>"$W/daemon.log" &
    PID=$!
    for _ in $(seq 300); do ctl system health >/dev/null 2>&1 && break; sleep 0.1; done
    ctl repo list >/dev/null # waits for start-up work (creating `default`) to finish
}

fill() { # $1: repo dir, $2: backups
    rm -rf "$W/src"; mkdir -p "$W/src/sub"
    for i in $(seq 20); do head -c 2000 /dev/urandom > "$W/src/sub/f$i"; done
    "$BIN/examples/fill_incremental" "$1" "$W/pw" "$W/src" "$2"
}

# Prints one line of figures for the repository at $1, labelled $2.
measure() {
    local repo=$1 label=$2 state="$W/state-$2" t0 t1 first restarted check runs=()
    rm -rf "$state"
    start "$state"
    ctl repo add --name bench --path "$repo" --password-file "$W/pw" >/dev/null
    t0=$(now); ctl --json snapshots --repo bench > "$W/list-$label"; t1=$(now)
    first=$(ms "$t0" "$t1")
    stop
    start "$state"
    t0=$(now); ctl --json snapshots --repo bench >/dev/null; t1=$(now)
    restarted=$(ms "$t0" "$t1")
    for _ in 1 2 3 4 5; do
        t0=$(now); ctl --json snapshots --repo bench >/dev/null; t1=$(now)
        runs+=("$(ms "$t0" "$t1")")
    done
    t0=$(now); ctl --json repo check --repo bench >/dev/null; t1=$(now)
    check=$(ms "$t0" "$t1")
    stop
    local median
    median=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 3p)
    printf '  %-10s %6s snapshots %6s index files | first listing %6s ms | after restart %6s ms | warm p50 %5s ms | repo check %6s ms\n' \
        "$label" "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$W/list-$label")" \
        "$(ls "$repo/index" | wc -l)" "$first" "$restarted" "$median" "$check" | tee -a "$W/figures"
}

echo "filling: $N one-file incremental backups" >&2
t0=$(now); fill "$W/many" "$N"; t1=$(now)
echo "  took $(ms "$t0" "$t1") ms" >&2
echo "filling: $KEEP one-file incremental backups" >&2
fill "$W/fresh" "$KEEP"

measure "$W/many" many

# Compaction alone, on a copy (all snapshots kept).
cp -a "$W/many" "$W/copy"
start "$W/state-compact"
ctl repo add --name copy --path "$W/copy" --password-file "$W/pw" >/dev/null
t0=$(now); ctl --json repo compact --repo copy > "$W/compact.json"; t1=$(now)
compact_ms=$(ms "$t0" "$t1")
stop
rm -rf "$W/copy"

# forget --keep-last 100, then prune (which compacts).
start "$W/state-prune"
ctl repo add --name bench --path "$W/many" --password-file "$W/pw" >/dev/null
t0=$(now); ctl --json forget --repo bench --keep-last "$KEEP" > "$W/forget.json"; t1=$(now)
forget_ms=$(ms "$t0" "$t1")
t0=$(now); ctl --json repo prune --repo bench > "$W/prune.json"; t1=$(now)
prune_ms=$(ms "$t0" "$t1")
stop

measure "$W/many" compacted
measure "$W/fresh" fresh

echo
echo "index compaction: $N one-file incremental backups (profile $PROFILE)"
cat "$W/figures"
python3 - "$W" "$compact_ms" "$forget_ms" "$prune_ms" <<'PY'
import json, sys
w, compact_ms, forget_ms, prune_ms = sys.argv[1], *map(int, sys.argv[2:])
c = json.load(open(f"{w}/compact.json"))
p = json.load(open(f"{w}/prune.json"))
f = json.load(open(f"{w}/forget.json"))
print(f"  repo compact (all snapshots kept): {c['index_files_before']} -> {c['index_files_after']} index files in {compact_ms} ms")
print(f"  forget --keep-last: {f['removed']} snapshots removed in {forget_ms} ms")
print(f"  repo prune: {p['index_files_before']} -> {p['index_files_after']} index files, "
      f"{p['packs_deleted']} packs deleted, {p['packs_repacked']} repacked in {prune_ms} ms")
PY
# Measured once (PROFILE=dev, 2 shared cores with other builds running, so noisy):
#   many      10000 snapshots 10000 index files | first listing 2079 ms | after restart 122 ms | warm p50 171 ms | repo check 1127 ms
#   compacted   100 snapshots     1 index file  | first listing   12 ms | after restart   5 ms | warm p50   5 ms | repo check   24 ms
#   fresh       100 snapshots   100 index files | first listing   11 ms | after restart   8 ms | warm p50   5 ms | repo check   23 ms
#   repo compact (all kept): 10000 -> 1 index files in 45.6 s (nearly all of it one directory fsync per deleted file)
#   forget --keep-last 100: 9900 removed in 69.3 s; repo prune: 10000 -> 1 index files, 9899 packs deleted in 99.0 s
