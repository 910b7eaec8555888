#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Cost by host width (issue 29): the same exporter and scrape_bench, in the
# nested SVM guest of the e2e suite, booted once per width: possible_cpus=N
# makes the guest kernel size every per-CPU allocation, BPF maps included,
# as an N-thread host does, with 2 CPUs online. Per width it prints what the
# exporter pins (its maps' memlock, the kernel's per-CPU memory it added,
# its resident memory) with the embedded default config, with exit handling
# time, and with every drill-down kind; and scrape_bench's 1,000-VM scrape
# (per-vCPU off). Then the widths side by side.
#
# usage: run_host_width.sh BUILD_DIR
#   BUILD_DIR  the CMake build folder holding kvm_exit_exporter,
#              bench/scrape_bench and tests/e2e/kvmexit_test_vmm
# Environment: WIDTHS (2 64 128 384: possible CPUs per boot; 2 is the
# guest's own width, no kernel parameter; a width may repeat, e.g. "2 384 2
# 384" to interleave them against drifting host load), WIDTH_SCRAPES (20),
# WIDTH_TIMEOUT (900 s per boot), WIDTH_GUEST_SCRIPT (a guest script instead
# of guest_width.sh, e.g. one that runs scrape_bench under perf record).
# Writes BUILD_DIR/host_width/: serial-N-W.txt per boot (N: its place in
# WIDTHS, W: its width), report.txt.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
readonly SCRIPT_DIR REPO_DIR

die() { printf 'run_host_width: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'run_host_width: %s\n' "$*" >&2; }

[[ $# == 1 ]] || { echo "usage: run_host_width.sh BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd) || die "no build folder $1"
exporter="$build/kvm_exit_exporter"
bench="$build/bench/scrape_bench"
vmm="$build/tests/e2e/kvmexit_test_vmm"
for f in "$exporter" "$bench" "$vmm"; do
  [[ -x $f ]] || die "$f missing: cmake --build $build --target kvm_exit_exporter scrape_bench kvmexit_test_vmm"
done
out="$build/host_width"
mkdir -p "$out"

# The e2e image with this benchmark as its checks, and scrape_bench with its
# libraries in a second archive (later files win).
image=$(E2E_CHECKS="${WIDTH_GUEST_SCRIPT:-$SCRIPT_DIR/guest_width.sh}" "$REPO_DIR/tests/e2e/build_image.sh" "$out" "$vmm" "$exporter") ||
  die "tests/e2e/build_image.sh failed"
root="$out/extra-rootfs"
rm -rf "$root"
mkdir -p "$root/bin"
cp -L "$bench" "$root/bin/scrape_bench"
while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done < <(ldd "$bench" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --quiet) |
  gzip -1 >"$out/extra.cpio.gz"
rm -rf "$root"
cat "$image/initramfs.cpio.gz" "$out/extra.cpio.gz" >"$out/width.cpio.gz"

read -r -a widths <<<"${WIDTHS:-2 64 128 384}"
tags=()
for i in "${!widths[@]}"; do
  w=${widths[$i]} tag="$((i + 1))-${widths[$i]}"
  tags+=("$tag")
  append="console=ttyS0 panic=-1 quiet loglevel=3"
  [[ $w == 2 ]] || append+=" possible_cpus=$w"
  log "booting with $w possible CPUs (serial log $out/serial-$tag.txt)"
  status=0
  timeout -k 10 "${WIDTH_TIMEOUT:-900}" qemu-system-x86_64 \
    -accel tcg,thread=single -cpu qemu64,+svm -m 2G -smp 2 \
    -nodefaults -display none -no-reboot -serial "file:$out/serial-$tag.raw" \
    -kernel "$image/vmlinuz" -initrd "$out/width.cpio.gz" -append "$append" \
    </dev/null >"$out/qemu-$tag.log" 2>&1 || status=$?
  tr -d '\r' <"$out/serial-$tag.raw" >"$out/serial-$tag.txt"
  [[ $status == 0 ]] || log "QEMU exited with status $status (124: timed out)"
  grep -a '^WIDTH ' "$out/serial-$tag.txt" | grep -v 'scrape_bench|' >&2 || true
  grep -aq '^WIDTH end status=0' "$out/serial-$tag.txt" || die "width $w: the guest did not finish (see $out/serial-$tag.txt)"
done

# The report: per width, the exporter's memory per config and the 1,000-VM
# scrape (scrape_bench's row: median ms is its column 6, raw read ms its 14th,
# after the "WIDTH scrape_bench" prefix and the row's leading empty cell).
{
  echo "host_width: $(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown), host $(nproc) CPUs"
  printf '| possible CPUs | config | map memlock MiB | per-CPU memory added MiB | RSS MiB | maps |\n|---:|---|---:|---:|---:|---:|\n'
  for tag in "${tags[@]}"; do
    awk -v w="${tag#*-}" '/^WIDTH exporter / {
      for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "| %s | %s | %.2f | %.2f | %.1f | %s |\n", w, v["config"], v["memlock_bytes"] / 1048576,
        v["percpu_added_kib"] / 1024, v["rss_kib"] / 1024, v["maps"] }' "$out/serial-$tag.txt"
  done
  printf '\n| possible CPUs | counter shards | 1,000 VMs: median scrape ms | p99 ms | raw read ms |\n|---:|---:|---:|---:|---:|\n'
  for tag in "${tags[@]}"; do
    awk -v w="${tag#*-}" '/scrape_bench\| scrape_bench:/ { match($0, /[0-9]+ counter shards/); shards = substr($0, RSTART, RLENGTH - 15) }
      /scrape_bench\| \| *1000 \| off/ { n = split($0, c, "|"); printf "| %s | %s | %s | %s | %s |\n", w, shards, c[8], c[9], c[16] }' "$out/serial-$tag.txt"
  done
} | tee "$out/report.txt"
