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

APT_UPDATED=0
apt_update_once() {
  if [[ $APT_UPDATED == 0 ]]; then
    log "apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
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
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
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
