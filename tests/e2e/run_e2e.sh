#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the nested end-to-end suite: boots QEMU (TCG, AMD SVM) on Debian's
# kernel with an initramfs whose /init loads kvm_amd and runs the checks of
# svm/checks.sh against real kvm:kvm_exit events, then reads the results
# from the serial console log.
#
# usage: run_e2e.sh EXPORTER_BINARY|'' VMM_BINARY|'' OUT_DIR
#   An empty VMM_BINARY builds tests/e2e/test_vmm.c with cc; an empty or
#   missing EXPORTER_BINARY runs only the kernel checks (exporter checks SKIP).
# Environment: E2E_TIMEOUT (seconds, default 600), E2E_HOST_PORT (host port
# forwarded to the exporter, default: a free one), E2E_QEMU_SMP (default 2).
# Output: every check, then `N passed, N failed[, N skipped]` alone on a line.
# Exit status: 0 only when every check passed and the guest printed E2E DONE
# before QEMU exited on its own.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
# shellcheck source-path=SCRIPTDIR source=lib/host.sh
. "$SCRIPT_DIR/lib/host.sh"
readonly GUEST_EXPORTER_PORT=9756 GUEST_ACK_PORT=9757

die() { printf 'run_e2e: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'run_e2e: %s\n' "$*"; }

usage() {
  echo "usage: run_e2e.sh EXPORTER_BINARY|'' VMM_BINARY|'' OUT_DIR" >&2
  exit 2
}

# http_get PORT PATH: body of an HTTP/1.0 GET to 127.0.0.1:PORT (curl-free).
http_get() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 20 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
    cat <&3' http_get "$1" "$2" | tr -d '\r' | awk 'body { print } /^$/ { body = 1 }'
}

# The guest prints `E2E HOSTSCRAPE kvm_exits_total_io=N` while its exporter
# is idle: scrape it through the port forward, compare, and tell the guest to
# go on by connecting to its ack port. Appends an E2E line to $HOST_RESULTS.
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
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && echo "host scrape done" >&3' ack "$ack_port" \
    || echo "run_e2e: could not reach the guest's ack port $ack_port" >&2
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
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && echo "$2" >&3' ack "$ack_port" "prom_live_check: ${summary:-status $status}" \
    || echo "run_e2e: could not reach the guest's ack port $ack_port" >&2
}

# Boots the guest; sets QEMU_STATUS (124: timed out) and fills $SERIAL_LOG.
boot_guest() {
  local image=$1 timeout_s=$2 host_port=$3 ack_port=$4 qemu_pid scraped=0 promchecked=0 line
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
    -append "console=ttyS0 panic=-1 quiet loglevel=3 e2e.hostscrape=1" \
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
    sleep 0.5
  done
  QEMU_STATUS=0
  wait "$qemu_pid" || QEMU_STATUS=$?
}

# Prints every check, the wall time and the closing line; returns 1 unless all is well.
report() {
  local emulator_failures=0
  if [[ $QEMU_STATUS == 124 || $QEMU_STATUS == 137 ]]; then
    log "QEMU timed out after ${E2E_TIMEOUT:-600} s (serial log: $SERIAL_LOG)"
    emulator_failures=1
  elif [[ $QEMU_STATUS != 0 ]]; then
    log "QEMU exited with status $QEMU_STATUS: $(tail -n 5 "$QEMU_LOG" | tr '\n' ' ')"
    emulator_failures=1
  fi
  e2e_report "$1" "$2" "$SERIAL_LOG.txt" "$emulator_failures"
}

main() {
  [[ $# == 3 ]] || usage
  local exporter=$1 vmm=$2 start image host_port ack_port status=0
  OUT=$3
  start=$(date +%s.%N)
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  if [[ -n $exporter && ! -x $exporter ]]; then
    log "exporter '$exporter' not found: running the kernel checks only"
    exporter=
  fi

  image=$("$SCRIPT_DIR/build_image.sh" "$OUT" "$vmm" "$exporter") || die "build_image.sh failed"
  SERIAL_LOG="$OUT/serial.log" QEMU_LOG="$OUT/qemu.log" HOST_RESULTS="$OUT/host-results.txt"
  : >"$HOST_RESULTS"
  host_port=${E2E_HOST_PORT:-$(free_port)}
  ack_port=$(free_port)
  [[ $ack_port != "$host_port" ]] || ack_port=$(free_port)
  log "booting the nested guest (timeout ${E2E_TIMEOUT:-600} s, exporter on 127.0.0.1:$host_port, serial log $SERIAL_LOG)"
  boot_guest "$image" "${E2E_TIMEOUT:-600}" "$host_port" "$ack_port"

  tr -d '\r' <"$SERIAL_LOG" >"$SERIAL_LOG.txt"
  # The guest's own log (results are printed below, after it).
  grep -a -v -E '^E2E (PASS|FAIL|SKIP|HOSTSCRAPE|PROMCHECK) |^$' "$SERIAL_LOG.txt" | sed 's/^/  | /' || true
  if [[ -z $exporter ]]; then
    echo "E2E SKIP host_scrape_hostfwd: no exporter binary" >>"$HOST_RESULTS"
    echo "E2E SKIP prom_live_check: no exporter binary" >>"$HOST_RESULTS"
  else
    if ! grep -q ' host_scrape_hostfwd' "$HOST_RESULTS"; then
      echo "E2E FAIL host_scrape_hostfwd: the guest never asked for the host scrape (E2E HOSTSCRAPE)" >>"$HOST_RESULTS"
    fi
    if ! grep -q ' prom_live_check' "$HOST_RESULTS"; then
      echo "E2E FAIL prom_live_check: the guest never asked for the Prometheus check (E2E PROMCHECK)" >>"$HOST_RESULTS"
    fi
  fi
  { grep -a -E '^E2E (PASS|FAIL|SKIP) ' "$SERIAL_LOG.txt" || true; cat "$HOST_RESULTS"; } >"$OUT/results.txt"
  report "$OUT/results.txt" "$start" || status=1
  return "$status"
}

main "$@"
