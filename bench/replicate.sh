#!/usr/bin/env bash
# Repository replication (issue 17): the mixed set is backed up into R1, then, in the same run,
#   1. `repo replicate run` into a fresh replica R2 sharing R1's data key (packs copied),
#   2. `cp -a` of R1's directory (the target: replication at least as fast, ratio ≥ 1),
#   3. replication into a fresh replica R3 with its own data key (every blob sealed again),
#   4. one small file changed, backed up, and replicated incrementally into R2 (target < 1 s),
# then R2 is checked (`repo check --read-data`).
#
# usage: bench/replicate.sh [ROUNDS]     (default 3; medians are printed)
# env:   BENCH_DATA (default /tmp/bench-data), BENCH_WORK (default: a new dir under /tmp),
#        PROFILE (release or dev; default release), BIN_DIR (binaries to use instead),
#        LOG_LEVEL (the daemon's, default warn; backupd=debug logs each run's phase timings),
#        KEEP_LOG (copy the daemon's log there), BACKUPD_REPLICATE_WORKERS (packs copied at once)
#
# Data comes from ../shared/bench/mkdata.sh (deterministic); the one-file change from
# ../shared/bench/mutate.sh -1 (undone at the end). Page cache: R1 is read once before timing,
# and the caches are dropped before every timed copy when run as root (echo 3 >
# /proc/sys/vm/drop_caches), so cp and replication read R1 alike.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${1:-3}
DATA=${BENCH_DATA:-/tmp/bench-data}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/backupd-repl.XXXXXX)}
MKDATA=${MKDATA:-$ROOT/../shared/bench/mkdata.sh}
MUTATE=${MUTATE:-$ROOT/../shared/bench/mutate.sh}
PROFILE=${PROFILE:-release}

if [ -n "${BIN_DIR:-}" ]; then
  BACKUPD=$BIN_DIR/backupd CTL=$BIN_DIR/backupctl
else
  if [ "$PROFILE" = release ]; then cargo build --release --bins -q; else cargo build --bins -q; fi
  BACKUPD=$ROOT/target/$([ "$PROFILE" = release ] && echo release || echo debug)/backupd
  CTL=${BACKUPD%/backupd}/backupctl
fi
"$MKDATA" "$DATA" mixed >/dev/null
src=$DATA/mixed

SOCK=$WORK/backupd.sock
DPID=
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  "$MUTATE" -u "$src" >/dev/null 2>&1 || true
  [ -n "${KEEP_LOG:-}" ] && cp "$WORK/backupd.log" "$KEEP_LOG"
  rm -rf "$WORK"
}
trap cleanup EXIT
"$BACKUPD" --socket "$SOCK" --state-dir "$WORK/state" --log-level "${LOG_LEVEL:-warn}" 2>>"$WORK/backupd.log" &
DPID=$!
for _ in $(seq 100); do "$CTL" --socket "$SOCK" system health >/dev/null 2>&1 && break; sleep 0.1; done
ctl() { "$CTL" --socket "$SOCK" "$@"; }
now() { date +%s.%N; }
drop() { [ "$(id -u)" = 0 ] && sync && echo 3 > /proc/sys/vm/drop_caches || true; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mb() { echo "scale=1; $1 / 1048576" | bc; }

echo bench > "$WORK/pw"
printf 'machine: %s cores, %s; backupd %s (%s)\n' "$(nproc)" "$(uname -r)" \
  "$("$BACKUPD" --version | awk '{print $2}')" "$PROFILE"
find "$src" -type f -print0 | xargs -0 cat > /dev/null
ctl repo init --name r1 --path "$WORK/r1" --password-file "$WORK/pw" >/dev/null
s=$(now); ctl backup --repo r1 "$src" >/dev/null; e=$(now)
r1_bytes=$(du -sb "$WORK/r1" | cut -f1)
echo "mixed: $(find "$src" -type f | wc -l) files, $(mb "$(du -sb "$src" | cut -f1)") MiB; backup into R1 $(echo "$e - $s" | bc) s, R1 $(mb "$r1_bytes") MiB"

: > "$WORK/repl" ; : > "$WORK/cp" ; : > "$WORK/own" ; : > "$WORK/inc"
for round in $(seq "$ROUNDS"); do
  rm -rf "$WORK/r2" "$WORK/r3" "$WORK/cp-r1"
  ctl repo remove r2 >/dev/null 2>&1 || true
  ctl repo remove r3 >/dev/null 2>&1 || true
  ctl repo init --name r2 --location "$WORK/r2" --replica-of r1 --password-file "$WORK/pw" >/dev/null
  ctl repo init --name r3 --location "$WORK/r3" --replica-of r1 --own-data-key --password-file "$WORK/pw" >/dev/null
  ctl repo replicate add --from r1 --to r2 >/dev/null
  ctl repo replicate add --from r1 --to r3 >/dev/null

  drop; s=$(now); ctl repo replicate run r2 >/dev/null; e=$(now); echo "$e - $s" | bc >> "$WORK/repl"
  drop; s=$(now); cp -a "$WORK/r1" "$WORK/cp-r1"; sync -f "$WORK/cp-r1"; e=$(now); echo "$e - $s" | bc >> "$WORK/cp"
  drop; s=$(now); ctl repo replicate run r3 >/dev/null; e=$(now); echo "$e - $s" | bc >> "$WORK/own"

  "$MUTATE" -s "$round" -1 "$src" >/dev/null
  ctl backup --repo r1 "$src" >/dev/null
  s=$(now); ctl --json repo replicate run r2 > "$WORK/inc.json"; e=$(now); echo "$e - $s" | bc >> "$WORK/inc"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f'  round $round: incremental copied {r[\"snapshots_copied\"]} snapshot, {r[\"blobs_copied\"]} blobs, {r[\"bytes_written\"]} bytes')" "$WORK/inc.json"
  rm -rf "$WORK/cp-r1"
  ctl repo remove r3 >/dev/null; rm -rf "$WORK/r3"
done
ctl repo check --read-data --repo r2 >/dev/null && echo "R2: repo check --read-data clean"

repl=$(median < "$WORK/repl"); cp=$(median < "$WORK/cp"); own=$(median < "$WORK/own"); inc=$(median < "$WORK/inc")
echo
printf '%-44s %8s s  %s\n' "replicate into a fresh R2 (shared data key)" "$repl" "$(echo "scale=0; $r1_bytes / $repl / 1048576" | bc) MiB/s"
printf '%-44s %8s s  %s\n' "cp -a of R1's directory (+ sync)" "$cp" "$(echo "scale=0; $r1_bytes / $cp / 1048576" | bc) MiB/s"
printf '%-44s %8s\n' "ratio cp / replicate (target >= 1)" "$(echo "scale=2; $cp / $repl" | bc)"
printf '%-44s %8s s  %s\n' "replicate into a fresh R3 (own data key)" "$own" "$(echo "scale=0; $r1_bytes / $own / 1048576" | bc) MiB/s"
printf '%-44s %8s s  (target < 1 s)\n' "incremental after a one-file change" "$inc"
