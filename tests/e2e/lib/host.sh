# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# The host side the VM suites share (bash). Sourced by both runners
# (run_e2e.sh and run_e2e_vmx.sh: e2e_run, with their vendor's boot from
# svm/boot.sh or vmx/boot.sh), by build_image.sh (ensure_packages) and by
# tests/host/run_host.sh (free_port, e2e_report). log and die say $RUNNER; a
# caller that defines its own after sourcing this keeps them.

: "${RUNNER:=e2e}"
log() { printf '%s: %s\n' "$RUNNER" "$*"; }
die() { printf '%s: error: %s\n' "$RUNNER" "$*" >&2; exit 1; }

# ---- Debian packages ---------------------------------------------------------------

# apt_serialized COMMAND...: runs COMMAND holding this host's test apt lock.
# ctest -j2 runs two suites at once (tests/CMakeLists.txt), and apt does not
# wait for a lock another apt-get holds: it fails.
apt_serialized() {
  flock -w 600 /run/lock/kvm-exit-exporter-tests-apt "$@"
}

APT_UPDATED=0
apt_update_once() {
  if [[ $APT_UPDATED == 0 ]]; then
    log "apt-get update"
    apt_serialized apt-get update -qq >&2 || die "apt-get update failed"
    APT_UPDATED=1
  fi
}

# ensure_packages PKG...: installs those that are not installed (apt's output
# goes to stderr: build_image.sh's stdout is its result)
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [[ ${#missing[@]} == 0 ]] && return 0
  log "installing ${missing[*]}"
  apt_update_once
  apt_serialized env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
}

# ---- Ports and the closing report --------------------------------------------------

# A loopback TCP port no socket uses, outside the kernel's ephemeral range:
# a random port there can be the local end of any outgoing connection, which
# no listener check sees, and QEMU's hostfwd then fails to bind it (a CI run
# lost its whole 6.1 suite so: "Could not set up host forwarding rule").
free_port() {
  local port tries=0 low=32768 high=60999
  read -r low high </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  while ((tries < 100)); do
    port=$((10000 + RANDOM % 20000))
    if ((port < low || port > high)) && ! ss -Htan "sport = :$port" 2>/dev/null | grep -q .; then
      printf '%s\n' "$port"
      return 0
    fi
    tries=$((tries + 1))
  done
  die "no free loopback port found outside the ephemeral range $low-$high"
}

# e2e_report RESULTS START SERIAL_TXT EMULATOR_FAILURES: prints every check,
# the wall time since START and `N passed, N failed[, N skipped]`; returns 1
# unless every check passed, the guest printed E2E DONE in SERIAL_TXT and the
# caller counted no emulator failure (timeout, crash) it already logged.
e2e_report() {
  local results=$1 start=$2 serial=$3 emulator_failures=$4 passed failed skipped ok=1
  cat "$results"
  passed=$(grep -c '^E2E PASS ' "$results" || true)
  failed=$(($(grep -c '^E2E FAIL ' "$results" || true) + emulator_failures))
  skipped=$(grep -c '^E2E SKIP ' "$results" || true)
  ((emulator_failures == 0)) || ok=0
  if ! grep -aq '^E2E DONE' "$serial"; then
    log "the guest never printed E2E DONE; last lines of $serial:"
    tail -n 30 "$serial" | sed 's/^/  | /'
    failed=$((failed + 1)) ok=0
  fi
  if ((passed == 0)); then
    log "no check passed"
    ok=0
  fi
  ((failed == 0)) || ok=0
  log "wall time $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s (image build, boot and checks)"
  if ((skipped > 0)); then
    echo "$passed passed, $failed failed, $skipped skipped"
  else
    echo "$passed passed, $failed failed"
  fi
  ((ok == 1))
}

# ---- What the guest asks of the host ----------------------------------------------
# The guest's exporter is reached through the emulator's user networking
# (QEMU's -nic user, Bochs's slirp): GUEST_EXPORTER_PORT and GUEST_ACK_PORT
# (lib/common.sh's EXPORTER_PORT, HOST_ACK_PORT) forwarded from loopback.

# shellcheck disable=SC2034 # read by the vendors' boot.sh and tests/host/run_host.sh
readonly GUEST_EXPORTER_PORT=9756 GUEST_ACK_PORT=9757

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

# host_check NAME ACK_PORT LOG COMMAND...: runs a host-side check of the
# guest's exporter (COMMAND's output in LOG, shown prefixed), appends its
# E2E line to $HOST_RESULTS and tells the guest to go on.
host_check() {
  local name=$1 ack_port=$2 out=$3 status=0 summary
  shift 3
  "$@" >"$out" 2>&1 || status=$?
  sed "s/^/  $name| /" "$out"
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
  if [[ $status == 0 ]]; then
    echo "E2E PASS $name" >>"$HOST_RESULTS"
  else
    echo "E2E FAIL $name: exited with status $status (${summary:-no summary}): $(grep -E '^FAIL ' "$out" | head -n 10 | tr '\n' '|') (see $out)" >>"$HOST_RESULTS"
  fi
  ack_guest "$ack_port" "$name: ${summary:-status $status}"
}

# The guest prints `E2E HOSTSCRAPE kvm_exits_total_io=N` while its exporter
# is idle: scrape it through the port forward, compare the io exits of
# HOST_ISA (exit code HOST_IO_CODE), and tell the guest to go on.
host_scrape() {
  local host_port=$1 ack_port=$2 expected=$3 metrics_file=$OUT/host-scrape.prom got
  if ! http_get "$host_port" /metrics >"$metrics_file" || ! grep -q '^kvm_exits_total' "$metrics_file"; then
    echo "E2E FAIL host_scrape_hostfwd: GET http://127.0.0.1:$host_port/metrics through the port forward returned no kvm_exits_total (see $metrics_file)" >>"$HOST_RESULTS"
  else
    got=$(awk -v isa="isa=\"$HOST_ISA\"" -v code="code=\"$HOST_IO_CODE\"" \
      '/^kvm_exits_total\{/ && index($0, isa) && index($0, code) { s += $NF } END { printf "%.0f\n", s }' "$metrics_file")
    if [[ $got == "$expected" ]]; then
      echo "E2E PASS host_scrape_hostfwd" >>"$HOST_RESULTS"
    else
      echo "E2E FAIL host_scrape_hostfwd: host sees kvm_exits_total io=$got, guest saw $expected" >>"$HOST_RESULTS"
    fi
  fi
  ack_guest "$ack_port" "host scrape done"
}

# guest_line PREFIX -> the first whole line of $SERIAL_LOG that starts with
# PREFIX, without its line end. The emulator writes the console a byte at a
# time: a line without its end yet can be cut short (a count missing digits,
# a list missing VMs). The guest's console ends each line with CR LF, and CR
# comes after the last byte of the text.
guest_line() {
  grep -a -m1 "^$1.*"$'\r' "$SERIAL_LOG" | tr -d '\r'
}

# answer_guest EMULATOR_PID HOST_PORT ACK_PORT: until the emulator ends,
# answers what the guest's serial log asks, each once:
#   E2E HOSTSCRAPE   host_scrape
#   E2E PROMCHECK    tests/monitoring/prom_live_check.sh: every dashboard
#                    query, variable and rule evaluated by Debian's Prometheus
#   E2E STORMCHECK   tests/monitoring/storm_live_check.sh: the shipped rules
#                    must name each storm VM's signature and no other (rate
#                    thresholds divided by STORM_RATE_DIVISOR, scrapes every
#                    STORM_SCRAPE_INTERVAL: the vendor's boot.sh sets them)
# Prometheus runs on this host's loopback only, scraping through the port
# forward.
answer_guest() {
  local pid=$1 host_port=$2 ack_port=$3 scraped=0 promchecked=0 stormchecked=0 line
  while kill -0 "$pid" 2>/dev/null; do
    if [[ $scraped == 0 ]] && line=$(guest_line 'E2E HOSTSCRAPE ') && [[ -n $line ]]; then
      scraped=1
      host_scrape "$host_port" "$ack_port" "${line##*kvm_exits_total_io=}"
    fi
    if [[ $promchecked == 0 ]] && [[ -n $(guest_line 'E2E PROMCHECK ') ]]; then
      promchecked=1
      log "Prometheus check of the guest's exporter at 127.0.0.1:$host_port (log $OUT/prom-live-check.log)"
      host_check prom_live_check "$ack_port" "$OUT/prom-live-check.log" \
        timeout -k 10 300 "$SCRIPT_DIR/../monitoring/prom_live_check.sh" "127.0.0.1:$host_port" "${E2E_PROM_SECONDS:-15}"
    fi
    if [[ $stormchecked == 0 ]] && line=$(guest_line 'E2E STORMCHECK ') && [[ -n $line ]]; then
      stormchecked=1
      log "Prometheus storm check of the guest's exporter at 127.0.0.1:$host_port, expecting ${line##*expect=} (log $OUT/storm-live-check.log)"
      host_check storm_live_check "$ack_port" "$OUT/storm-live-check.log" \
        env RATE_DIVISOR="${STORM_RATE_DIVISOR:-20}" PROM_SCRAPE_INTERVAL="${STORM_SCRAPE_INTERVAL:-1s}" \
        timeout -k 10 200 "$SCRIPT_DIR/../monitoring/storm_live_check.sh" "127.0.0.1:$host_port" "${line##*expect=}" 150
    fi
    sleep 0.5
  done
}

# ---- The runner ----------------------------------------------------------------------

# e2e_run VENDOR RUNNER EXPORTER_BINARY|'' VMM_BINARY|'' OUT_DIR: the suite of
# VENDOR (svm or vmx: its boot, VENDOR/boot.sh, then e2e_main), logging as
# RUNNER. SCRIPT_DIR is tests/e2e.
e2e_run() {
  SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  RUNNER=$2
  # shellcheck source=../svm/boot.sh
  . "$SCRIPT_DIR/$1/boot.sh"
  shift 2
  e2e_main "$@"
}

# e2e_main EXPORTER_BINARY|'' VMM_BINARY|'' OUT_DIR: one suite. The vendor's
# boot (svm/boot.sh or vmx/boot.sh) defines
#   boot_guest     builds the image (build_image.sh), boots it with a time
#                  limit; fills $SERIAL_LOG, may add lines to $HOST_RESULTS
#   boot_results   after the guest's log: what the host side checked or missed
#   boot_failures  says what went wrong with the emulator, if anything: returns
#                  1 when that is a failure of its own (a timeout, a crash)
# from EXPORTER (empty: the kernel checks only), VMM (empty: built from
# test_vmm.c) and OUT. Prints the guest's log, every check, then `N passed, N
# failed[, N skipped]`; returns 0 only when every check passed and the guest
# printed E2E DONE.
e2e_main() {
  if [[ $# != 3 ]]; then
    echo "usage: $RUNNER.sh EXPORTER_BINARY|'' VMM_BINARY|'' OUT_DIR" >&2
    exit 2
  fi
  local start status=0 emulator_failures=0
  # shellcheck disable=SC2034 # VMM: read by the vendor's boot_guest
  EXPORTER=$1 VMM=$2 OUT=$3
  start=$(date +%s.%N)
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  if [[ -n $EXPORTER && ! -x $EXPORTER ]]; then
    log "exporter '$EXPORTER' not found: running the kernel checks only"
    EXPORTER=
  fi
  SERIAL_LOG="$OUT/serial.log" HOST_RESULTS="$OUT/host-results.txt"
  : >"$HOST_RESULTS"
  boot_guest

  tr -d '\r' <"$SERIAL_LOG" >"$SERIAL_LOG.txt"
  # The guest's own log (results are printed below, after it).
  grep -a -v -E '^E2E (PASS|FAIL|SKIP|HOSTSCRAPE|PROMCHECK|STORMCHECK) |^$' "$SERIAL_LOG.txt" | sed 's/^/  | /' || true
  boot_results
  { grep -a -E '^E2E (PASS|FAIL|SKIP) ' "$SERIAL_LOG.txt" || true; cat "$HOST_RESULTS"; } >"$OUT/results.txt"
  boot_failures || emulator_failures=1
  e2e_report "$OUT/results.txt" "$start" "$SERIAL_LOG.txt" "$emulator_failures" || status=1
  return "$status"
}
