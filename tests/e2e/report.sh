# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Sourced by run_e2e.sh and run_e2e_vmx.sh: the closing report of a suite.

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
