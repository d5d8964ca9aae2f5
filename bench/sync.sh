#!/usr/bin/env bash
# Directory sync (issue 17) side by side with `rsync -a --delete` in one run, on the mixed set
# (~1 GiB, ~20,000 files, ../shared/bench/mkdata.sh): initial copy, unchanged re-run, 1 % of the
# files changed; the unchanged re-run in ms per GB; large-file throughput (1 GiB); and a
# --bwlimit's achieved rate against the limit. Prints ratios (backupd / rsync).
#
# usage: bench/sync.sh
# env:   BENCH_DATA (default /tmp/bench-data), BENCH_WORK (default: a new dir under /tmp, removed
#        at the end unless KEEP=1), PROFILE (release | dev, default release: the binaries under
#        target/PROFILE are built unless BIN_DIR names a directory holding them), BIG_MIB (size
#        of the large file, default 1024).
#
# The mixed set is synced from where mkdata.sh made it (no copy: disk is scarce); the 1 % change
# is undone at the end (sizes and mtimes put back), so the shared data stays as generated.
#
# Times: `backupd` is the run's own duration as the job reports it (duration_ms: scan, plan,
# copy, record) and, beside it, the wall time of `backupctl sync run` (queue and socket round
# trips included); `rsync` is its wall time. Data is read once before timing (page cache).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=${BENCH_DATA:-/tmp/bench-data}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/backupd-sync-bench.XXXXXX)}
MKDATA=${MKDATA:-$ROOT/../shared/bench/mkdata.sh}
PROFILE=${PROFILE:-release}

command -v rsync >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null; }
command -v jq >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }
if [ -n "${BIN_DIR:-}" ]; then
  BACKUPD=$BIN_DIR/backupd CTL=$BIN_DIR/backupctl
else
  if [ "$PROFILE" = release ]; then cargo build --release --bins -q; else cargo build --bins -q; fi
  BACKUPD=$ROOT/target/$( [ "$PROFILE" = release ] && echo release || echo debug )/backupd
  CTL=${BACKUPD%/backupd}/backupctl
fi
"$MKDATA" "$DATA" mixed >/dev/null

SOCK=$WORK/backupd.sock
DPID=
cleanup() {
  [ -f "$WORK/undo.json" ] && python3 - "$WORK/undo.json" <<'UNDO'
import json, os, sys
for p, (size, atime, mtime) in json.load(open(sys.argv[1])).items():
    os.truncate(p, size)
    os.utime(p, ns=(atime, mtime))
UNDO
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
"$BACKUPD" --socket "$SOCK" --state-dir "$WORK/state" --log-level warn 2>>"$WORK/backupd.log" &
DPID=$!
for _ in $(seq 100); do "$CTL" --socket "$SOCK" system health >/dev/null 2>&1 && break; sleep 0.1; done
ctl() { "$CTL" --socket "$SOCK" "$@"; }

now() { date +%s.%N; }
ms_since() { echo "($(now) - $1) * 1000 / 1" | bc; }
ratio() { [ "$2" -gt 0 ] 2>/dev/null && echo "scale=2; $1 / $2" | bc || echo "n/a"; }

# run PAIR -> sets RUN (the job's result JSON) and WALL (ms)
run() {
  local s; s=$(now)
  RUN=$(ctl --json sync run "$1")
  WALL=$(ms_since "$s")
}
# rsync_timed SRC DST -> sets R (ms)
rsync_timed() {
  local s; s=$(now)
  rsync -a --delete "$1/" "$2/"
  R=$(ms_since "$s")
}
# first PAIR -> waits for the pair's first run (queued by `sync add`); sets RUN to it
first() {
  for _ in $(seq 6000); do
    RUN=$(ctl --json sync history "$1" | jq '.[0] // empty')
    [ -n "$RUN" ] && [ "$(ctl --json sync show "$1" | jq -r .job)" = null ] && return
    sleep 0.05
  done
  echo "first run of $1 never ended" >&2; exit 1
}
field() { echo "$RUN" | jq -r ".$1"; }

SRC=$DATA/mixed
mkdir -p "$WORK/dst-b" "$WORK/dst-r"
BYTES=$(du -sb "$SRC" | cut -f1); FILES=$(find "$SRC" -type f | wc -l)
find "$SRC" -type f -exec cat {} + >/dev/null
GB=$(echo "scale=3; $BYTES / 1000000000" | bc)
printf 'machine: %s cores, %s; %s; %s files, %s bytes (%s GB)\n' "$(nproc)" "$(uname -r)" \
  "$(rsync --version | head -1)" "$FILES" "$BYTES" "$GB"
printf '%-28s %12s %12s %12s %8s\n' step "backupd ms" "(wall ms)" "rsync ms" ratio

s=$(now)
ctl --json sync add --name bench --no-watch "$SRC" "$WORK/dst-b" >/dev/null
first bench
WALL=$(ms_since "$s")
B=$(field duration_ms); rsync_timed "$SRC" "$WORK/dst-r"
printf '%-28s %12s %12s %12s %8s\n' "initial copy" "$B" "$WALL" "$R" "$(ratio "$B" "$R")"
INITIAL_RATE=$(field bytes_per_sec)

run bench; B=$(field duration_ms); rsync_timed "$SRC" "$WORK/dst-r"
printf '%-28s %12s %12s %12s %8s\n' "unchanged re-run" "$B" "$WALL" "$R" "$(ratio "$B" "$R")"
UNCHANGED_MS=$B UNCHANGED_WALL=$WALL

# 1 % of the files: 64 bytes appended to every 100th file (sorted order).
python3 - "$SRC" "$WORK/undo.json" <<'EOF'
import json, os, sys
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs)
undo = {}
for p in files[::100]:
    st = os.stat(p)
    undo[p] = (st.st_size, st.st_atime_ns, st.st_mtime_ns)
json.dump(undo, open(sys.argv[2], "w"))
for p in files[::100]:
    with open(p, "ab") as f:
        f.write(b"changed by bench/sync.sh\n")
print(len(files[::100]), "files changed", file=sys.stderr)
EOF
run bench; B=$(field duration_ms); rsync_timed "$SRC" "$WORK/dst-r"
printf '%-28s %12s %12s %12s %8s\n' "1% changed" "$B" "$WALL" "$R" "$(ratio "$B" "$R")"
printf '  backupd copied %s files, %s bytes\n' "$(field files_copied)" "$(field bytes_copied)"
if D=$(diff -rq -x .backupd-trash "$SRC" "$WORK/dst-b" 2>&1); then echo "  backupd's DST equals SRC (diff -r)"; else echo "  backupd's DST DIFFERS: $(echo "$D" | head -3)"; fi
if D=$(diff -rq "$SRC" "$WORK/dst-r" 2>&1); then echo "  rsync's DST equals SRC (diff -r)"; else echo "  rsync's DST DIFFERS: $(echo "$D" | head -3)"; fi

rm -rf "$WORK/dst-b" "$WORK/dst-r"

# Large file: BIG_MIB (1 GiB) incompressible.
BIG_MIB=${BIG_MIB:-1024}
mkdir -p "$WORK/big" "$WORK/big-b" "$WORK/big-r"
head -c $((BIG_MIB << 20)) /dev/urandom > "$WORK/big/large.bin"
cat "$WORK/big/large.bin" >/dev/null
ctl --json sync add --name big --no-watch "$WORK/big" "$WORK/big-b" >/dev/null
first big
B=$(field duration_ms); rsync_timed "$WORK/big" "$WORK/big-r"
printf '%-28s %12s %12s %12s %8s\n' "$BIG_MIB MiB file" "$B" "-" "$R" "$(ratio "$B" "$R")"
BIG_MBS=$(echo "scale=1; $(field bytes_per_sec) / 1000000" | bc)
RSYNC_MBS=$(echo "scale=1; $BIG_MIB * 1.048576 * 1000 / $R" | bc)
rm -rf "$WORK/big" "$WORK/big-b" "$WORK/big-r"

# --bwlimit: 96 MiB at 20 MiB/s.
mkdir -p "$WORK/bw" "$WORK/bw-b"
head -c $((96 << 20)) /dev/urandom > "$WORK/bw/f.bin"
ctl --json sync add --name bw --no-watch --bwlimit 20MiB/s "$WORK/bw" "$WORK/bw-b" >/dev/null
first bw
LIMIT=$((20 << 20)); GOT=$(field bytes_per_sec)

echo
printf 'large-file throughput: backupd %s MB/s, rsync %s MB/s (initial copy of the mixed set: %s MB/s)\n' \
  "$BIG_MBS" "$RSYNC_MBS" "$(echo "scale=1; $INITIAL_RATE / 1000000" | bc)"
printf 'unchanged re-run: %s ms for %s GB = %s ms per GB (run only); %s ms per GB wall\n' \
  "$UNCHANGED_MS" "$GB" "$(echo "scale=1; $UNCHANGED_MS / $GB" | bc)" \
  "$(echo "scale=1; $UNCHANGED_WALL / $GB" | bc)"
printf 'bwlimit 20MiB/s: achieved %s B/s = %s of the limit\n' "$GOT" "$(echo "scale=3; $GOT / $LIMIT" | bc)"
