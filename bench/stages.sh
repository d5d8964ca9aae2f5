#!/usr/bin/env bash
# Where a backup's (or a restore's, or a check's) CPU time goes, per GiB of the data set
# (issue 22): `perf record` on the daemon during one step, samples grouped by pipeline stage
# from their symbol (chunking, hashing, compression, encryption, verification, the kernel's
# copies and page faults, other system calls, the rest).
#
# usage: bench/stages.sh [mixed|many-small|real] [backup|restore|check]   (default: mixed backup)
# env:   BENCH_DATA (default /tmp/bench-data), BENCH_WORK (default: a new dir under /tmp)
#
# Hashing is the keyed SHA-256 of blob ids and the SHA-256 naming packs (both SHA-NI, about
# 1.9 GB/s a core here); verification is what checks a pack before it is written (its blobs
# decrypted, decompressed and checksummed) and, on restore or check, what checks every blob
# read.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SET=${1:-mixed} STEP=${2:-backup}
DATA=${BENCH_DATA:-/tmp/bench-data}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/backupd-stages.XXXXXX)}
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
cargo build --release --bins -q
BACKUPD=$ROOT/target/release/backupd CTL=$ROOT/target/release/backupctl
"$ROOT/../shared/bench/mkdata.sh" "$DATA" "$SET" >/dev/null
src=$DATA/$SET
find "$src" -type f -print0 | xargs -0 cat > /dev/null

SOCK=$WORK/backupd.sock
"$BACKUPD" --socket "$SOCK" --state-dir "$WORK/state" --log-level warn 2>>"$WORK/backupd.log" &
DPID=$!
trap 'kill $DPID 2>/dev/null' EXIT
for _ in $(seq 100); do "$CTL" --socket "$SOCK" system health >/dev/null 2>&1 && break; sleep 0.1; done
echo bench > "$WORK/pw"
ctl() { "$CTL" --socket "$SOCK" "$@" >/dev/null; }
ctl repo init --name b --path "$WORK/repo" --password-file "$WORK/pw" 2>/dev/null
[ "$STEP" = backup ] || ctl backup --repo b "$src"
case $STEP in
  backup) run=(backup --repo b "$src") ;;
  restore) run=(restore --repo b "latest:$src" --target "$WORK/out") ;;
  check) run=(repo check --repo b --read-data) ;;
  *) echo "unknown step $STEP" >&2; exit 2 ;;
esac
sync
t0=$(awk '{print $14 + $15}' "/proc/$DPID/stat")
perf record -q -F 999 -g -o "$WORK/perf.data" -p "$DPID" -- sleep 3600 2>/dev/null &
PPID_=$!
sleep 0.5
s=$(date +%s.%N); ctl "${run[@]}"; e=$(date +%s.%N)
kill -INT $PPID_; wait $PPID_ 2>/dev/null || true
t1=$(awk '{print $14 + $15}' "/proc/$DPID/stat")
gib=$(echo "scale=3; $(du -sb "$src" | cut -f1) / 1073741824" | bc)
cpu=$(echo "scale=2; ($t1 - $t0) / $(getconf CLK_TCK)" | bc)
printf '%s %s: %.2f s wall, %s s CPU for %s GiB (%.2f CPU s/GiB)\n' "$SET" "$STEP" \
  "$(echo "$e - $s" | bc)" "$cpu" "$gib" "$(echo "$cpu / $gib" | bc -l)"

# Self time per symbol, grouped. The caller chain tells the two SHA-256 uses apart.
perf report -i "$WORK/perf.data" --no-children --sort sym -g none --percent-limit 0 2>/dev/null |
  awk -v cpu="$cpu" -v gib="$gib" '
  /^#/ || NF < 3 { next }
  {
    pct = $1; sub("%", "", pct); sym = $0; sub(/^[^]]*\] /, "", sym)
    if (sym ~ /sha2|sha256|Sha256|hmac/) g = "hashing (SHA-256: blob ids, pack names)"
    else if (sym ~ /fastcdc|cut_gear/) g = "chunking (FastCDC)"
    else if (sym ~ /ZSTD_decompress|HUF_decompress|ZSTD_decode|HUF_decode|FSE_decode|ZSTD_exec|xxh3|xxhash/) g = "verification (decompress, checksums)"
    else if (sym ~ /ZSTD_|HUF_|HIST_|FSE_|zstd/) g = "compression (zstd)"
    else if (sym ~ /aes|gcm|gfmul|ghash|ring_core|polyval/) g = "encryption and decryption (AES-256-GCM)"
    else if (sym ~ /copy_to_iter|copy_page_to_iter|filemap_read|filemap_get/) g = "kernel: reading files (copy from the page cache)"
    else if (sym ~ /copy_folio_from_iter|generic_perform_write|ext4_da_write|ext4_block_write|block_write/) g = "kernel: writing files (copy into the page cache)"
    else if (sym ~ /clear_page|page_fault|handle_mm_fault|do_anonymous|alloc_pages|get_page_from_freelist|rmqueue|folio|lru/) g = "kernel: page faults and page allocation"
    else if ($0 ~ /\[k\]/) g = "kernel: other system calls (open, stat, create, metadata)"
    else if (sym ~ /memmove|memcpy|memset/) g = "memory copies in the daemon"
    else g = "other (tree walk, index, allocation, threads)"
    share[g] += pct
  }
  END {
    for (g in share) printf "  %5.1f %%  %5.2f CPU s/GiB  %s\n", share[g], share[g] / 100 * cpu / gib, g
  }' | sort -rn
echo "work dir: $WORK (delete it when done)"
