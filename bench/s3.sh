#!/usr/bin/env bash
# backupd and restic side by side against one local S3 server (moto's, on 127.0.0.1) in one run
# (issue 21): initial backup, unchanged re-run (with the requests each sends, from the server's
# own access log), restore, with ratios. Both tools reach the same server over loopback, so the
# figures mostly say how each uses an object store, not how fast a network is.
#
# usage: bench/s3.sh [mixed|many-small]          (default: mixed)
# env:   BENCH_DATA (default /tmp/bench-data), BENCH_WORK (default: a new dir under /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SET=${1:-mixed}
DATA=${BENCH_DATA:-/tmp/bench-data}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/backupd-s3bench.XXXXXX)}
MKDATA=${MKDATA:-$ROOT/../shared/bench/mkdata.sh}

command -v restic >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null; }
command -v moto_server >/dev/null || python3 -m pip install -q 'moto[server]'
cargo build --release --bins -q
BACKUPD=$ROOT/target/release/backupd CTL=$ROOT/target/release/backupctl
"$MKDATA" "$DATA" "$SET" >/dev/null
src=$DATA/$SET

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MOTO_LOG=$WORK/moto.log
moto_server -H 127.0.0.1 -p "$PORT" >"$MOTO_LOG" 2>&1 &
MPID=$!
SOCK=$WORK/backupd.sock
DPID=
cleanup() { [ -n "$DPID" ] && kill "$DPID" 2>/dev/null; kill "$MPID" 2>/dev/null; true; }
trap cleanup EXIT
ENDPOINT=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -s -o /dev/null "$ENDPOINT/" && break; sleep 0.2; done
curl -sf -X PUT "$ENDPOINT/restic-bench" -o /dev/null
curl -sf -X PUT "$ENDPOINT/backupd-bench" -o /dev/null

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret RESTIC_PASSWORD=bench
export RESTIC_CACHE_DIR=$WORK/restic-cache
printf '[default]\naws_access_key_id = bench\naws_secret_access_key = bench-secret\n' >"$WORK/creds"
echo bench >"$WORK/pw"

"$BACKUPD" --socket "$SOCK" --state-dir "$WORK/state" --log-level warn 2>>"$WORK/backupd.log" &
DPID=$!
for _ in $(seq 100); do "$CTL" --socket "$SOCK" system health >/dev/null 2>&1 && break; sleep 0.1; done

requests() { wc -l <"$MOTO_LOG"; }
# timed CMD... -> T (seconds), N (requests the server saw)
timed() {
  local n0 s e
  n0=$(requests); s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
  T=$(echo "$e - $s" | bc); N=$(( $(requests) - n0 ))
}
ratio() { echo "scale=2; $1 / $2" | bc; }

files=$(find "$src" -type f | wc -l); bytes=$(du -sb "$src" | cut -f1)
find "$src" -type f -print0 | xargs -0 cat >/dev/null
printf 'machine: %s cores; restic %s; backupd %s; moto %s\n' "$(nproc)" \
  "$(restic version | awk '{print $2}')" "$("$BACKUPD" --version | awk '{print $2}')" \
  "$(python3 -c 'import moto; print(moto.__version__)')"
echo "== $SET: $files files, $((bytes / 1048576)) MiB, to S3 at $ENDPOINT"

RREPO=s3:$ENDPOINT/restic-bench/repo
restic -r "$RREPO" init --repository-version 2 >/dev/null
"$CTL" --socket "$SOCK" repo init --name s3 --location s3://backupd-bench/repo --endpoint "$ENDPOINT" \
  --credentials-file "$WORK/creds" --password-file "$WORK/pw" >/dev/null

timed restic -r "$RREPO" backup "$src";                          r_init=$T r_init_n=$N
timed "$CTL" --socket "$SOCK" backup --repo s3 "$src";           b_init=$T b_init_n=$N
timed restic -r "$RREPO" backup "$src";                          r_re=$T r_re_n=$N
timed "$CTL" --socket "$SOCK" backup --repo s3 "$src";           b_re=$T b_re_n=$N
rm -rf "$WORK/rt" "$WORK/bt"
timed restic -r "$RREPO" restore latest --target "$WORK/rt";     r_rs=$T r_rs_n=$N
timed "$CTL" --socket "$SOCK" restore --repo s3 "latest:$src" --target "$WORK/bt"; b_rs=$T b_rs_n=$N
diff -rq "$src" "$WORK/bt" >/dev/null && same=identical || same=DIFFERENT
rm -rf "$WORK/rt" "$WORK/bt"

printf '%-18s %10s %10s %8s %14s %14s\n' step restic backupd ratio "restic reqs" "backupd reqs"
printf '%-18s %9ss %9ss %7sx %14s %14s\n' "initial backup" "$r_init" "$b_init" "$(ratio "$r_init" "$b_init")" "$r_init_n" "$b_init_n"
printf '%-18s %9ss %9ss %7sx %14s %14s\n' "unchanged re-run" "$r_re" "$b_re" "$(ratio "$r_re" "$b_re")" "$r_re_n" "$b_re_n"
printf '%-18s %9ss %9ss %7sx %14s %14s  (restored tree %s)\n' "restore" "$r_rs" "$b_rs" "$(ratio "$r_rs" "$b_rs")" "$r_rs_n" "$b_rs_n" "$same"
echo "(ratio: restic time / backupd time, >1 = backupd faster; requests as the server logged them)"
echo "work dir: $WORK (delete it when done)"
