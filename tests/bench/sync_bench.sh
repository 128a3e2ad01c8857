#!/usr/bin/env bash
# Sync benchmark: 4 emulated cameras x 256 MiB each into a local store, with the machine's own
# limits for the same work measured in the same run (sha256sum over the same bytes, an
# fsync'd dd write of the same size). Prints figures; it passes or fails nothing.
#
#   tests/bench/sync_bench.sh [WORKDIR]     (default: a fresh directory under /var/tmp)
#
# Then repeats the sync with segments 4x larger (same total) to show that peak RSS does not
# grow with segment size: the pipeline streams, it never holds a segment in memory.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

cameras=4
per_camera_mib=256
work=${1:-$(mktemp -d /var/tmp/bodydock-bench.XXXXXX)}
mkdir -p "$work"

./tools/install-deps >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release >/dev/null
dockd=$root/build/release/dock/dockd

# run_sync NAME SEGMENTS SEGMENT_MIB -> sets mbps, cpu_per_gib, rss_mib
run_sync() {
  local name=$1 segments=$2 seg_mib=$3
  local dir=$work/$name
  rm -rf "$dir" && mkdir -p "$dir"
  /usr/bin/time -v "$dockd" demo --cameras $cameras --segments "$segments" --segment-mib "$seg_mib" \
    --store "$dir/store" --state "$dir/state" --exit-when-idle --no-table --log-level warning \
    >"$dir/out.txt" 2>"$dir/err.txt"
  local summary
  summary=$(grep '^summary:' "$dir/out.txt")
  mbps=$(sed -E 's/.*: ([0-9.]+) MB\/s.*/\1/' <<<"$summary")
  cpu_per_gib=$(sed -E 's/.*\(([0-9.]+) s\/GiB\).*/\1/' <<<"$summary")
  rss_mib=$(awk '/Maximum resident set size/ {printf "%.1f", $NF/1024}' "$dir/err.txt")
  echo "  $name: $cameras cameras x $segments x $seg_mib MiB: $mbps MB/s, $cpu_per_gib CPU s/GiB, peak RSS $rss_mib MiB"
  echo "    ($summary)"
}

echo "bodydock sync benchmark ($(nproc) cores, $(uname -r)), work dir $work"
echo "dock (emulated cameras in-process; CPU and RSS include the emulator serving the reads):"
run_sync base 4 $((per_camera_mib / 4))
base_mbps=$mbps; base_rss=$rss_mib; base_cpu=$cpu_per_gib
run_sync big-segments 1 $per_camera_mib
big_rss=$rss_mib

total_mib=$((cameras * per_camera_mib))
echo "machine limits on the same $total_mib MiB:"
sha_s=$( { /usr/bin/time -f %e sha256sum "$work"/base/store/*/*.seg >/dev/null; } 2>&1 | tail -1)
sha_mbps=$(awk -v m=$total_mib -v s="$sha_s" 'BEGIN {printf "%.1f", m*1048576/s/1e6}')
echo "  sha256sum: $sha_s s, $sha_mbps MB/s"
dd_out=$(dd if=/dev/zero of="$work/dd.bin" bs=1M count=$total_mib conv=fsync 2>&1 | tail -1)
rm -f "$work/dd.bin"
dd_s=$(sed -E 's/.*copied, ([0-9.]+) s.*/\1/' <<<"$dd_out")
dd_mbps=$(awk -v m=$total_mib -v s="$dd_s" 'BEGIN {printf "%.1f", m*1048576/s/1e6}')
echo "  dd conv=fsync: $dd_s s, $dd_mbps MB/s"

# The pipeline writes every byte twice (spool, then store), so it is compared with the
# slower machine limit counting each byte twice.
writes=2
awk -v d="$base_mbps" -v w=$writes -v s="$sha_mbps" -v f="$dd_mbps" -v r1="$base_rss" -v r2="$big_rss" -v c="$base_cpu" 'BEGIN {
  limit = (s < f) ? s : f
  printf "result: dock %.1f MB/s of footage (%.1f MB/s written, x%d), machine limit %.1f MB/s (slower of sha256sum and dd), ratio %.2f (aim >= 0.70)\n", d, d*w, w, limit, d*w/limit
  printf "result: %.2f CPU s/GiB; peak RSS %.1f MiB with 64 MiB segments, %.1f MiB with 256 MiB segments (%+.1f%%, aim within 10%%)\n", c, r1, r2, (r2-r1)/r1*100
}'
