#!/usr/bin/env bash
# Issue 16: what the performance monitor costs and what the tuner buys, measured in one run.
#
# 1. Idle cost. Two idle daemons side by side for IDLE seconds (default 120): one sampling
#    every second (30 times the default rate, so the cost is measurable), one with sampling
#    off (every day). CPU time from /proc/PID/stat, RSS from VmRSS. The difference per sample,
#    times the default rate (one sample per 30 s, one tuning round per 5 min), is the cost of
#    the default configuration.
# 2. A backup next to a CPU hog (bench/hog.py: one busy process per CPU, its throughput is the
#    machine's "real work"). Modes: the hog alone; a backup with the daemon's threads at nice 0
#    and the tuner off (what a backup tool without priorities does); the default configuration
#    with the tuner off (nice 10); the tuner on (rounds every 3 s here instead of 5 min, so
#    it acts within one backup). For each: the hog's throughput while the backup ran, as a
#    share of the hog alone, and the backup's duration.
#
# usage: bench/perf.sh            env: IDLE (s; 0 skips part 1), BENCH_DATA (default
#                                      /tmp/bench-data), BENCH_WORK, ROUNDS (default 2),
#                                      MODES (default "nice0-off default-off tuner-on")
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=${BENCH_DATA:-/tmp/bench-data}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/backupd-perf.XXXXXX)}
IDLE=${IDLE:-120}
ROUNDS=${ROUNDS:-2}
MKDATA=${MKDATA:-$ROOT/../shared/bench/mkdata.sh}
command -v bc >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bc >/dev/null; }
cargo build --release --bins -q
BACKUPD=$ROOT/target/release/backupd CTL=$ROOT/target/release/backupctl
"$MKDATA" "$DATA" mixed >/dev/null
SRC=$DATA/mixed
TICKS=$(getconf CLK_TCK)

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# start NAME CONFIG -> starts a daemon in $WORK/NAME, sets DPID
start() {
  local dir=$WORK/$1
  rm -rf "$dir"; mkdir -p "$dir"
  printf '%s\n' "$2" > "$dir/config.toml"
  "$BACKUPD" --config "$dir/config.toml" --socket "$dir/sock" --state-dir "$dir/state" \
    --log-level warn 2>>"$dir/log" &
  DPID=$!; PIDS+=("$DPID")
  for _ in $(seq 100); do "$CTL" --socket "$dir/sock" system health >/dev/null 2>&1 && return; sleep 0.1; done
  echo "backupd did not start; see $dir/log" >&2; exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

if [ "$IDLE" -gt 0 ]; then
echo "== idle cost (${IDLE}s, both daemons at once)"
start sampling $'[perf]\nsample_every = "1s"\noptimize_every = "10s"'; ON=$DPID
start quiet $'[perf]\nsample_every = "1d"\noptimize_every = "1d"'; OFF=$DPID
sleep 5 # past start-up
on0=$(cpu_ticks "$ON"); off0=$(cpu_ticks "$OFF")
sleep "$IDLE"
on1=$(cpu_ticks "$ON"); off1=$(cpu_ticks "$OFF")
on_s=$(echo "scale=4; ($on1 - $on0) / $TICKS" | bc); off_s=$(echo "scale=4; ($off1 - $off0) / $TICKS" | bc)
per_sample_ms=$(echo "scale=4; ($on_s - $off_s) * 1000 / $IDLE" | bc)
rss_on=$(rss_kib "$ON"); rss_off=$(rss_kib "$OFF")
default_pct=$(echo "scale=5; $per_sample_ms / 30000 * 100" | bc)
printf '  sampling every 1 s: %s s CPU in %s s; sampling off: %s s\n' "$on_s" "$IDLE" "$off_s"
printf '  per sample: %s ms CPU -> default (every 30 s): %s %% of one CPU\n' "$per_sample_ms" "$default_pct"
printf '  RSS: %s KiB sampling, %s KiB off (difference %s KiB)\n' "$rss_on" "$rss_off" "$((rss_on - rss_off))"
kill "$ON" "$OFF"; wait "$ON" "$OFF" 2>/dev/null || true
fi

# rate_between FILE LINE_A LINE_B -> iterations/s between two marks of the hog
rate_between() {
  awk -v a="$2" -v b="$3" 'NR==a {split($1,x,"="); split($2,y,"="); t0=x[2]; n0=y[2]}
    NR==b {split($1,x,"="); split($2,y,"="); printf "%.0f", (y[2]-n0)/(x[2]-t0)}' "$1"
}
# hog_during CMD... -> starts the hog PRE seconds before CMD (a machine that is already busy,
# so the tuner has seen the load), marks the hog when CMD starts and ends; sets HOG
# (iterations/s while CMD ran) and T (seconds of CMD)
PRE=${PRE:-8}
hog_during() {
  python3 "$ROOT/bench/hog.py" > "$WORK/hog.out" &
  local hog=$!
  sleep "$PRE"
  kill -USR1 "$hog"
  local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
  kill -USR1 "$hog"; sleep 0.2
  T=$(echo "$e - $s" | bc)
  kill -TERM "$hog"; wait "$hog" || true
  HOG=$(rate_between "$WORK/hog.out" 1 2)
}
hog_alone() {
  python3 "$ROOT/bench/hog.py" > "$WORK/hog.out" &
  local hog=$!
  sleep 1; kill -USR1 "$hog"; sleep "$1"; kill -USR1 "$hog"; sleep 0.2
  kill -TERM "$hog"; wait "$hog" || true
  HOG=$(rate_between "$WORK/hog.out" 1 2)
}

# Read the data once so every mode reads it from the page cache.
tar cf - "$SRC" 2>/dev/null | cat > /dev/null

declare -A CONF=(
  [nice0-off]=$'[perf]\nauto = false\nnice = 0\nio_class = "best-effort/4"'
  [default-off]=$'[perf]\nauto = false'
  [tuner-on]=$'[perf]\nauto = true\nsample_every = "1s"\noptimize_every = "3s"'
)
read -r -a MODES <<< "${MODES:-nice0-off default-off tuner-on}"
declare -A SUM_HOG SUM_T
echo "== backup of $(du -sh "$SRC" | cut -f1) next to a CPU hog ($(nproc) busy processes), $ROUNDS rounds"
for r in $(seq "$ROUNDS"); do
  hog_alone 10; ALONE=$HOG
  echo "  round $r: hog alone $ALONE it/s"
  for m in "${MODES[@]}"; do
    start "$m" "${CONF[$m]}"
    hog_during "$CTL" --socket "$WORK/$m/sock" backup "$SRC"
    share=$(echo "scale=1; $HOG * 100 / $ALONE" | bc)
    changes=$("$CTL" --socket "$WORK/$m/sock" perf history | grep -c -- '->' || true)
    printf '    %-12s backup %6.2f s   hog %5s %% of alone   tuning changes %s\n' "$m" "$T" "$share" "$changes"
    SUM_HOG[$m]=$(echo "${SUM_HOG[$m]:-0} + $share" | bc); SUM_T[$m]=$(echo "${SUM_T[$m]:-0} + $T" | bc)
    kill "$DPID"; wait "$DPID" 2>/dev/null || true
  done
done
echo "== mean over $ROUNDS rounds"
for m in "${MODES[@]}"; do
  printf '  %-12s backup %6.2f s   hog keeps %5.1f %%\n' "$m" \
    "$(echo "scale=2; ${SUM_T[$m]} / $ROUNDS" | bc)" "$(echo "scale=1; ${SUM_HOG[$m]} / $ROUNDS" | bc)"
done
