#!/usr/bin/env bash
# The real daemon on loopback: serves exposition that promtool accepts, rejects
# bad configs with a located message, keeps serving when it cannot attach, and
# shuts down cleanly on SIGTERM. Prints one line per check and a closing tally.
set -euo pipefail

exporter=${1:?usage: daemon_test.sh PATH_TO_kvm_exit_exporter}
# shellcheck source-path=SCRIPTDIR source=check_lib.sh
source "$(dirname "$0")/check_lib.sh"

command -v promtool >/dev/null || { echo "promtool missing: apt-get install prometheus"; exit 1; }
command -v curl >/dev/null || { echo "curl missing: apt-get install curl"; exit 1; }

# Starts the exporter in the background; waits until it answers or gives up.
start_exporter() {
  local log=$1
  shift
  "$exporter" "$@" >"$log" 2>&1 &
  pids+=($!)
  local port
  port=$(sed -n 's/.*--web.listen-address=127.0.0.1:\([0-9]*\).*/\1/p' <<<"$*")
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/-/healthy" >/dev/null 2>&1 && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# --- 1. default config: serves /metrics that promtool accepts ---------------
port=$(free_port)
if start_exporter "$work/default.log" --web.listen-address=127.0.0.1:"$port"; then
  curl -sf "http://127.0.0.1:$port/metrics" >"$work/metrics.txt"
  if lint=$(promtool check metrics <"$work/metrics.txt" 2>&1); then
    pass "promtool accepts /metrics"
  else
    fail "promtool accepts /metrics" "$lint"
  fi
  if grep -q '^kvm_exit_exporter_bpf_attached 1$' "$work/metrics.txt"; then
    pass "BPF program attached to kvm:kvm_exit"
    # Which hook auto chose, in the metrics and (with the reason) in the log.
    hook=$(sed -n 's/^kvm_exit_exporter_bpf_hook_info{hook="\([a-z_]*\)"} 1$/\1/p' "$work/metrics.txt")
    if { [ "$hook" = tp_btf ] || [ "$hook" = tracepoint ]; } &&
      grep -q "attached to kvm:kvm_exit ($hook" "$work/default.log"; then
      pass "hook $hook reported in metrics and log"
    else
      fail "hook reported" "hook_info '$hook'; $(grep -i 'attached' "$work/default.log")"
    fi
  elif [ ! -d /sys/kernel/tracing/events/kvm/kvm_exit ] && [ ! -d /sys/kernel/debug/tracing/events/kvm/kvm_exit ]; then
    echo "SKIP BPF program attached: this kernel has no kvm:kvm_exit tracepoint"
  else
    fail "BPF program attached to kvm:kvm_exit" "$(grep attached "$work/metrics.txt"; cat "$work/default.log")"
  fi
  for family in kvm_exits_total kvm_exit_exporter_build_info kvm_exit_exporter_map_capacity \
    kvm_exit_overflow_exits_total kvm_exit_exporter_scrape_duration_seconds; do
    if grep -q "^# TYPE $family " "$work/metrics.txt"; then pass "family $family present"; else fail "family $family present" "missing"; fi
  done
  if curl -s "http://127.0.0.1:$port/" | grep 'href="/metrics"' >/dev/null; then pass "landing page links to /metrics"; else fail "landing page" "no link"; fi
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nope")
  [ "$code" = 404 ] && pass "unknown path is 404" || fail "unknown path is 404" "got $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/metrics")
  [ "$code" = 405 ] && pass "POST is 405" || fail "POST is 405" "got $code"
  # grep -q would exit at its match and fail curl's write (exit 23) under pipefail.
  if curl -sf --compressed "http://127.0.0.1:$port/metrics" | grep '^kvm_exit_exporter_build_info' >/dev/null; then
    pass "gzip response decodes"
  else
    fail "gzip response decodes" "no build_info in decoded body"
  fi
  # --- SIGTERM: exits 0 promptly ---
  pid=${pids[-1]}
  kill -TERM "$pid"
  rc=0
  timeout 10 tail --pid="$pid" -f /dev/null || rc=$?
  wait "$pid" && status=0 || status=$?
  if [ "$rc" = 0 ] && [ "$status" = 0 ] && grep -q 'shutting down' "$work/default.log"; then
    pass "SIGTERM shuts down cleanly"
  else
    fail "SIGTERM shuts down cleanly" "timeout rc=$rc exit=$status"
  fi
else
  fail "exporter starts with the embedded default config" "$(cat "$work/default.log")"
fi

# --- 2. attach impossible: keeps serving, attached=0, reason in the log -----
mkdir -p "$work/empty-tracefs/events"
cat >"$work/noattach.yml" <<YAML
kernel:
  tracefs_path: $work/empty-tracefs
  attach_retry_interval: 200ms
YAML
port=$(free_port)
if start_exporter "$work/noattach.log" --config.file="$work/noattach.yml" --web.listen-address=127.0.0.1:"$port"; then
  sleep 1
  body=$(curl -sf "http://127.0.0.1:$port/metrics" || true)
  if grep -q '^kvm_exit_exporter_bpf_attached 0$' <<<"$body" && promtool check metrics <<<"$body" >/dev/null 2>&1; then
    pass "serves valid /metrics with attached=0 when attaching is impossible"
  else
    fail "serves with attached=0" "$(head -c 400 <<<"$body")"
  fi
  attempts=$(sed -n 's/^kvm_exit_exporter_errors_total{kind="attach"} \([0-9]*\)$/\1/p' <<<"$body")
  if [ "${attempts:-0}" -ge 2 ]; then pass "attach is retried ($attempts attempts)"; else fail "attach is retried" "attempts=${attempts:-none}"; fi
  if grep -q 'kvm module is not loaded' "$work/noattach.log"; then pass "log says why attaching failed"; else fail "log says why" "$(cat "$work/noattach.log")"; fi
else
  fail "exporter starts when attaching is impossible" "$(cat "$work/noattach.log")"
fi

# --- 3. bad configs: non-zero exit with a located, actionable message --------
check_bad_config() {
  local name=$1 yaml=$2 expected=$3
  printf '%s\n' "$yaml" >"$work/bad.yml"
  local out rc=0
  out=$(timeout 10 "$exporter" --config.file="$work/bad.yml" --web.listen-address=127.0.0.1:0 2>&1) || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qF -- "$expected" <<<"$out"; then
    pass "bad config rejected: $name"
  else
    fail "bad config rejected: $name" "exit $rc, output: $out"
  fi
}
check_bad_config "unknown key" $'web:\n  listen_adress: ":1"' "bad.yml:2:3"
check_bad_config "wrong type" $'collector:\n  per_vcpu: maybe' "bad.yml:2:13"
check_bad_config "out of range" $'collector:\n  vm_map_capacity: 3' "vm_map_capacity"
check_bad_config "bad duration" $'rates:\n  window: 10x' "invalid duration"
out=$("$exporter" --config.file="$work/does-not-exist.yml" 2>&1) && rc=0 || rc=$?
if [ "$rc" -ne 0 ] && grep -q "does-not-exist.yml" <<<"$out"; then pass "missing config file is a clear error"; else fail "missing config file" "exit $rc: $out"; fi
out=$("$exporter" --web.listen-address=nonsense 2>&1) && rc=0 || rc=$?
if [ "$rc" -eq 1 ] && grep -q "nonsense" <<<"$out"; then pass "bad --web.listen-address is a clear error, exit 1"; else fail "bad listen flag" "exit $rc: $out"; fi
out=$("$exporter" --no-such-flag 2>&1) && rc=0 || rc=$?
if [ "$rc" -eq 1 ] && grep -q "no-such-flag" <<<"$out"; then pass "unknown flag is a clear error, exit 1"; else fail "unknown flag" "exit $rc: $out"; fi
out=$("$exporter" --version 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && grep -q "^kvm_exit_exporter [0-9]" <<<"$out"; then pass "--version"; else fail "--version" "$out"; fi

# --- 4. port already in use: clear error, non-zero exit ----------------------
port=$(free_port)
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$port)); s.listen(); time.sleep(15)" &
pids+=($!)
sleep 0.5
out=$(timeout 10 "$exporter" --web.listen-address=127.0.0.1:"$port" 2>&1) && rc=0 || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "cannot listen on 127.0.0.1:$port" <<<"$out"; then
  pass "port in use is a clear error"
else
  fail "port in use is a clear error" "exit $rc: $out"
fi

tally daemon
