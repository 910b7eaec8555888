# shellcheck shell=bash
# Helpers of the integration scripts that start the real daemon, sourced by
# daemon_test.sh and web_tls_test.sh: a scratch directory and background
# processes cleaned up on exit, PASS/FAIL lines with a closing tally, and a
# free loopback port.

work=$(mktemp -d /tmp/kvmexit-integration.XXXXXX)
pids=() # background processes to kill on exit
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
# Prints "NAME: N passed, M failed"; fails when any check failed.
tally() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
