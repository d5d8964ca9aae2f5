#!/usr/bin/env bash
# Throughput of `backupctl security encrypt` and `security decrypt` on a 1 GiB file, side by side
# in the same run with two peers (issue 14; the bar is 500 MB/s on one core):
#   - age 1.x (X25519 recipient, ChaCha20-Poly1305 in 64 KiB chunks: the same streamed, chunked
#     AEAD design), installed with apt if missing;
#   - openssl enc -aes-256-ctr -pbkdf2 (AES-256 like ours, but no authentication at all: an
#     upper bound for AES on this CPU, not a like-for-like peer).
# The daemon and every peer are pinned to one CPU (taskset -c 0), so MB/s is per core. Each
# figure is the best of ROUNDS runs; MB = 10^6 bytes. Every round trip is checked with cmp.
#
# usage: bench/encrypt.sh
# env:   SIZE_MIB (default 1024), ROUNDS (default 3), BENCH_WORK (default: a new dir under
#        /dev/shm, else /tmp), BIN_DIR (use backupd and backupctl from there instead of building)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZE_MIB=${SIZE_MIB:-1024}
ROUNDS=${ROUNDS:-3}
base=/dev/shm; [ -d /dev/shm ] && [ -w /dev/shm ] || base=/tmp
WORK=${BENCH_WORK:-$(mktemp -d "$base/backupd-encbench.XXXXXX")}
PIN=(taskset -c 0)

command -v age >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq age >/dev/null 2>&1 || true
command -v openssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
if [ -n "${BIN_DIR:-}" ]; then
  BACKUPD=$BIN_DIR/backupd CTL=$BIN_DIR/backupctl
else
  cargo build --release --bins -q
  BACKUPD=$ROOT/target/release/backupd CTL=$ROOT/target/release/backupctl
fi

SOCK=$WORK/backupd.sock
DPID=
cleanup() { [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null; [ -z "${BENCH_WORK:-}" ] && rm -rf "$WORK"; true; }
trap cleanup EXIT
"${PIN[@]}" "$BACKUPD" --socket "$SOCK" --state-dir "$WORK/state" --log-level warn 2>>"$WORK/backupd.log" &
DPID=$!
for _ in $(seq 300); do "$CTL" --socket "$SOCK" repo list 2>/dev/null | grep -q default && break; sleep 0.1; done
"$CTL" --socket "$SOCK" repo list | grep -q default || { echo "backupd did not start; see $WORK/backupd.log" >&2; exit 1; }
ctl() { "$CTL" --socket "$SOCK" "$@"; }

IN=$WORK/in.bin ENC=$WORK/in.enc OUT=$WORK/out.bin
head -c "${SIZE_MIB}M" /dev/urandom > "$IN"
BYTES=$(stat -c %s "$IN")

# best CMD... -> B = the shortest wall time of ROUNDS runs, in seconds
best() {
  B=
  for _ in $(seq "$ROUNDS"); do
    local s e t; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc)
    if [ -z "$B" ] || [ "$(echo "$t < $B" | bc)" = 1 ]; then B=$t; fi
  done
}
mbs() { echo "scale=0; $BYTES / 1000000 / $1" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
check() { cmp -s "$IN" "$OUT" || { echo "ROUND TRIP FAILED: $1" >&2; exit 1; }; rm -f "$OUT"; }

printf 'machine: %s cores (%s), %s; payload %s MiB in %s; best of %s; pinned to CPU 0\n' \
  "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(uname -r)" \
  "$SIZE_MIB" "$base" "$ROUNDS"

best ctl security encrypt "$IN" "$ENC"; enc=$B
best ctl security decrypt "$ENC" "$OUT"; dec=$B
check "backupd"
ctl --json security decrypt "$ENC" "$OUT" | grep -o '"key_version":[0-9]*' >/dev/null; check "backupd (json)"
rm -f "$ENC"
printf '%-34s %8s %8s\n' "" "encrypt" "decrypt"
printf '%-34s %6s MB/s %6s MB/s   (%.2f s, %.2f s)\n' "backupd security encrypt/decrypt" "$(mbs "$enc")" "$(mbs "$dec")" "$enc" "$dec"

if command -v age >/dev/null; then
  age-keygen -o "$WORK/age.key" 2>/dev/null
  rcpt=$(age-keygen -y "$WORK/age.key")
  best "${PIN[@]}" age -r "$rcpt" -o "$ENC" "$IN"; aenc=$B
  best "${PIN[@]}" age -d -i "$WORK/age.key" -o "$OUT" "$ENC"; adec=$B
  check "age"; rm -f "$ENC"
  printf '%-34s %6s MB/s %6s MB/s   (%.2f s, %.2f s)\n' "age $(age --version)" "$(mbs "$aenc")" "$(mbs "$adec")" "$aenc" "$adec"
  printf '%-34s %8sx %8sx\n' "backupd / age" "$(ratio "$aenc" "$enc")" "$(ratio "$adec" "$dec")"
else
  echo "age: not installable here; skipped"
fi

ossl=(openssl enc -aes-256-ctr -pbkdf2 -pass pass:bench)
best "${PIN[@]}" "${ossl[@]}" -in "$IN" -out "$ENC"; oenc=$B
best "${PIN[@]}" "${ossl[@]}" -d -in "$ENC" -out "$OUT"; odec=$B
check "openssl"; rm -f "$ENC"
printf '%-34s %6s MB/s %6s MB/s   (%.2f s, %.2f s)\n' "openssl enc -aes-256-ctr (no MAC)" "$(mbs "$oenc")" "$(mbs "$odec")" "$oenc" "$odec"
printf '%-34s %8sx %8sx\n' "backupd / openssl" "$(ratio "$oenc" "$enc")" "$(ratio "$odec" "$dec")"
bar=500
ok=yes; [ "$(mbs "$enc")" -ge $bar ] && [ "$(mbs "$dec")" -ge $bar ] || ok=no
echo "bar: >= $bar MB/s on one core for both: $ok"
[ "$ok" = yes ]
