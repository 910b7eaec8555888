# Shared by the daemon-level test scripts (source it): a scratch directory
# $work, background pids to kill on exit ($pids), PASS/FAIL tallies and a
# free loopback port. The caller sets `work` before sourcing.
# shellcheck shell=bash
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "${work:?set work before sourcing test_lib.sh}"
}
trap cleanup EXIT

passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

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
