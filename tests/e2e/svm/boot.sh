# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# The AMD (SVM) suite's boot (bash, host side), for lib/host.sh's e2e_main:
# QEMU with TCG and an SVM CPU boots the image build_image.sh makes of svm/,
# with port forwards through which the host scrapes the guest's exporter,
# runs Prometheus against it (tests/monitoring/prom_live_check.sh) and tells
# the guest it is done. Sourced by e2e_run for run_e2e.sh.

# host_scrape's io exits (lib/host.sh): SVM_EXIT_IOIO. The storm check's
# rate thresholds divided by 20: the five storm VMs share the emulator's
# ~18,000 exits/s (tests/monitoring/storm_live_check.sh).
# shellcheck disable=SC2034 # read by answer_guest and host_scrape (lib/host.sh)
readonly HOST_ISA=svm HOST_IO_CODE=123 STORM_RATE_DIVISOR=20 STORM_SCRAPE_INTERVAL=1s
# QEMU's time limit when E2E_TIMEOUT is unset: the 6.1 suite took about 620 s
# of guest time beside another suite (ctest -j2, tests/CMakeLists.txt), about
# 480 s alone.
readonly DEFAULT_TIMEOUT_S=900

# boot_guest: the image of svm/, then QEMU until the guest powers off or
# E2E_TIMEOUT; sets EMULATOR_STATUS (124: timed out) and fills $SERIAL_LOG,
# answering the guest's HOSTSCRAPE, PROMCHECK and STORMCHECK on the way
# (answer_guest).
boot_guest() {
  local image timeout_s=${E2E_TIMEOUT:-$DEFAULT_TIMEOUT_S} host_port ack_port qemu_pid
  image=$("$SCRIPT_DIR/build_image.sh" "$OUT" "$VMM" "$EXPORTER") || die "build_image.sh failed"
  QEMU_LOG="$OUT/qemu.log"
  host_port=${E2E_HOST_PORT:-$(free_port)}
  ack_port=$(free_port)
  [[ $ack_port != "$host_port" ]] || ack_port=$(free_port)
  log "booting the nested guest (timeout $timeout_s s, exporter on 127.0.0.1:$host_port, serial log $SERIAL_LOG)"
  : >"$SERIAL_LOG"
  # thread=single: with multi-threaded TCG, a guest whose 2-vCPU nested VM
  # runs on both guest CPUs at once hangs about once in 30 such VMs (both
  # CPUs stuck in the guest kernel, soft lockups); one TCG thread never did
  # in 80, and is no slower here.
  timeout -k 10 "$timeout_s" qemu-system-x86_64 \
    -accel tcg,thread=single -cpu qemu64,+svm -m 1G -smp "${E2E_QEMU_SMP:-2}" \
    -nodefaults -display none -no-reboot \
    -serial "file:$SERIAL_LOG" \
    -kernel "$image/vmlinuz" -initrd "$image/initramfs.cpio.gz" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 e2e.hostscrape=1${E2E_POSSIBLE_CPUS:+ possible_cpus=$E2E_POSSIBLE_CPUS}$([[ ${E2E_ONCE:-1} == 0 ]] || echo " e2e.once=1")" \
    -nic "user,model=e1000,restrict=on,hostfwd=tcp:127.0.0.1:$host_port-:$GUEST_EXPORTER_PORT,hostfwd=tcp:127.0.0.1:$ack_port-:$GUEST_ACK_PORT" \
    </dev/null >"$QEMU_LOG" 2>&1 &
  qemu_pid=$!
  answer_guest "$qemu_pid" "$host_port" "$ack_port"
  EMULATOR_STATUS=0
  wait "$qemu_pid" || EMULATOR_STATUS=$?
}

# boot_results: the host's checks the guest never asked for fail (they SKIP
# without an exporter)
boot_results() {
  local check marker
  for check in host_scrape_hostfwd:HOSTSCRAPE prom_live_check:PROMCHECK storm_live_check:STORMCHECK; do
    marker=${check#*:} check=${check%%:*}
    if [[ -z $EXPORTER ]]; then
      echo "E2E SKIP $check: no exporter binary" >>"$HOST_RESULTS"
    elif [[ $check != host_scrape_hostfwd && ${E2E_ONCE:-1} == 0 ]]; then
      echo "E2E SKIP $check: E2E_ONCE=0 (the 6.1 suite runs it)" >>"$HOST_RESULTS"
    elif ! grep -q " $check" "$HOST_RESULTS"; then
      echo "E2E FAIL $check: the guest never asked for it (E2E $marker)" >>"$HOST_RESULTS"
    fi
  done
}

# boot_failures: QEMU exits 0 on the guest's poweroff; a timeout or any other
# status is a failure of its own (returns 1)
boot_failures() {
  if [[ $EMULATOR_STATUS == 124 || $EMULATOR_STATUS == 137 ]]; then
    log "QEMU timed out after ${E2E_TIMEOUT:-$DEFAULT_TIMEOUT_S} s (serial log: $SERIAL_LOG)"
    return 1
  elif [[ $EMULATOR_STATUS != 0 ]]; then
    log "QEMU exited with status $EMULATOR_STATUS: $(tail -n 5 "$QEMU_LOG" | tr '\n' ' ')"
    return 1
  fi
}
