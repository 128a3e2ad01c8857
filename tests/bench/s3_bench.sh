#!/usr/bin/env bash
# S3 upload benchmark: the same spooled segments (4 GiB of 256 MiB segments by default) stored in
# a Ceph RGW on loopback, plain HTTP, by the dock's S3 sink (s3_bench upload: dock::S3Sink, 2 at
# a time as the upload queue), by `rclone copy` (64 MiB chunks) and by `s3cmd put -r`, each
# into a fresh RGW (memstore keeps objects in RAM, so each cluster goes before the next starts).
# Prints MB/s and client CPU seconds per GiB for each (wall time and user+sys CPU of the client
# process, from /usr/bin/time), and the dock's ratios against the aim: >= 1.3x the faster tool's
# throughput at <= 1/3 of rclone's CPU per GiB. Beside them, the RGW's own CPU per GiB and how
# busy both cores were: the server shares the cores, so on a small machine the client's CPU
# decides how fast the server can go. Prints figures; it passes or fails nothing, but
# exits non-zero when an upload fails or the bucket's listing is incomplete.
#
#   tests/bench/s3_bench.sh [--gib N] [--segment-mib M] [--part-mib P] [--concurrency C]
#                           [--tools "dock rclone s3cmd"]
#
# --part-mib and --concurrency are the dock's multipart part size (default 16, as dockd's
# --s3-part-mib) and segments stored at a time (default 2, the upload queue's). Work
# files go to a fresh directory under /var/tmp, removed on exit with the clusters, also on
# failure or interruption.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

gib=4
segment_mib=256
part_mib=16
concurrency=2
tools="dock rclone s3cmd"
while (($#)); do
  case $1 in
    --gib) gib=$2; shift 2 ;;
    --segment-mib) segment_mib=$2; shift 2 ;;
    --part-mib) part_mib=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    *) echo "usage: $0 [--gib N] [--segment-mib M] [--part-mib P] [--concurrency C] [--tools \"dock rclone s3cmd\"]" >&2; exit 2 ;;
  esac
done

# ---------------------------------------------------------------- tools and build
missing=()
command -v rclone >/dev/null || missing+=(rclone)
command -v s3cmd >/dev/null || missing+=(s3cmd)
[ -x /usr/bin/time ] || missing+=(time)
if ((${#missing[@]})); then
  sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing ${missing[*]} (apt-get, quiet) ..." >&2
  apt_install() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; }
  apt_install || { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 || true; apt_install; }
fi
./tools/install-deps >/dev/null
# Builds on this machine are serialised through one lock file (two cores: parallel builds
# starve each other and any benchmark running meanwhile).
build_lock=${BODYDOCK_BUILD_LOCK:-/tmp/bodydock-build.lock}
flock "$build_lock" cmake --preset release >/dev/null
flock "$build_lock" cmake --build --preset release --target s3_bench >/dev/null
bench=$root/build/release/tests/bench/s3_bench

# ---------------------------------------------------------------- work dir, clean-up
work=$(mktemp -d /var/tmp/bodydock-s3-bench.XXXXXX)
rgw=        # the running cluster's directory, if any
child=      # the running upload, if any
cleanup() {
  local rc=$?
  if [ -n "$child" ]; then kill -- "-$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  if [ -n "$rgw" ]; then tests/rgw/rgw-down "$rgw" 2>/dev/null || echo "s3_bench: rgw-down $rgw failed" >&2; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Memstore keeps every object in RAM: the footage, plus room for the OSD's own overhead.
memstore_bytes=$(awk -v g="$gib" 'BEGIN { b = (g * 1.5 + 1) * 1073741824; if (b < 6442450944) b = 6442450944; printf "%.0f", b }')
avail=$(awk '/MemAvailable/ { print $2 * 1024 }' /proc/meminfo)
if awk -v a="$avail" -v m="$memstore_bytes" -v g="$gib" 'BEGIN { exit !(a < m + g * 1073741824) }'; then
  echo "s3_bench: warning: $((avail >> 20)) MiB of RAM available; the RGW's memstore ($((memstore_bytes >> 20)) MiB) and the page cache of the footage may not fit" >&2
fi

dirty=$(git status --porcelain -- dock proto 2>/dev/null | wc -l)
echo "bodydock S3 upload benchmark ($(nproc) cores, $(uname -r)), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$( ((dirty == 0)) || echo " + $dirty changed files in dock/ proto/"), work dir $work"
"$bench" make "$work/data" "$gib" "$segment_mib"
segments=$work/data/segments
want_count=$(find "$segments" -name '*.seg' | wc -l)
want_bytes=$(find "$segments" -name '*.seg' -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }')

# ---------------------------------------------------------------- one tool into a fresh RGW
rgw_up() {
  rgw=$work/rgw-$1
  local exports
  exports=$(RGW_MEMSTORE_BYTES=$memstore_bytes tests/rgw/rgw-up "$rgw" 2>"$work/rgw-$1.log") ||
    { echo "s3_bench: rgw-up failed:" >&2; tail -n 20 "$work/rgw-$1.log" >&2; return 1; }
  eval "$exports"
  # rclone reads the cluster through these (also for the listing that checks every upload).
  export RCLONE_CONFIG_RGW_TYPE=s3 RCLONE_CONFIG_RGW_PROVIDER=Ceph RCLONE_CONFIG_RGW_ENV_AUTH=false
  export RCLONE_CONFIG_RGW_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
  export RCLONE_CONFIG_RGW_ENDPOINT=$AWS_ENDPOINT_URL RCLONE_CONFIG_RGW_REGION=$AWS_REGION RCLONE_CONFIG_RGW_FORCE_PATH_STYLE=true
}
rgw_down() {
  tests/rgw/rgw-down "$rgw" 2>/dev/null
  rgw=
}

# server_cpu: CPU seconds (user + sys) the running cluster's daemons have used so far. With the
# server on the same cores, its CPU is what the client's leaves for it.
server_cpu() {
  local p ticks total=0
  for p in /proc/[0-9]*; do
    grep -qF -- "$rgw/ceph.conf" "$p/cmdline" 2>/dev/null || continue
    ticks=$(awk '{ print $14 + $15 }' "$p/stat" 2>/dev/null) || continue
    total=$((total + ${ticks:-0}))
  done
  awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
# machine_busy: busy and total jiffies of all cores so far (/proc/stat), "BUSY TOTAL".
machine_busy() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }

# timed NAME CMD...: runs CMD under /usr/bin/time (wall, user, sys, peak RSS) in a process group
# of its own, so an interruption stops the tool too; output to $work/NAME.out, figures to
# $work/NAME.time.
timed() {
  local name=$1; shift
  local s0 m0
  s0=$(server_cpu); m0=$(machine_busy)
  setsid /usr/bin/time -f '%e %U %S %M' -o "$work/$name.time" "$@" >"$work/$name.out" 2>&1 &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=
  if [ "$rc" -ne 0 ]; then
    echo "s3_bench: $name failed (exit $rc):" >&2
    tail -n 20 "$work/$name.out" >&2
    return 1
  fi
  server[$name]=$(awk -v a="$s0" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
  busy[$name]=$(awk -v a="$m0" -v b="$(machine_busy)" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]) }')
}

# check_listing NAME BUCKET: every segment is in the bucket, with all its bytes.
check_listing() {
  local size count bytes
  size=$(env -u AWS_CA_BUNDLE rclone size "rgw:$2" --include '*.seg' --json 2>>"$work/$1.out")
  count=$(sed -E 's/.*"count":([0-9]+).*/\1/' <<<"$size")
  bytes=$(sed -E 's/.*"bytes":([0-9]+).*/\1/' <<<"$size")
  if [ "$count" != "$want_count" ] || [ "$bytes" != "$want_bytes" ]; then
    echo "s3_bench: $1: bucket $2 holds $count segments, $bytes bytes; expected $want_count, $want_bytes" >&2
    return 1
  fi
  listed="$count objects, $bytes bytes"
}

declare -A mbps cpu_gib wall cpu rss server server_gib busy
run_tool() {
  local name=$1 bucket=bench-$1
  rgw_up "$name"
  case $name in
    dock)
      timed dock "$bench" upload "$work/data" "s3://$bucket" --part-mib "$part_mib" --concurrency "$concurrency"
      ;;
    rclone)
      # rclone takes AWS_CA_BUNDLE even for http:// and fails when it names no usable file.
      timed rclone env -u AWS_CA_BUNDLE rclone copy "$segments" "rgw:$bucket" --s3-chunk-size 64M
      ;;
    s3cmd)
      local host=${AWS_ENDPOINT_URL#http://}
      printf '%s\n' "[default]" "access_key = $AWS_ACCESS_KEY_ID" "secret_key = $AWS_SECRET_ACCESS_KEY" \
        "host_base = $host" "host_bucket = $host" "use_https = False" "signature_v2 = False" >"$work/s3cmd.cfg"
      s3cmd -c "$work/s3cmd.cfg" mb "s3://$bucket" >/dev/null
      timed s3cmd s3cmd -c "$work/s3cmd.cfg" --no-progress put -r "$segments/" "s3://$bucket/"
      ;;
    *) echo "s3_bench: unknown tool '$name' (dock, rclone, s3cmd)" >&2; return 1 ;;
  esac
  check_listing "$name" "$bucket"
  rgw_down
  read -r wall["$name"] user sys rss_kib <"$work/$name.time"
  cpu[$name]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  rss[$name]=$(awk -v k="$rss_kib" 'BEGIN { printf "%.1f", k / 1024 }')
  mbps[$name]=$(awk -v b="$want_bytes" -v w="${wall[$name]}" 'BEGIN { printf "%.1f", b / 1e6 / w }')
  cpu_gib[$name]=$(awk -v b="$want_bytes" -v c="${cpu[$name]}" 'BEGIN { printf "%.2f", c / (b / 1073741824) }')
  server_gib[$name]=$(awk -v b="$want_bytes" -v c="${server[$name]}" 'BEGIN { printf "%.2f", c / (b / 1073741824) }')
  echo "  $name: ${mbps[$name]} MB/s, ${cpu_gib[$name]} CPU s/GiB (wall ${wall[$name]} s, CPU $user user + $sys sys, peak RSS ${rss[$name]} MiB; RGW ${server_gib[$name]} CPU s/GiB; both cores ${busy[$name]} % busy; listed $listed)"
  [ "$name" != dock ] || echo "    ($(grep '^s3_bench upload:' "$work/dock.out"))"
}

echo "uploads ($want_count segments, $want_bytes bytes; a fresh RGW each, memstore $((memstore_bytes >> 20)) MiB; load average $(cut -d' ' -f1-3 /proc/loadavg)):"
for t in $tools; do run_tool "$t"; done

# ---------------------------------------------------------------- table
echo
printf "%-40s %7s %10s %7s %7s %13s %14s %10s\n" "tool" "MB/s" "CPU s/GiB" "wall s" "CPU s" "peak RSS MiB" "RGW CPU s/GiB" "cores busy"
for t in $tools; do
  case $t in
    dock) label="dock (S3Sink, ${part_mib} MiB parts, $concurrency at a time)" ;;
    rclone) label="rclone copy (64 MiB chunks)" ;;
    s3cmd) label="s3cmd put -r" ;;
  esac
  printf "%-40s %7s %10s %7s %7s %13s %14s %9s%%\n" "${label:0:40}" "${mbps[$t]}" "${cpu_gib[$t]}" "${wall[$t]}" "${cpu[$t]}" "${rss[$t]}" "${server_gib[$t]}" "${busy[$t]}"
done
if [ -n "${mbps[dock]:-}" ] && [ -n "${mbps[rclone]:-}" ] && [ -n "${mbps[s3cmd]:-}" ]; then
  awk -v d="${mbps[dock]}" -v r="${mbps[rclone]}" -v s="${mbps[s3cmd]}" -v dc="${cpu_gib[dock]}" -v rc="${cpu_gib[rclone]}" 'BEGIN {
    fast = (r >= s) ? r : s; name = (r >= s) ? "rclone" : "s3cmd"
    printf "result: throughput dock %.1f MB/s / %s %.1f MB/s (the faster tool) = %.2fx (aim >= 1.30x): %s\n", d, name, fast, d / fast, (d / fast >= 1.3) ? "met" : "missed"
    printf "result: CPU per GiB dock %.2f s / rclone %.2f s = %.2f (aim <= 0.33): %s\n", dc, rc, dc / rc, (dc / rc <= 1 / 3) ? "met" : "missed"
  }'
fi
