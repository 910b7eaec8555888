#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The host suite: the exporter as users run it. Boots a Debian 12 system
# image (tests/host/build_image.sh, cached) under QEMU TCG with AMD SVM, so
# that the guest's kvm_amd makes real kvm:kvm_exit events; the guest installs
# the package built from this tree with apt, lets systemd start the shipped
# unit at Debian's default sysctls, runs a libvirt domain and two QEMUs started
# by hand, and checks attach, labels, exact counts against the kernel's hist
# trigger, upgrade, remove and purge (tests/host/guest/control.sh). The host's
# Prometheus scrapes the guest's service through a QEMU port forward and
# evaluates every dashboard query (tests/monitoring/prom_live_check.sh).
#
# usage: run_host.sh BUILD_DIR OUT_DIR
#   BUILD_DIR  a configured and built tree (CPackConfig.cmake, kvm_exit_exporter)
# Environment: HOST_TIMEOUT (seconds for the guest, default 900),
# HOST_KERNEL (default 6.1: Debian 12's linux-image-amd64; 6.12: its
# linux-image-6.12-amd64; both are in the image),
# HOST_IMAGE_CACHE (default /var/cache/kvm-exit-exporter-tests),
# HOST_PROM_SECONDS (default 20: Prometheus scrapes before the queries run),
# HOST_DEBUG_DROPIN_CAPS (debugging the suite only: capabilities a drop-in
# adds to the unit, e.g. CAP_SYS_ADMIN; the no_dropin check then fails).
# Output: every check, then `N passed, N failed` alone on a line. Exit status 0
# only when every check passed and the guest printed E2E DONE.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
readonly SCRIPT_DIR REPO
# shellcheck source-path=SCRIPTDIR source=../e2e/lib/host.sh
. "$REPO/tests/e2e/lib/host.sh"

die() { printf 'run_host: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'run_host: %s\n' "$*"; }

[[ $# == 2 ]] || { echo "usage: run_host.sh BUILD_DIR OUT_DIR" >&2; exit 2; }
[[ -f $1/CPackConfig.cmake ]] || die "$1 is not a configured build directory (no CPackConfig.cmake)"
[[ $(id -u) == 0 ]] || die "run as root (apt-get, mmdebstrap)"
BUILD=$(cd "$1" && pwd)
mkdir -p "$2"
OUT=$(cd "$2" && pwd)
start=$(date +%s.%N)

"$REPO/scripts/install_deps.sh" test >/dev/null

# ---- The packages: this tree's, and the same with a higher version (upgrade) ----------
rm -rf "$OUT/share"
mkdir -p "$OUT/share/pkg/old" "$OUT/share/pkg/new"
log "cpack -G DEB ($BUILD)"
(cd "$BUILD" && cpack -G DEB -B "$OUT/cpack") >"$OUT/cpack.log" 2>&1 || { tail -n 30 "$OUT/cpack.log"; die "cpack failed"; }
debs=("$OUT"/cpack/kvm-exit-exporter_*.deb)
[[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || die "cpack made no single kvm-exit-exporter_*.deb: ${debs[*]}"
deb=${debs[0]}
cp "$deb" "$OUT/share/pkg/old/"
deb=$OUT/share/pkg/old/${deb##*/}
version=$(dpkg-deb -f "$deb" Version)
new_version=${version%-*}+hostupgrade-${version##*-}
rm -rf "$OUT/repack"
dpkg-deb -R "$deb" "$OUT/repack"
sed -i "s/^Version: .*/Version: $new_version/" "$OUT/repack/DEBIAN/control"
dpkg-deb --root-owner-group -Zxz -b "$OUT/repack" "$OUT/share/pkg/new/kvm-exit-exporter_${new_version}_$(dpkg-deb -f "$deb" Architecture).deb" >/dev/null
rm -rf "$OUT/repack" "$OUT/cpack"
dpkg --compare-versions "$new_version" gt "$version" || die "$new_version is not newer than $version"
log "packages: $(basename "$deb"), upgrade to $new_version"

# The image holds the package's Depends (no network in the guest).
mapfile -t depends < <(dpkg-deb -f "$deb" Depends | tr ',|' '\n' | sed 's/(.*)//; s/[[:space:]]//g' | sed '/^$/d' | sort -u)
image_start=$SECONDS
image=$("$SCRIPT_DIR/build_image.sh" "${depends[@]}") || die "build_image.sh failed"
kernel_version=${HOST_KERNEL:-6.1}
kernels=("$image/vmlinuz-$kernel_version".*)
[[ ${#kernels[@]} == 1 && -f ${kernels[0]} ]] || die "no single $kernel_version kernel in $image: ${kernels[*]}"
kernel=${kernels[0]}
initrd=$image/initrd.img-${kernel##*/vmlinuz-}
log "image $image ($((SECONDS - image_start)) s), kernel ${kernel##*/vmlinuz-}"
for dep in "${depends[@]}"; do
  grep -q "^$dep " "$image/packages.txt" || die "the image lacks $dep, a Depends of the package"
done

cp "$SCRIPT_DIR/guest/control.sh" "$OUT/share/control.sh"
printf 'HOST_DEBUG_DROPIN_CAPS=%q\n' "${HOST_DEBUG_DROPIN_CAPS:-}" >"$OUT/share/env"
cp "$REPO/tests/e2e/lib/common.sh" "$OUT/share/lib.sh"
chmod 0755 "$OUT/share/control.sh"

# ---- Host side of the checks ------------------------------------------------------------
HOST_RESULTS=$OUT/host-results.txt
: >"$HOST_RESULTS"

# The guest prints E2E PROMCHECK while its three VMs run: scrape through the
# port forward, run Prometheus on the host's loopback against it, then let
# the guest go on (promcheck.done in the share).
prom_check() {
  local port=$1 out=$OUT/prom-live-check.log status=0 summary
  if curl -sf --max-time 20 -o "$OUT/host-scrape.prom" "http://127.0.0.1:$port/metrics" &&
    grep -q '^kvm_vm_info{' "$OUT/host-scrape.prom"; then
    echo "E2E PASS host_scrape_hostfwd" >>"$HOST_RESULTS"
  else
    echo "E2E FAIL host_scrape_hostfwd: GET http://127.0.0.1:$port/metrics through QEMU hostfwd gave no kvm_vm_info (see $OUT/host-scrape.prom)" >>"$HOST_RESULTS"
  fi
  log "Prometheus check of the guest's service at 127.0.0.1:$port (log $out)"
  timeout -k 10 300 "$REPO/tests/monitoring/prom_live_check.sh" "127.0.0.1:$port" "${HOST_PROM_SECONDS:-20}" \
    >"$out" 2>&1 || status=$?
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
  # The service runs at the packaged defaults: panels of families those do
  # not serve (exit handling time, drill-down kinds not followed) have no
  # data, nor those of drill-down kinds that follow storms while the VMs are
  # calm; both are listed.
  if [[ $status == 0 ]]; then
    echo "E2E PASS prom_live_check" >>"$HOST_RESULTS"
  elif [[ -s $OUT/host-scrape.prom ]] &&
    python3 "$SCRIPT_DIR/classify_prom.py" "$out" "$OUT/host-scrape.prom" >"$OUT/prom-classified.txt"; then
    echo "E2E PASS prom_live_check: every failure is a panel of a family the defaults do not serve ($(grep -c '^DEFAULTS' "$OUT/prom-classified.txt") panels and rules) or of a drill-down kind that grows only during storms ($(grep -c '^STORMS' "$OUT/prom-classified.txt")), listed in $OUT/prom-classified.txt" >>"$HOST_RESULTS"
  else
    echo "E2E FAIL prom_live_check: status $status (${summary:-no summary}): $(grep -E '^REAL' "$OUT/prom-classified.txt" 2>/dev/null | head -n 40 | tr '\n' '|') (see $out)" >>"$HOST_RESULTS"
  fi
  [[ ! -s $OUT/prom-classified.txt ]] || sed 's/^/  prom| /' "$OUT/prom-classified.txt"
  touch "$OUT/share/promcheck.done"
}

host_port=$(free_port)
CONSOLE_LOG=$OUT/console.log CONTROL_LOG=$OUT/control.log QEMU_LOG=$OUT/qemu.log
: >"$CONSOLE_LOG"
: >"$CONTROL_LOG"
timeout_s=${HOST_TIMEOUT:-900}
log "booting $image under QEMU TCG + SVM (timeout $timeout_s s, exporter on 127.0.0.1:$host_port, console $CONSOLE_LOG, checks $CONTROL_LOG)"
boot_start=$SECONDS
# As the nested suite: one TCG thread (tests/e2e/README.md), an SVM CPU so
# that kvm_amd loads. The disk is the cached image, written to a snapshot.
timeout -k 10 "$timeout_s" qemu-system-x86_64 \
  -accel tcg,thread=single -cpu qemu64,+svm -m 3G -smp 2 \
  -nodefaults -display none -no-reboot \
  -serial "file:$CONSOLE_LOG" -serial "file:$CONTROL_LOG" \
  -kernel "$kernel" -initrd "$initrd" \
  -append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=auto" \
  -drive "file=$image/disk.raw,format=raw,if=virtio,snapshot=on" \
  -virtfs "local,path=$OUT/share,mount_tag=hostshare,security_model=none,id=hostshare" \
  -nic "user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:$host_port-:$GUEST_EXPORTER_PORT" \
  </dev/null >"$QEMU_LOG" 2>&1 &
qemu_pid=$!
promchecked=0 printed=0
while kill -0 "$qemu_pid" 2>/dev/null; do
  # Echo the guest's check lines as they come.
  lines=$(wc -l <"$CONTROL_LOG")
  if ((lines > printed)); then
    sed -n "$((printed + 1)),${lines}p" "$CONTROL_LOG" | tr -d '\r' | sed 's/^/  | /'
    printed=$lines
    [[ -n ${boot_s:-} ]] || boot_s=$((SECONDS - boot_start))
  fi
  if [[ $promchecked == 0 ]] && grep -aq '^E2E PROMCHECK' "$CONTROL_LOG"; then
    promchecked=1
    prom_check "$host_port"
  fi
  sleep 1
done
QEMU_STATUS=0
wait "$qemu_pid" || QEMU_STATUS=$?
tr -d '\r' <"$CONTROL_LOG" >"$CONTROL_LOG.txt"
sed -n "$((printed + 1)),\$p" "$CONTROL_LOG.txt" | sed 's/^/  | /'
log "guest ran $((SECONDS - boot_start)) s, ${boot_s:-?} s of them to boot to the control script"
[[ $promchecked == 1 ]] || echo "E2E FAIL prom_live_check: the guest never asked for it (E2E PROMCHECK)" >>"$HOST_RESULTS"
[[ ! -s $OUT/prom-live-check.log ]] || grep -E '^[0-9]+ passed' "$OUT/prom-live-check.log" | sed 's/^/  prom_live_check: /'
{ grep -a -E '^E2E (PASS|FAIL|SKIP) ' "$CONTROL_LOG.txt" || true; cat "$HOST_RESULTS"; } >"$OUT/results.txt"
emulator_failures=0
if [[ $QEMU_STATUS == 124 || $QEMU_STATUS == 137 ]]; then
  log "QEMU timed out after $timeout_s s; last console lines:"
  tail -n 30 "$CONSOLE_LOG" | tr -d '\r' | sed 's/^/  console| /'
  emulator_failures=1
elif [[ $QEMU_STATUS != 0 ]]; then
  log "QEMU exited with status $QEMU_STATUS: $(tail -n 5 "$QEMU_LOG" | tr '\n' ' ')"
  emulator_failures=1
fi
e2e_report "$OUT/results.txt" "$start" "$CONTROL_LOG.txt" "$emulator_failures"
