#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the Intel (VMX) end-to-end suite: Bochs, which emulates VMX with EPT,
# boots Debian's kernel from an ISOLINUX ISO; its /init loads kvm_intel and
# runs vmx/checks.sh against real VMX exits, then powers off. The results are
# read from the serial log.
#
# usage: run_e2e_vmx.sh EXPORTER_BINARY|'' VMM_BINARY|'' OUT_DIR
#   An empty VMM_BINARY builds tests/e2e/test_vmm.c with cc; an empty or
#   missing EXPORTER_BINARY runs only the kernel checks (exporter checks SKIP).
# Environment: E2E_VMX_TIMEOUT (seconds, default 900), E2E_VMX_CPU (Bochs CPU
# model, default corei7_haswell_4770). For bench/exit_cost's VMX runner (all
# empty by default, and then unused): E2E_VMX_CHECKS (a script installed as
# /e2e/vmx/checks.sh instead of vmx/checks.sh), E2E_VMX_EXTRA_INITRD (an
# archive appended to the initramfs after the overlay), E2E_VMX_APPEND (words
# added to the kernel command line).
# Output: every check, then `N passed, N failed[, N skipped]` alone on a line.
# Exit status: 0 only when every check passed and the guest printed E2E DONE.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
# shellcheck source-path=SCRIPTDIR source=lib/host.sh
. "$SCRIPT_DIR/lib/host.sh"
# Bochs 2.7's tigerlake and corei7_icelake_u models hang during boot (XSAVE
# size mismatch); these two boot and offer VMX with EPT.
readonly DEFAULT_CPU=corei7_haswell_4770
# The guest's insmod order; build_image.sh copies kvm-intel into the image
# when asked through E2E_EXTRA_MODULES.
readonly VMX_MODULE_ORDER=(irqbypass.ko kvm.ko kvm-intel.ko)

die() { printf 'run_e2e_vmx: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'run_e2e_vmx: %s\n' "$*"; }

usage() {
  echo "usage: run_e2e_vmx.sh EXPORTER_BINARY|'' VMM_BINARY|'' OUT_DIR" >&2
  exit 2
}

# Debian packages of this suite (build_image.sh installs the shared ones).
ensure_packages() {
  local missing=() pkg
  for pkg in bochs bochsbios vgabios isolinux syslinux-common xorriso; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [[ ${#missing[@]} == 0 ]] && return 0
  log "installing ${missing[*]}"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
}

# The VMX initramfs is the QEMU suite's image plus an overlay archive: the
# kernel unpacks concatenated cpio archives in order, later files replacing
# earlier ones, so /init, the module order and the checks are swapped in.
build_overlay() {
  local image=$1 root=$2
  rm -rf "$root" && mkdir -p "$root/e2e/vmx" "$root/lib/modules/e2e"
  cp "$SCRIPT_DIR/vmx/init.sh" "$root/init"
  cp "${E2E_VMX_CHECKS:-$SCRIPT_DIR/vmx/checks.sh}" "$root/e2e/vmx/checks.sh"
  chmod 0755 "$root/init" "$root/e2e/vmx/checks.sh"
  printf '%s\n' "${VMX_MODULE_ORDER[@]}" >"$root/lib/modules/e2e/order"
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --quiet) \
    | gzip -1 >"$image/overlay.cpio.gz"
  rm -rf "$root"
}

# An ISOLINUX ISO: Bochs cannot load a 64-bit bzImage directly.
build_iso() {
  local image=$1 iso_root=$2 iso=$3
  rm -rf "$iso_root" && mkdir -p "$iso_root/isolinux" "$iso_root/boot"
  cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$iso_root/isolinux/"
  cp "$image/vmlinuz" "$iso_root/boot/vmlinuz"
  cat "$image/initramfs.cpio.gz" "$image/overlay.cpio.gz" ${E2E_VMX_EXTRA_INITRD:+"$E2E_VMX_EXTRA_INITRD"} \
    >"$iso_root/boot/initrd.gz"
  # nokaslr, mitigations=off: less work at about 75 emulated MIPS.
  cat >"$iso_root/isolinux/isolinux.cfg" <<EOF
default e2e
prompt 0
timeout 0
label e2e
  kernel /boot/vmlinuz
  append initrd=/boot/initrd.gz console=ttyS0,115200 nokaslr mitigations=off panic=-1 quiet loglevel=3${E2E_VMX_APPEND:+ $E2E_VMX_APPEND}
EOF
  xorriso -as mkisofs -quiet -o "$iso" -b isolinux/isolinux.bin -c isolinux/boot.cat \
    -no-emul-boot -boot-load-size 4 -boot-info-table "$iso_root" >/dev/null 2>&1 \
    || die "xorriso could not build $iso"
  rm -rf "$iso_root"
}

write_bochsrc() {
  local iso=$1 serial=$2 bochs_log=$3 cpu=$4
  # rfb with timeout=0: Debian's Bochs has no nogui; rfb runs headless without
  # waiting for a viewer. ignore_bad_msrs: the guest kernel probes MSRs the
  # CPU model lacks. ips: with clock sync=none the guest's clock advances
  # one second per `ips` instructions; near the real speed (about 75 MIPS
  # unloaded) the guest's timeouts (exporter start-up, scrapes) keep the
  # meaning they have on hardware, where Bochs's default of 4 M would make
  # them 20 times shorter.
  cat <<EOF
megs: 768
cpu: model=$cpu, count=1, ips=50000000, ignore_bad_msrs=1
clock: sync=none
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
ata0-master: type=cdrom, path="$iso", status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev="$serial"
display_library: rfb, options="timeout=0"
log: $bochs_log
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
EOF
}

# Boots Bochs; sets BOCHS_STATUS (124: timed out). The guest's poweroff makes
# Bochs 2.7 exit with status 1 (ACPI soft-off is reported as a panic): the
# serial log's E2E DONE, not the status, tells a finished run.
boot_guest() {
  local rc=$1 timeout_s=$2
  : >"$SERIAL_LOG"
  BOCHS_STATUS=0
  # The debugger built into Debian's bochs-bin stops at a prompt before it
  # runs: the -rc file says `c` (continue), stdin is empty. LC_ALL=C: under
  # a UTF-8 locale (LANG=C.UTF-8) Debian's Bochs 2.7 aborts at start-up with
  # "buffer overflow detected".
  (cd "$OUT" && LC_ALL=C timeout -k 10 "$timeout_s" bochs -q -f "$rc" -rc "$DEBUGGER_RC" </dev/null >"$OUT/bochs.out" 2>&1) \
    || BOCHS_STATUS=$?
}

# Prints every check, the wall time and the closing line; returns 1 unless all is well.
report() {
  local emulator_failures=0
  if [[ $BOCHS_STATUS == 124 || $BOCHS_STATUS == 137 ]]; then
    log "Bochs timed out after ${E2E_VMX_TIMEOUT:-900} s (serial log: $SERIAL_LOG, Bochs log: $OUT/bochs.log)"
    emulator_failures=1
  fi
  if ! grep -aq '^E2E DONE' "$SERIAL_LOG.txt"; then
    log "Bochs exited with status $BOCHS_STATUS; last lines of $OUT/bochs.out:"
    grep -v '^ALSA' "$OUT/bochs.out" | tail -n 10 | sed 's/^/  | /'
  fi
  e2e_report "$1" "$2" "$SERIAL_LOG.txt" "$emulator_failures"
}

main() {
  [[ $# == 3 ]] || usage
  local exporter=$1 vmm=$2 start image status=0
  OUT=$3
  start=$(date +%s.%N)
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  if [[ -n $exporter && ! -x $exporter ]]; then
    log "exporter '$exporter' not found: running the kernel checks only"
    exporter=
  fi
  ensure_packages
  image=$(E2E_EXTRA_MODULES=arch/x86/kvm/kvm-intel "$SCRIPT_DIR/build_image.sh" "$OUT" "$vmm" "$exporter") \
    || die "build_image.sh failed"
  build_overlay "$image" "$OUT/overlay-root"
  build_iso "$image" "$OUT/iso-root" "$OUT/boot.iso"

  SERIAL_LOG="$OUT/serial.log"
  DEBUGGER_RC="$OUT/bochs-debugger.rc"
  echo c >"$DEBUGGER_RC"
  write_bochsrc "$OUT/boot.iso" "$SERIAL_LOG" "$OUT/bochs.log" "${E2E_VMX_CPU:-$DEFAULT_CPU}" >"$OUT/bochsrc"
  log "booting Bochs (${E2E_VMX_CPU:-$DEFAULT_CPU}, timeout ${E2E_VMX_TIMEOUT:-900} s, serial log $SERIAL_LOG)"
  boot_guest "$OUT/bochsrc" "${E2E_VMX_TIMEOUT:-900}"

  tr -d '\r' <"$SERIAL_LOG" >"$SERIAL_LOG.txt"
  grep -a -v -E '^E2E (PASS|FAIL|SKIP) |^$' "$SERIAL_LOG.txt" | sed 's/^/  | /' || true
  grep -a -E '^E2E (PASS|FAIL|SKIP) ' "$SERIAL_LOG.txt" >"$OUT/results.txt" || true
  report "$OUT/results.txt" "$start" || status=1
  return "$status"
}

main "$@"
