# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Helpers of the integration scripts that start the real daemon (source it):
# a scratch directory $work, background processes ($pids) killed on exit,
# PASS/FAIL lines with a closing tally, a free loopback port, and a wait for
# the daemon to serve. A caller may set `work` before sourcing.

work=${work:-$(mktemp -d /tmp/kvmexit-integration.XXXXXX)}
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

# wait_until_serving PORT: up to 10 s for /-/healthy to answer; fails at once
# if the last background process (${pids[-1]}) has exited.
wait_until_serving() {
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$1/-/healthy" >/dev/null 2>&1 && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
