#!/usr/bin/env bash
# Side-by-side benchmark of backupd and restic on the same data in one run (issue 3):
# initial backup, unchanged re-run, restore, repository size and peak RSS, with ratios.
#
# usage: bench/compare.sh [mixed|many-small]...      (default: both)
# env:   BENCH_DATA (default /tmp/bench-data), BENCH_WORK (default: a new dir under /tmp),
#        BIN_DIR (use backupd and backupctl from there instead of building: to measure an older
#        release side by side, e.g. BIN_DIR=/path/to/old/bin bench/compare.sh)
#
# Data comes from ../shared/bench/mkdata.sh (deterministic). restic is installed with apt if
# missing. Both tools read from the page cache (the data is generated, then read once by
# each tool before timing). backupd's peak RSS is the daemon's VmHWM, reset before each step.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SETS=("$@"); [ ${#SETS[@]} -gt 0 ] || SETS=(mixed many-small)
DATA=${BENCH_DATA:-/tmp/bench-data}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/backupd-bench.XXXXXX)}
MKDATA=${MKDATA:-$ROOT/../shared/bench/mkdata.sh}

command -v restic >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null; }
[ -x /usr/bin/time ] || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
if [ -n "${BIN_DIR:-}" ]; then
  BACKUPD=$BIN_DIR/backupd CTL=$BIN_DIR/backupctl
else
  cargo build --release --bins -q
  BACKUPD=$ROOT/target/release/backupd CTL=$ROOT/target/release/backupctl
fi
# backupctl waits for its jobs; one from before that default returned at once without --wait.
WAIT=(); "$CTL" backup --help 2>/dev/null | grep -q -- --no-wait || WAIT=(--wait)
"$MKDATA" "$DATA" "${SETS[@]}" >/dev/null

SOCK=$WORK/backupd.sock
DPID=
stop_daemon() { [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null; DPID=; }
trap 'stop_daemon' EXIT
start_daemon() {
  "$BACKUPD" --socket "$SOCK" --state-dir "$WORK/state" --log-level warn 2>>"$WORK/backupd.log" &
  DPID=$!
  for _ in $(seq 100); do "$CTL" --socket "$SOCK" system health >/dev/null 2>&1 && return; sleep 0.1; done
  echo "backupd did not start; see $WORK/backupd.log" >&2; exit 1
}
# timed CMD... -> sets T (seconds) and M (peak RSS KiB of CMD, or of the daemon for backupctl)
timed() {
  local out
  if [ "$1" = "$CTL" ]; then
    echo 5 > "/proc/$DPID/clear_refs"
    local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
    T=$(echo "$e - $s" | bc); M=$(awk '/VmHWM/ {print $2}' "/proc/$DPID/status")
  else
    /usr/bin/time -o "$WORK/time.out" -f "%e %M" "$@" >/dev/null 2>&1
    out=$(tail -1 "$WORK/time.out")
    T=${out% *}; M=${out#* }
  fi
}
size() { du -sb "$1" | cut -f1; }
ratio() { echo "scale=2; $1 / $2" | bc; }
mb() { echo "scale=1; $1 / 1048576" | bc; }

printf 'machine: %s cores, %s; restic %s; backupd %s\n' "$(nproc)" "$(uname -r)" \
  "$(restic version | awk '{print $2}')" "$("$BACKUPD" --version | awk '{print $2}')"
start_daemon
echo bench > "$WORK/pw"
for set in "${SETS[@]}"; do
  src=$DATA/$set
  files=$(find "$src" -type f | wc -l); bytes=$(size "$src")
  find "$src" -type f -print0 | xargs -0 cat > /dev/null   # into the page cache
  echo; echo "== $set: $files files, $(mb "$bytes") MiB"
  export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/restic-cache
  rrepo=$WORK/restic-$set; brepo=$WORK/backupd-$set
  restic init -r "$rrepo" >/dev/null
  "$CTL" --socket "$SOCK" repo init --name "$set" --path "$brepo" --password-file "$WORK/pw" >/dev/null

  timed restic -r "$rrepo" backup "$src";          r_init=$T r_init_m=$M
  timed "$CTL" --socket "$SOCK" backup "${WAIT[@]}" --repo "$set" "$src"; b_init=$T b_init_m=$M
  timed restic -r "$rrepo" backup "$src";          r_re=$T
  timed "$CTL" --socket "$SOCK" backup "${WAIT[@]}" --repo "$set" "$src"; b_re=$T
  rm -rf "$WORK/rt" "$WORK/bt"
  timed restic -r "$rrepo" restore latest --target "$WORK/rt"; r_rs=$T r_rs_m=$M
  timed "$CTL" --socket "$SOCK" restore "${WAIT[@]}" --repo "$set" "latest:$src" --target "$WORK/bt"; b_rs=$T b_rs_m=$M
  diff -rq "$src" "$WORK/bt" >/dev/null && same=identical || same=DIFFERENT
  r_sz=$(size "$rrepo"); b_sz=$(size "$brepo")
  rm -rf "$WORK/rt" "$WORK/bt"

  printf '%-22s %12s %12s %9s\n' step restic backupd ratio
  printf '%-22s %11ss %11ss %8sx  (restic/backupd: >1 = backupd faster; throughput %s vs %s MiB/s)\n' "initial backup" "$r_init" "$b_init" "$(ratio "$r_init" "$b_init")" \
    "$(echo "scale=0; $bytes / 1048576 / $r_init" | bc)" "$(echo "scale=0; $bytes / 1048576 / $b_init" | bc)"
  printf '%-22s %11ss %11ss %8sx\n' "unchanged re-run" "$r_re" "$b_re" "$(ratio "$r_re" "$b_re")"
  printf '%-22s %11ss %11ss %8sx  (restored tree %s)\n' "restore" "$r_rs" "$b_rs" "$(ratio "$r_rs" "$b_rs")" "$same"
  printf '%-22s %10sMB %10sMB %8sx  (backupd/restic)\n' "repository size" "$(mb "$r_sz")" "$(mb "$b_sz")" "$(ratio "$b_sz" "$r_sz")"
  printf '%-22s %10sMB %10sMB %8sx  (backupd/restic)\n' "peak RSS backup" "$((r_init_m/1024))" "$((b_init_m/1024))" "$(ratio "$b_init_m" "$r_init_m")"
  printf '%-22s %10sMB %10sMB %8sx  (backupd/restic)\n' "peak RSS restore" "$((r_rs_m/1024))" "$((b_rs_m/1024))" "$(ratio "$b_rs_m" "$r_rs_m")"
done
stop_daemon
echo; echo "work dir: $WORK (delete it when done)"
