# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# The AMD (SVM) suite's boot (bash, host side), for lib/host.sh's e2e_main:
# QEMU with TCG and an SVM CPU boots the image build_image.sh makes of svm/,
# with port forwards through which the host scrapes the guest's exporter,
# runs Prometheus against it (tests/monitoring/prom_live_check.sh) and tells
# the guest it is done. Sourced by e2e_run for run_e2e.sh.

readonly GUEST_EXPORTER_PORT=9756 GUEST_ACK_PORT=9757 # lib/common.sh's EXPORTER_PORT, HOST_ACK_PORT

# http_get PORT PATH: body of an HTTP/1.0 GET to 127.0.0.1:PORT (curl-free).
http_get() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 20 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
    cat <&3' http_get "$1" "$2" | tr -d '\r' | awk 'body { print } /^$/ { body = 1 }'
}

# ack_guest PORT MESSAGE: tells the guest, waiting in host_ask, that the host is done
ack_guest() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && echo "$2" >&3' ack "$1" "$2" \
    || echo "$RUNNER: could not reach the guest's ack port $1" >&2
}

# The guest prints `E2E HOSTSCRAPE kvm_exits_total_io=N` while its exporter
# is idle: scrape it through the port forward, compare, and tell the guest to
# go on. Appends an E2E line to $HOST_RESULTS.
host_scrape() {
  local host_port=$1 ack_port=$2 expected=$3 metrics_file=$4 got
  if ! http_get "$host_port" /metrics >"$metrics_file" || ! grep -q '^kvm_exits_total' "$metrics_file"; then
    echo "E2E FAIL host_scrape_hostfwd: GET http://127.0.0.1:$host_port/metrics through QEMU hostfwd returned no kvm_exits_total (see $metrics_file)" >>"$HOST_RESULTS"
  else
    got=$(awk '/^kvm_exits_total\{/ && /isa="svm"/ && /code="123"/ { s += $NF } END { printf "%.0f\n", s }' "$metrics_file")
    if [[ $got == "$expected" ]]; then
      echo "E2E PASS host_scrape_hostfwd" >>"$HOST_RESULTS"
    else
      echo "E2E FAIL host_scrape_hostfwd: host sees kvm_exits_total io=$got, guest saw $expected" >>"$HOST_RESULTS"
    fi
  fi
  ack_guest "$ack_port" "host scrape done"
}

# The guest prints `E2E PROMCHECK ...` while a VM makes exits: Debian's
# Prometheus, on this host's loopback only, scrapes the guest's exporter
# through the port forward and every dashboard query, variable and rule is
# evaluated (tests/monitoring/prom_live_check.sh); then the guest is told to
# go on. Appends an E2E line to $HOST_RESULTS.
prom_check() {
  local host_port=$1 ack_port=$2 out=$OUT/prom-live-check.log status=0 summary
  log "Prometheus check of the guest's exporter at 127.0.0.1:$host_port (log $out)"
  timeout -k 10 300 "$SCRIPT_DIR/../monitoring/prom_live_check.sh" "127.0.0.1:$host_port" "${E2E_PROM_SECONDS:-15}" \
    >"$out" 2>&1 || status=$?
  sed 's/^/  prom| /' "$out"
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
  if [[ $status == 0 ]]; then
    echo "E2E PASS prom_live_check" >>"$HOST_RESULTS"
  else
    echo "E2E FAIL prom_live_check: prom_live_check.sh exited with status $status (${summary:-no summary}): $(grep -E '^FAIL ' "$out" | head -n 10 | tr '\n' '|') (see $out)" >>"$HOST_RESULTS"
  fi
  ack_guest "$ack_port" "prom_live_check: ${summary:-status $status}"
}

# boot_guest: the image of svm/, then QEMU until the guest powers off or
# E2E_TIMEOUT; sets EMULATOR_STATUS (124: timed out) and fills $SERIAL_LOG,
# answering the guest's HOSTSCRAPE and PROMCHECK on the way.
storm_check() {
  local host_port=$1 ack_port=$2 expect=$3 out=$OUT/storm-live-check.log status=0 summary
  log "Prometheus storm check of the guest's exporter at 127.0.0.1:$host_port, expecting $expect (log $out)"
  timeout -k 10 200 "$SCRIPT_DIR/../monitoring/storm_live_check.sh" "127.0.0.1:$host_port" "$expect" 150 \
    >"$out" 2>&1 || status=$?
  sed 's/^/  storm| /' "$out"
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
  if [[ $status == 0 ]]; then
    echo "E2E PASS storm_live_check" >>"$HOST_RESULTS"
  else
    echo "E2E FAIL storm_live_check: storm_live_check.sh exited with status $status (${summary:-no summary}): $(grep -E '^FAIL ' "$out" | head -n 10 | tr '\n' '|') (see $out)" >>"$HOST_RESULTS"
  fi
  ack_guest "$ack_port" "storm_live_check: ${summary:-status $status}"
}

boot_guest() {
  local image timeout_s=${E2E_TIMEOUT:-600} host_port ack_port qemu_pid scraped=0 promchecked=0 stormchecked=0 line
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
  while kill -0 "$qemu_pid" 2>/dev/null; do
    if [[ $scraped == 0 ]] && line=$(grep -a -m1 '^E2E HOSTSCRAPE ' "$SERIAL_LOG"); then
      scraped=1
      line=$(tr -d '\r' <<<"$line")
      host_scrape "$host_port" "$ack_port" "${line##*kvm_exits_total_io=}" "$OUT/host-scrape.prom"
    fi
    if [[ $promchecked == 0 ]] && grep -aq '^E2E PROMCHECK ' "$SERIAL_LOG"; then
      promchecked=1
      prom_check "$host_port" "$ack_port"
    fi
    if [[ $stormchecked == 0 ]] && line=$(grep -a -m1 '^E2E STORMCHECK ' "$SERIAL_LOG"); then
      stormchecked=1
      line=$(tr -d '\r' <<<"$line")
      storm_check "$host_port" "$ack_port" "${line##*expect=}"
    fi
    sleep 0.5
  done
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
    log "QEMU timed out after ${E2E_TIMEOUT:-600} s (serial log: $SERIAL_LOG)"
    return 1
  elif [[ $EMULATOR_STATUS != 0 ]]; then
    log "QEMU exited with status $EMULATOR_STATUS: $(tail -n 5 "$QEMU_LOG" | tr '\n' ' ')"
    return 1
  fi
}
