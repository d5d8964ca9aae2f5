#!/usr/bin/env bash
# Browsing many snapshots (issue 18): `backupctl find` and `diff` over a repository holding
# SNAPSHOTS snapshots of the 200,000-file `many-small` set, each taken after CHANGES files
# changed (as a watched source leaves it).
#
# usage: bench/find.sh
# env:   SNAPSHOTS (default 1000), CHANGES (files changed before each snapshot, default 3),
#        BENCH_DATA (default /tmp/bench-data; the set is made there by ../shared/bench/mkdata.sh
#        if missing), BENCH_SRC (back up this directory instead of the whole set, e.g.
#        "$BENCH_DATA/many-small/tree/alpha0" for a quarter of it), BENCH_WORK (default: a new dir
#        under /tmp), ROUNDS (timed runs of each query, median printed; default 3),
#        PROFILE (cargo profile to build, default release; `dev` reuses a test build),
#        BIN_DIR (backupd, backupctl and examples/fill_browse from there instead of building).
#
# The snapshots are made by daemon/examples/fill_browse.rs: one full backup, then incremental
# backups through the engine with only the changed paths re-examined (what the daemon runs for
# a watched source), which is fast and honest: each is a real, restorable snapshot with its
# parent. The set is hard-linked into the work dir and changed files are replaced, never
# written through, so the shared data stays as generated. The queries then go through a real
# daemon and backupctl, as a user runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SNAPSHOTS=${SNAPSHOTS:-1000}
CHANGES=${CHANGES:-3}
ROUNDS=${ROUNDS:-3}
DATA=${BENCH_DATA:-/tmp/bench-data}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/backupd-find.XXXXXX)}
MKDATA=${MKDATA:-$ROOT/../shared/bench/mkdata.sh}

export CARGO_INCREMENTAL=0
PROFILE=${PROFILE:-release}
if [ -z "${BIN_DIR:-}" ]; then
  cargo build --profile "$PROFILE" -q --bins --example fill_browse
  BIN_DIR=$ROOT/target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
fi
BACKUPD=$BIN_DIR/backupd CTL=$BIN_DIR/backupctl FILL=$BIN_DIR/examples/fill_browse
[ -d "$DATA/many-small" ] || "$MKDATA" "$DATA" many-small >/dev/null

SET=${BENCH_SRC:-$DATA/many-small}
SRC=$WORK/src
rm -rf "$SRC"
cp -al "$SET" "$SRC"
files=$(find "$SRC" -type f | wc -l)
echo bench > "$WORK/pw"

echo "== $SNAPSHOTS snapshots of $files files ($CHANGES changed before each)"
s=$(date +%s.%N)
"$FILL" "$WORK/repo" "$WORK/pw" "$SRC" "$SNAPSHOTS" "$CHANGES" 2>&1 | grep -v '^  ' || true
e=$(date +%s.%N)
printf 'repository built in %.1fs (%s MiB)\n' "$(echo "$e - $s" | bc)" \
  "$(( $(du -sb "$WORK/repo" | cut -f1) / 1048576 ))"

SOCK=$WORK/backupd.sock
DPID=
stop_daemon() { [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null; DPID=; }
trap 'stop_daemon' EXIT
"$BACKUPD" --socket "$SOCK" --state-dir "$WORK/state" --log-level warn 2>>"$WORK/backupd.log" &
DPID=$!
for _ in $(seq 100); do "$CTL" --socket "$SOCK" system health >/dev/null 2>&1 && break; sleep 0.1; done
ctl() { "$CTL" --socket "$SOCK" "$@"; }
ctl repo add --name bench --path "$WORK/repo" --password-file "$WORK/pw" >/dev/null
ctl --json snapshots --repo bench > "$WORK/snapshots.json"
first=$(python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); print(l[0]["id"])' "$WORK/snapshots.json")
last=$(python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); print(l[-1]["id"])' "$WORK/snapshots.json")
prev=$(python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); print(l[-2]["id"] if len(l) > 1 else l[0]["id"])' "$WORK/snapshots.json")
count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/snapshots.json")
echo "snapshots in the repository: $count"

cat > "$WORK/summary.py" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
if "matches" in v:
    pairs = sum(len(x["snapshots"]) for m in v["matches"] for x in m["versions"])
    print("%d paths, %d (path, snapshot) pairs, %d snapshots searched, %d trees read%s"
          % (len(v["matches"]), pairs, len(v["snapshots"]), v["trees_read"],
             ", truncated" if v["truncated"] else ""))
else:
    s = v["summary"]
    print("%d added, %d removed, %d modified, %d metadata, %d trees read"
          % (s["added"], s["removed"], s["modified"], s["metadata"], v["trees_read"]))
EOF
# median of ROUNDS timed runs of `backupctl ARGS` (human output, as a user reads it); then the
# daemon's peak RSS over those runs (MiB) and a summary of one more run's JSON answer
measure() {
  local label=$1; shift
  local times=()
  echo 5 > "/proc/$DPID/clear_refs"
  for _ in $(seq "$ROUNDS"); do
    local s e; s=$(date +%s.%N)
    ctl "$@" > /dev/null
    e=$(date +%s.%N)
    times+=("$(echo "$e - $s" | bc)")
  done
  local med; med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p")
  local rss; rss=$(( $(awk '/VmHWM/ {print $2}' "/proc/$DPID/status") / 1024 ))
  ctl --json "$@" > "$WORK/answer.json"
  printf '%-36s %8.3fs  %5s MiB  %s\n' "$label" "$med" "$rss" "$(python3 "$WORK/summary.py" "$WORK/answer.json")"
}

echo
printf '%-36s %9s  %9s  %s\n' query "median" "peak RSS" "answer"
measure "find needle.cfg (all snapshots)" find --repo bench needle.cfg
measure "find needle.cfg (latest only)" find --repo bench needle.cfg --snapshot "$last"
measure "find 'n00*.txt' (all, limit 1000)" find --repo bench 'n00*.txt'
measure "find '*.txt' (latest only)" find --repo bench '*.txt' --snapshot "$last"
measure "find '*.txt' (all, limit 1000)" find --repo bench '*.txt'
measure "find '**/alpha1/**/n0001*.txt' (all)" find --repo bench '**/alpha1/**/n0001*.txt'
measure "diff first last" diff --repo bench "$first" "$last"
measure "diff previous last" diff --repo bench "$prev" "$last"
stop_daemon
echo; echo "work dir: $WORK (delete it when done)"
