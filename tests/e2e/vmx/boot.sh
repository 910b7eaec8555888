# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# The Intel (VMX) suite's boot (bash, host side), for lib/host.sh's e2e_main:
# Bochs, which emulates VMX with EPT, boots the image build_image.sh makes of
# vmx/ from an ISOLINUX ISO (it cannot load a 64-bit bzImage directly).
# Sourced by e2e_run for run_e2e_vmx.sh.

# Bochs 2.7's tigerlake and corei7_icelake_u models hang during boot (XSAVE
# size mismatch); these two boot and offer VMX with EPT.
readonly DEFAULT_CPU=corei7_haswell_4770
# Bochs's time limit when E2E_VMX_TIMEOUT is unset: the suite took 1,070 s
# beside another suite (ctest -j2, tests/CMakeLists.txt), 773 s alone.
readonly DEFAULT_TIMEOUT_S=1800
# host_scrape's io exits (lib/host.sh; the guest does not ask for it here):
# IO_INSTRUCTION. The storm check's rate thresholds divided by STORM_RATE_DIVISOR
# and scrapes every STORM_SCRAPE_INTERVAL: Bochs's five storm VMs make far
# fewer exits than QEMU's, and a scrape takes the guest longer.
# shellcheck disable=SC2034 # read by answer_guest and host_scrape (lib/host.sh)
readonly HOST_ISA=vmx HOST_IO_CODE=30 STORM_RATE_DIVISOR=200 STORM_SCRAPE_INTERVAL=3s

build_iso() {
  local image=$1 iso_root=$2 iso=$3
  rm -rf "$iso_root" && mkdir -p "$iso_root/isolinux" "$iso_root/boot"
  cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$iso_root/isolinux/"
  cp "$image/vmlinuz" "$iso_root/boot/vmlinuz"
  cat "$image/initramfs.cpio.gz" ${E2E_VMX_EXTRA_INITRD:+"$E2E_VMX_EXTRA_INITRD"} >"$iso_root/boot/initrd.gz"
  # nokaslr, mitigations=off: less work at about 75 emulated MIPS.
  cat >"$iso_root/isolinux/isolinux.cfg" <<EOF
default e2e
prompt 0
timeout 0
label e2e
  kernel /boot/vmlinuz
  append initrd=/boot/initrd.gz console=ttyS0,115200 nokaslr mitigations=off panic=-1 quiet loglevel=3${E2E_POSSIBLE_CPUS:+ possible_cpus=$E2E_POSSIBLE_CPUS}${E2E_VMX_APPEND:+ $E2E_VMX_APPEND}
EOF
  xorriso -as mkisofs -quiet -o "$iso" -b isolinux/isolinux.bin -c isolinux/boot.cat \
    -no-emul-boot -boot-load-size 4 -boot-info-table "$iso_root" >/dev/null 2>&1 \
    || die "xorriso could not build $iso"
  rm -rf "$iso_root"
}

# write_slirp_conf HOST_PORT ACK_PORT: Bochs's slirp networking, as QEMU's
# `-nic user,restrict=on,hostfwd=...`: the guest's exporter and ack port
# forwarded from this host's loopback
write_slirp_conf() {
  cat <<EOF
# slirp config
restricted = 1
hostfwd = tcp:127.0.0.1:$1-:$GUEST_EXPORTER_PORT
hostfwd = tcp:127.0.0.1:$2-:$GUEST_ACK_PORT
EOF
}

write_bochsrc() {
  local iso=$1 serial=$2 bochs_log=$3 cpu=$4 slirp_conf=$5
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
  # The NIC only with an exporter to reach: bench/exit_cost's boots (no
  # exporter) keep the guest free of its interrupts.
  if [[ -n $slirp_conf ]]; then
    echo "pci: enabled=1, chipset=i440fx, slot1=e1000"
    echo "e1000: enabled=1, mac=52:54:00:12:34:56, ethmod=slirp, script=\"$slirp_conf\""
  fi
}

# boot_guest: the image of vmx/ (E2E_VMX_CHECKS, when set, as its
# checks.sh), its ISO, then Bochs until the guest powers off or
# E2E_VMX_TIMEOUT, answering the guest's STORMCHECK on the way
# (answer_guest); sets EMULATOR_STATUS (124: timed out) and fills $SERIAL_LOG.
boot_guest() {
  local image cpu=${E2E_VMX_CPU:-$DEFAULT_CPU} timeout_s=${E2E_VMX_TIMEOUT:-$DEFAULT_TIMEOUT_S} rc="$OUT/bochsrc" host_port ack_port bochs_pid
  ensure_packages bochs bochsbios vgabios isolinux syslinux-common xorriso
  image=$(E2E_VENDOR=vmx E2E_CHECKS=${E2E_VMX_CHECKS:-} "$SCRIPT_DIR/build_image.sh" "$OUT" "$VMM" "$EXPORTER") \
    || die "build_image.sh failed"
  build_iso "$image" "$OUT/iso-root" "$OUT/boot.iso"
  echo c >"$OUT/bochs-debugger.rc"
  host_port=${E2E_HOST_PORT:-$(free_port)}
  ack_port=$(free_port)
  [[ $ack_port != "$host_port" ]] || ack_port=$(free_port)
  rm -f "$OUT/slirp.conf"
  [[ -z $EXPORTER ]] || write_slirp_conf "$host_port" "$ack_port" >"$OUT/slirp.conf"
  write_bochsrc "$OUT/boot.iso" "$SERIAL_LOG" "$OUT/bochs.log" "$cpu" "${EXPORTER:+$OUT/slirp.conf}" >"$rc"
  log "booting Bochs ($cpu, timeout $timeout_s s, exporter on 127.0.0.1:$host_port, serial log $SERIAL_LOG)"
  : >"$SERIAL_LOG"
  EMULATOR_STATUS=0
  # The debugger built into Debian's bochs-bin stops at a prompt before it
  # runs: the -rc file says `c` (continue), stdin is empty. LC_ALL=C: under
  # a UTF-8 locale (LANG=C.UTF-8) Debian's Bochs 2.7 aborts at start-up with
  # "buffer overflow detected".
  (cd "$OUT" && LC_ALL=C exec timeout -k 10 "$timeout_s" bochs -q -f "$rc" -rc "$OUT/bochs-debugger.rc" </dev/null >"$OUT/bochs.out" 2>&1) &
  bochs_pid=$!
  answer_guest "$bochs_pid" "$host_port" "$ack_port"
  wait "$bochs_pid" || EMULATOR_STATUS=$?
}

# boot_results: the storm check fails when the guest never asked for it
# (SKIP without an exporter, or with other checks than vmx/checks.sh)
boot_results() {
  if grep -q " storm_live_check" "$HOST_RESULTS"; then
    return 0
  elif [[ -z $EXPORTER ]]; then
    echo "E2E SKIP storm_live_check: no exporter binary" >>"$HOST_RESULTS"
  elif [[ -n ${E2E_VMX_CHECKS:-} ]]; then
    echo "E2E SKIP storm_live_check: E2E_VMX_CHECKS runs other checks" >>"$HOST_RESULTS"
  else
    echo "E2E FAIL storm_live_check: the guest never asked for it (E2E STORMCHECK)" >>"$HOST_RESULTS"
  fi
}

# boot_failures: the guest's poweroff makes Bochs 2.7 exit with status 1
# (ACPI soft-off is reported as a panic), so only a timeout is a failure of
# its own (returns 1); without E2E DONE (e2e_report fails that) Bochs's last
# words help.
boot_failures() {
  local status=0
  if [[ $EMULATOR_STATUS == 124 || $EMULATOR_STATUS == 137 ]]; then
    log "Bochs timed out after ${E2E_VMX_TIMEOUT:-$DEFAULT_TIMEOUT_S} s (serial log: $SERIAL_LOG, Bochs log: $OUT/bochs.log)"
    status=1
  fi
  if ! grep -aq '^E2E DONE' "$SERIAL_LOG.txt"; then
    log "Bochs exited with status $EMULATOR_STATUS; last lines of $OUT/bochs.out:"
    grep -v '^ALSA' "$OUT/bochs.out" | tail -n 10 | sed 's/^/  | /'
  fi
  return "$status"
}
