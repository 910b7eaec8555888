# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Sourced by the host side of the VM suites (tests/e2e/run_e2e.sh,
# run_e2e_vmx.sh, tests/host/run_host.sh): a free port for the guest's
# forwarded exporter, and the closing report of a suite. The caller defines
# log and die.

# A loopback TCP port nobody listens on.
free_port() {
  local port tries=0
  while ((tries < 50)); do
    port=$((20000 + RANDOM % 30000))
    if ! ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
      printf '%s\n' "$port"
      return 0
    fi
    tries=$((tries + 1))
  done
  die "no free loopback port found"
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
