#!/usr/bin/env bash
# Side-by-side benchmark of backupd and restic (compressed, repository version 2) on the same
# data in one run, in rounds (issues 3 and 22).
#
# Each round makes fresh repositories and times, for both tools: the initial backup, an
# unchanged re-run, a restore (into an empty directory), check --read-data and a one-file
# incremental. Which tool goes first alternates from round to round. For every step it
# records the wall time, the CPU time of the tool (restic's from its own rusage; backupd's from
# the daemon's /proc/PID/stat plus backupctl's rusage) and the CPU time every other process on
# the machine used meanwhile (from /proc/stat): a round where that is high was disturbed and
# can be told apart instead of being averaged in. It prints each round, then per step the
# ratios of every round and their median.
#
# usage: bench/compare.sh [mixed|many-small|real]...      (default: mixed many-small real)
# env:   ROUNDS (default 3), BENCH_DATA (default /tmp/bench-data), BENCH_WORK (default: a new
#        dir under /tmp), REAL_SRC (the directories the `real` set copies, default /usr/share
#        and /usr/lib/x86_64-linux-gnu; the copy is made once and reused), BIN_DIR (use
#        backupd and backupctl from there instead of building, e.g. an older release)
#
# Data comes from ../shared/bench/mkdata.sh (mixed and many-small are deterministic). restic
# is installed with apt if missing. Both tools read from the page cache (the data is read once
# before the first round). Before each timed step the page cache's dirty data is written out
# (`sync`), so one step's writeback does not land in the next. Peak RSS is the tool's
# (backupd: the daemon's VmHWM, reset before each step).
#
# Both tools restore into a fresh ext4 file system with a journal (an image under the work
# dir, loop-mounted; RESTORE_FS=plain restores into the work dir instead). Why: ext4 without a
# journal, as this kind of VM's root is, skips every inode deleted in the last 60 to 300 s
# when it allocates one (`recently_deleted` in fs/ext4/ialloc.c), so creating files after the
# previous round deleted its restored trees took 10 to 25 s instead of 2 for the same
# restore, for whichever tool met it. A journaled file system, what a restore normally
# writes to, has no such step.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SETS=("$@"); [ ${#SETS[@]} -gt 0 ] || SETS=(mixed many-small real)
ROUNDS=${ROUNDS:-3}
DATA=${BENCH_DATA:-/tmp/bench-data}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/backupd-bench.XXXXXX)}
MKDATA=${MKDATA:-$ROOT/../shared/bench/mkdata.sh}
MUTATE=${MUTATE:-$ROOT/../shared/bench/mutate.sh}

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
HZ=$(getconf CLK_TCK)

SOCK=$WORK/backupd.sock
DPID=
MOUNTED=
stop_daemon() { [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null; DPID=; }
unmount_restore_fs() { [ -n "$MOUNTED" ] && umount "$MOUNTED" && rm -f "$WORK/restore.img"; MOUNTED=; }
trap 'stop_daemon; unmount_restore_fs' EXIT
# restore_fs BYTES FILES -> RT: where both tools restore (see the header)
restore_fs() {
  RT=$WORK/restore; mkdir -p "$RT"
  [ "${RESTORE_FS:-ext4}" = plain ] && return
  local size=$(( $1 * 3 + (2 << 30) ))
  truncate -s "$size" "$WORK/restore.img"
  if mkfs.ext4 -q -F -N $(( $2 * 3 + 100000 )) "$WORK/restore.img" && mount -o loop "$WORK/restore.img" "$RT"; then
    MOUNTED=$RT
  else
    echo "note: no loop-mounted ext4 for the restores (not root?); restoring into $RT" >&2
    rm -f "$WORK/restore.img"
  fi
}
start_daemon() {
  "$BACKUPD" --socket "$SOCK" --state-dir "$WORK/state" --log-level warn 2>>"$WORK/backupd.log" &
  DPID=$!
  for _ in $(seq 100); do "$CTL" --socket "$SOCK" system health >/dev/null 2>&1 && return; sleep 0.1; done
  echo "backupd did not start; see $WORK/backupd.log" >&2; exit 1
}
ctl() { "$CTL" --socket "$SOCK" "$@"; }
# user, nice, system, irq and softirq. These are sampled per tick while a process's own times
# are the scheduler's exact ones, so "other" is only good to a few tenths of a second either
# way (a small negative figure means none).
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
daemon_ticks() { awk '{print $14 + $15}' "/proc/$DPID/stat"; }
calc() { printf "%.${2:-2}f" "$(echo "scale=4; $1" | bc)"; }

# run TOOL CMD... -> T (wall s), C (tool CPU s), O (other processes' CPU s), M (peak RSS KiB)
run() {
  local tool=$1; shift
  sync
  local b0 d0=0 b1 d1=0 out
  [ "$tool" = backupd ] && { echo 5 > "/proc/$DPID/clear_refs"; d0=$(daemon_ticks); }
  b0=$(busy_ticks)
  /usr/bin/time -o "$WORK/time.out" -f "%e %U %S %M" "$@" >/dev/null 2>>"$WORK/tools.log" || {
    echo "failed: $* (see $WORK/tools.log)" >&2; exit 1; }
  b1=$(busy_ticks)
  [ "$tool" = backupd ] && d1=$(daemon_ticks)
  read -r T u s M < <(tail -1 "$WORK/time.out")
  C=$(calc "$u + $s + ($d1 - $d0) / $HZ")
  O=$(calc "($b1 - $b0) / $HZ - $C")
  [ "$tool" = backupd ] && M=$(awk '/VmHWM/ {print $2}' "/proc/$DPID/status")
  true
}
size() { du -sb "$1" | cut -f1; }
mb() { calc "$1 / 1048576" 1; }
median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

printf 'machine: %s cores, %s; restic %s; backupd %s; %s rounds\n' "$(nproc)" "$(uname -r)" \
  "$(restic version | awk '{print $2}')" "$("$BACKUPD" --version | awk '{print $2}')" "$ROUNDS"
start_daemon
echo bench > "$WORK/pw"
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/restic-cache
# The one-file change comes last: restore and check see the initial backup's data.
STEPS=(backup rerun restore check one-file)
declare -A LABEL=([backup]="initial backup" [rerun]="unchanged re-run" [one-file]="one file changed"
  [restore]="restore" [check]="check --read-data")

for set in "${SETS[@]}"; do
  src=$DATA/$set
  files=$(find "$src" -type f | wc -l); bytes=$(size "$src")
  find "$src" -type f -print0 | xargs -0 cat > /dev/null   # into the page cache
  restore_fs "$bytes" "$(find "$src" | wc -l)"
  echo; echo "== $set: $files files, $(mb "$bytes") MiB, $ROUNDS rounds; restoring into $(df --output=fstype "$RT" | tail -1) at $RT"
  declare -A RATIO=() RSS=()
  for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order=(restic backupd); else order=(backupd restic); fi
    rrepo=$WORK/restic-$set; brepo=$WORK/backupd-$set
    rm -rf "$rrepo" "$brepo" "$WORK/restic-cache" "$RT/rt" "$RT/bt"
    ctl repo remove --name "$set" >/dev/null 2>&1 || true
    restic init --repository-version 2 -r "$rrepo" >/dev/null 2>&1
    ctl repo init --name "$set" --path "$brepo" --password-file "$WORK/pw" >/dev/null 2>&1
    echo; echo "round $round (${order[0]} first)"
    printf '  %-18s %9s %8s %8s  %9s %8s %8s  %7s\n' step "restic s" cpu other "backupd s" cpu other ratio
    for step in "${STEPS[@]}"; do
      [ "$step" = one-file ] && "$MUTATE" -1 "$src" >/dev/null
      for tool in "${order[@]}"; do
        case $tool/$step in
          restic/backup|restic/rerun|restic/one-file) run restic restic -r "$rrepo" backup "$src" ;;
          restic/restore) run restic restic -r "$rrepo" restore latest --target "$RT/rt" ;;
          restic/check) run restic restic -r "$rrepo" check --read-data ;;
          backupd/backup|backupd/rerun|backupd/one-file)
            run backupd "$CTL" --socket "$SOCK" backup "${WAIT[@]}" --repo "$set" "$src" ;;
          backupd/restore)
            run backupd "$CTL" --socket "$SOCK" restore "${WAIT[@]}" --repo "$set" "latest:$src" --target "$RT/bt" ;;
          backupd/check) run backupd "$CTL" --socket "$SOCK" repo check "${WAIT[@]}" --repo "$set" --read-data ;;
        esac
        eval "${tool}_T=\$T ${tool}_C=\$C ${tool}_O=\$O ${tool}_M=\$M"
      done
      [ "$step" = one-file ] && "$MUTATE" -u "$src" >/dev/null
      r=$(calc "$restic_T / $backupd_T")
      RATIO[$step]+="$r "
      printf '  %-18s %9s %8s %8s  %9s %8s %8s  %6sx\n' "${LABEL[$step]}" "$restic_T" "$restic_C" "$restic_O" \
        "$backupd_T" "$backupd_C" "$backupd_O" "$r"
      case $step in backup|restore) RSS[$step]+="$(calc "$backupd_M / $restic_M") " ;; esac
      if [ "$step" = restore ]; then
        same=identical; diff -rq --no-dereference "$src" "$RT/bt" >/dev/null 2>&1 || same=DIFFERENT
        rm -rf "$RT/rt" "$RT/bt"
        echo "    restored tree $same; peak RSS restic $((restic_M / 1024)) MB, backupd $((backupd_M / 1024)) MB"
      fi
      [ "$step" = backup ] && echo "    peak RSS restic $((restic_M / 1024)) MB, backupd $((backupd_M / 1024)) MB"
    done
    r_sz=$(size "$rrepo"); b_sz=$(size "$brepo")
    echo "    repository size restic $(mb "$r_sz") MiB, backupd $(mb "$b_sz") MiB ($(calc "$b_sz / $r_sz")x)"
  done
  echo; echo "-- $set: restic time / backupd time per round (>1: backupd faster), and the median"
  for step in "${STEPS[@]}"; do
    printf '  %-18s %-24s median %sx\n' "${LABEL[$step]}" "${RATIO[$step]}" "$(tr ' ' '\n' <<<"${RATIO[$step]}" | grep . | median)"
  done
  printf '  %-18s %-24s median %sx  (backupd/restic)\n' "peak RSS backup" "${RSS[backup]}" "$(tr ' ' '\n' <<<"${RSS[backup]}" | grep . | median)"
  printf '  %-18s %-24s median %sx  (backupd/restic)\n' "peak RSS restore" "${RSS[restore]}" "$(tr ' ' '\n' <<<"${RSS[restore]}" | grep . | median)"
  unset RATIO RSS
  unmount_restore_fs
done
stop_daemon
echo; echo "work dir: $WORK (delete it when done)"
