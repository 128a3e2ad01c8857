#!/usr/bin/env bash
# Emulated-USB benchmark: the full sync (4 cameras x 256 MiB by default) with every byte through
# the real libusb code path under umockdev, for IN transfer sizes 64 KiB, 256 KiB, 1 MiB and
# depths 1, 4, 8, next to the same work over the in-process link. Figures are labelled
# "emulated USB": umockdev answers each ioctl over a socket, so they show what the software
# can move, not what a bus would.
#
#   tests/bench/usb_bench.sh [PER_CAMERA_MIB]
set -euo pipefail
cd "$(dirname "$0")/../.."
per_camera=${1:-256}
./tools/install-deps >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release >/dev/null
dockd=$(pwd)/build/release/dock/dockd
work=$(mktemp -d /var/tmp/bodydock-usb-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

run() {  # label, extra args...
  local label=$1; shift
  rm -rf "$work/s" "$work/t" "$work/t.world"
  local out
  out=$("$dockd" demo --cameras 4 --segments 4 --segment-mib $((per_camera / 4)) --store "$work/s" --state "$work/t" \
        --exit-when-idle --no-table --log-level warning "$@" 2>/dev/null | grep '^summary:')
  local mbps cpu
  mbps=$(sed -E 's/.*: ([0-9.]+) MB\/s.*/\1/' <<<"$out")
  cpu=$(sed -E 's/.*\(([0-9.]+) s\/GiB\).*/\1/' <<<"$out")
  printf "%-42s %10s %14s\n" "$label" "$mbps" "$cpu"
}

printf "4 cameras x %s MiB; MB/s of footage, CPU s/GiB of the dockd process (emulator included)\n" "$per_camera"
printf "%-42s %10s %14s\n" "lane" "MB/s" "CPU s/GiB"
run "in-process link"
for size in 64 256 1024; do
  for depth in 1 4 8; do
    run "emulated USB ${size} KiB x ${depth}" --usb emulated-libusb --usb-transfer-kib $size --usb-in-flight $depth
  done
done
# Cameras that hash in 1 MiB chunks (READs of 1 MiB): fewer, larger requests.
run "in-process link, 1 MiB chunks" --chunk-kib 1024
run "emulated USB 1024 KiB x 4, 1 MiB chunks" --usb emulated-libusb --usb-transfer-kib 1024 --usb-in-flight 4 --chunk-kib 1024
