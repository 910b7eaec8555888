# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# The arm64 suite's boot (bash, host side), for lib/host.sh's e2e_main:
# qemu-system-aarch64 with TCG boots the image build_image.sh makes of arm64/
# twice, one boot after the other:
#   1. -M virt,virtualization=on (EL2, so the guest's built-in KVM has
#      /dev/kvm): every check of arm64/checks.sh;
#   2. -M virt, with e2e.nokvm=1 on the kernel command line (no EL2, no
#      /dev/kvm): only the no-KVM checks (nokvm_*).
# Both have a port forward from the host's loopback to the guest's exporter
# (E2E_HOST_PORT), like svm/boot.sh's, for a manual scrape; nothing here
# scrapes it. The two serial logs are merged into $SERIAL_LOG. Sourced by
# e2e_run for run_e2e_arm64.sh.

readonly NOKVM_TIMEOUT_S=${E2E_NOKVM_TIMEOUT:-180}

# qemu_arm64 LOG TIMEOUT_S MACHINE APPEND: one boot of $IMAGE until the guest
# powers off or TIMEOUT_S; returns QEMU's status (124: timed out)
qemu_arm64() {
  local log=$1 timeout_s=$2 machine=$3 append=$4 host_port status=0
  host_port=${E2E_HOST_PORT:-$(free_port)}
  log "booting $machine (timeout $timeout_s s, exporter on 127.0.0.1:$host_port, serial log $log)"
  : >"$log"
  timeout -k 10 "$timeout_s" qemu-system-aarch64 \
    -M "$machine" -cpu max -accel tcg -m 1G -smp "${E2E_QEMU_SMP:-2}" \
    -nodefaults -display none -no-reboot \
    -serial "file:$log" \
    -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initramfs.cpio.gz" \
    -append "console=ttyAMA0 panic=-1 quiet loglevel=3$append" \
    -nic "user,model=e1000,restrict=on,hostfwd=tcp:127.0.0.1:$host_port-:$GUEST_EXPORTER_PORT" \
    </dev/null >>"$QEMU_LOG" 2>&1 || status=$?
  return "$status"
}

# boot_guest: the image of arm64/, then both boots; sets EMULATOR_STATUS and
# NOKVM_STATUS and fills $SERIAL_LOG (the KVM boot's log, then the no-KVM
# boot's)
boot_guest() {
  local start
  IMAGE=$(E2E_VENDOR=arm64 "$SCRIPT_DIR/build_image.sh" "$OUT" "$VMM" "$EXPORTER") || die "build_image.sh failed"
  QEMU_LOG="$OUT/qemu.log" NOKVM_SERIAL_LOG="$OUT/serial-nokvm.log"
  : >"$QEMU_LOG"
  start=$(date +%s.%N)
  EMULATOR_STATUS=0
  qemu_arm64 "$SERIAL_LOG.kvm" "${E2E_TIMEOUT:-600}" virt,virtualization=on "" || EMULATOR_STATUS=$?
  KVM_BOOT_S=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  start=$(date +%s.%N)
  NOKVM_STATUS=0
  qemu_arm64 "$NOKVM_SERIAL_LOG" "$NOKVM_TIMEOUT_S" virt " e2e.nokvm=1" || NOKVM_STATUS=$?
  NOKVM_BOOT_S=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  cat "$SERIAL_LOG.kvm" "$NOKVM_SERIAL_LOG" >"$SERIAL_LOG"
}

# boot_results: each boot's time, and a failure for a boot that did not get
# to its E2E DONE (the merged log has two, one a boot)
boot_results() {
  local name log
  log "boot with KVM: $KVM_BOOT_S s, boot without KVM: $NOKVM_BOOT_S s (QEMU, boot and checks)"
  for name in kvm nokvm; do
    log=$SERIAL_LOG.kvm
    [[ $name == kvm ]] || log=$NOKVM_SERIAL_LOG
    if tr -d '\r' <"$log" | grep -aq '^E2E DONE'; then
      echo "E2E PASS boot_${name}_done" >>"$HOST_RESULTS"
    else
      echo "E2E FAIL boot_${name}_done: the guest never printed E2E DONE (see $log)" >>"$HOST_RESULTS"
    fi
  done
}

# boot_failures: QEMU exits 0 on the guest's poweroff; a timeout or any other
# status of either boot is a failure of its own (returns 1)
boot_failures() {
  local name status limit ok=0
  for name in kvm nokvm; do
    status=$EMULATOR_STATUS limit=${E2E_TIMEOUT:-600}
    [[ $name == kvm ]] || status=$NOKVM_STATUS limit=$NOKVM_TIMEOUT_S
    if [[ $status == 124 || $status == 137 ]]; then
      log "QEMU ($name boot) timed out after $limit s"
      ok=1
    elif [[ $status != 0 ]]; then
      log "QEMU ($name boot) exited with status $status: $(tail -n 5 "$QEMU_LOG" | tr '\n' ' ')"
      ok=1
    fi
  done
  return "$ok"
}
