#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The real daemon on loopback: serves exposition that promtool accepts, rejects
# bad configs with a located message, keeps serving when it cannot attach,
# reloads its config on SIGHUP, logs and ignores SIGQUIT/SIGUSR1/SIGUSR2, and
# shuts down cleanly on SIGTERM. Prints one line per check and a closing tally.
set -euo pipefail

exporter=${1:?usage: daemon_test.sh PATH_TO_kvm_exit_exporter}
# shellcheck source-path=SCRIPTDIR source=test_lib.sh
source "$(dirname "$0")/test_lib.sh"

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
  wait_until_serving "$port"
}

# Waits up to 5 s for `text` (fixed string) in the log file.
wait_for_log() {
  local log=$1 text=$2
  for _ in $(seq 50); do
    grep -qF -- "$text" "$log" && return 0
    sleep 0.1
  done
  return 1
}

# The value of an unlabelled series in a scrape of `port`.
metric() {
  local port=$1 name=$2
  # Empty (not a failed script) when the exporter does not answer.
  curl -sf "http://127.0.0.1:$port/metrics" | sed -n "s/^$name \(.*\)$/\1/p" || true
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
  # --- SIGHUP without --config.file: nothing to reload, a successful no-op ---
  pid=${pids[-1]}
  kill -HUP "$pid" 2>/dev/null || true
  if wait_for_log "$work/default.log" "nothing to reload" && kill -0 "$pid" 2>/dev/null &&
    [ "$(metric "$port" kvm_exit_exporter_config_last_reload_successful)" = 1 ]; then
    pass "SIGHUP with the embedded default config: logged no-op, reload successful"
  else
    fail "SIGHUP with the embedded default config" "$(tail -3 "$work/default.log")"
  fi
  # --- SIGTERM: exits 0 promptly ---
  kill -TERM "$pid" 2>/dev/null || true
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

# --- 2b. SIGHUP reloads the config file; other signals are logged and ignored --
reload_yml="$work/reload.yml"
write_reload_config() {  # $1: extra YAML appended after the fixed part
  printf 'kernel:\n  tracefs_path: %s\n  attach_retry_interval: 200ms\n%s' \
    "$work/empty-tracefs" "$1" >"$reload_yml"
}
# Reloads with `yaml`; passes `check` when the log shows `text` and the reload
# metric is then `successful` (1 or 0).
reload_and_expect() {
  local check=$1 yaml=$2 text=$3 successful=$4
  write_reload_config "$yaml"
  kill -HUP "$pid" 2>/dev/null || true
  if wait_for_log "$work/reload.log" "$text" &&
    [ "$(metric "$port" kvm_exit_exporter_config_last_reload_successful)" = "$successful" ]; then
    pass "$check"
  else
    fail "$check" "$(tail -3 "$work/reload.log")"
  fi
}
write_reload_config $'vms:\n  max_vms: 1000\n'
port=$(free_port)
if start_exporter "$work/reload.log" --config.file="$reload_yml" --web.listen-address=127.0.0.1:"$port"; then
  pid=${pids[-1]}
  started_at=$(metric "$port" kvm_exit_exporter_config_last_reload_success_timestamp_seconds)
  if [ "$(metric "$port" kvm_exit_exporter_config_last_reload_successful)" = 1 ] &&
    awk -v t="${started_at:-0}" -v now="$(date +%s)" 'BEGIN { exit !(t > now - 60 && t <= now + 1) }'; then
    pass "reload metrics are set at start"
  else
    fail "reload metrics are set at start" "timestamp '${started_at}'"
  fi

  sleep 1.1  # the timestamp must be able to advance
  rules=$'  naming_rules:\n    - regex: \'-name guest=([a-z]+)\'\n      name: \'$1\'\n'
  # --web.listen-address is applied again: without it the reload would be refused.
  reload_and_expect "SIGHUP applies a valid change and names the changed keys" \
    $'vms:\n  max_vms: 5\n'"$rules" "configuration reloaded; changed: vms.max_vms, vms.naming_rules" 1
  reloaded_at=$(metric "$port" kvm_exit_exporter_config_last_reload_success_timestamp_seconds)
  if awk -v a="${started_at:-0}" -v b="${reloaded_at:-0}" 'BEGIN { exit !(b > a) }'; then
    pass "successful reload: timestamp advanced"
  else
    fail "successful reload metrics" "start ${started_at}, reload ${reloaded_at}"
  fi

  write_reload_config $'vms:\n  max_vms: lots\n'
  kill -HUP "$pid" 2>/dev/null || true
  if wait_for_log "$work/reload.log" "reload.yml:5:12" &&
    grep -F "reload.yml:5:12" "$work/reload.log" | grep -qF "running configuration is kept"; then
    pass "invalid file: reload refused with a located error"
  else
    fail "invalid file: located error" "$(tail -3 "$work/reload.log")"
  fi
  if kill -0 "$pid" 2>/dev/null &&
    [ "$(metric "$port" kvm_exit_exporter_config_last_reload_successful)" = 0 ] &&
    [ "$(metric "$port" kvm_exit_exporter_config_last_reload_success_timestamp_seconds)" = "$reloaded_at" ]; then
    pass "invalid file: keeps serving, metric 0, timestamp of the last success kept"
  else
    fail "invalid file: keeps serving with metric 0" "$(tail -3 "$work/reload.log")"
  fi

  reload_and_expect "restart-only key: reload refused, the log names web.telemetry_path" \
    $'web:\n  telemetry_path: /kvm\nvms:\n  max_vms: 5\n'"$rules" \
    "changed keys need a restart: web.telemetry_path;" 0
  # The config of the first reload is still the running one: reloading it changes nothing.
  reload_and_expect "failed reloads kept the running config (same file again changes nothing)" \
    $'vms:\n  max_vms: 5\n'"$rules" "configuration reloaded; changed: nothing" 1
  # Exposed histogram buckets only shape the text: applied live.
  reload_and_expect "collector.exit_handling_buckets is applied live" \
    $'collector:\n  exit_handling_buckets: {min: 100us, max: 100ms}\nvms:\n  max_vms: 5\n'"$rules" \
    "configuration reloaded; changed: collector.exit_handling_buckets" 1

  for signal in QUIT USR1 USR2; do
    kill -"$signal" "$pid" 2>/dev/null || true
    if wait_for_log "$work/reload.log" "received SIG$signal, ignored" && sleep 0.2 &&
      kill -0 "$pid" 2>/dev/null && curl -sf "http://127.0.0.1:$port/-/healthy" >/dev/null; then
      pass "SIG$signal is logged and ignored"
    else
      fail "SIG$signal is logged and ignored" "$(tail -3 "$work/reload.log")"
    fi
  done
else
  fail "exporter starts with a config file" "$(cat "$work/reload.log")"
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
check_bad_config "bucket range inverted" $'collector:\n  exit_handling_buckets: {min: 2ms, max: 1ms}' \
  "bad.yml:2:32: collector.exit_handling_buckets.min (2ms) must not exceed"
out=$("$exporter" --config.file="$work/does-not-exist.yml" 2>&1) && rc=0 || rc=$?
if [ "$rc" -ne 0 ] && grep -q "does-not-exist.yml" <<<"$out"; then pass "missing config file is a clear error"; else fail "missing config file" "exit $rc: $out"; fi
out=$("$exporter" --web.listen-address=nonsense 2>&1) && rc=0 || rc=$?
if [ "$rc" -eq 1 ] && grep -q "nonsense" <<<"$out"; then pass "bad --web.listen-address is a clear error, exit 1"; else fail "bad listen flag" "exit $rc: $out"; fi
out=$("$exporter" --no-such-flag 2>&1) && rc=0 || rc=$?
if [ "$rc" -eq 1 ] && grep -q "no-such-flag" <<<"$out"; then pass "unknown flag is a clear error, exit 1"; else fail "unknown flag" "exit $rc: $out"; fi
out=$("$exporter" --config.file 2>&1) && rc=0 || rc=$?
if [ "$rc" -eq 1 ] && grep -q "config.file" <<<"$out"; then pass "flag without its value is a clear error, exit 1"; else fail "flag without value" "exit $rc: $out"; fi

# --- 3b. --config.check refuses what would fail only at start, at once -------
# Runs `--config.check ARGS...`; expects exit 1 within 5 s and `expected` in the output.
check_refused() {
  local name=$1 expected=$2
  shift 2
  local out rc=0
  out=$(timeout 5 "$exporter" --config.check "$@" 2>&1) || rc=$?
  if [ "$rc" -eq 1 ] && grep -qF -- "$expected" <<<"$out"; then
    pass "config check refuses $name"
  else
    fail "config check refuses $name" "exit $rc (124 means it hung), output: $out"
  fi
}
mkfifo "$work/config.fifo"
check_refused "a FIFO as config file" "must be a regular file, but this is a FIFO" --config.file="$work/config.fifo"
check_refused "/dev/zero as config file" "but this is a character device" --config.file=/dev/zero
truncate -s 100M "$work/huge.yml"
check_refused "a 100 MB config file" "larger than the limit of 1048576 bytes" --config.file="$work/huge.yml"
printf 'web:\n  listen_address: "1.2.3.4.5:80"\n' >"$work/bad-ip.yml"
check_refused "listen host 1.2.3.4.5" 'bad-ip.yml:2:19: web.listen_address must be host:port' --config.file="$work/bad-ip.yml"
check_refused "a listen host that does not resolve" 'cannot resolve listen host "nohost.invalid"' --web.listen-address=nohost.invalid:80
python3 -c "print('[' * 100000)" >"$work/deep.yml"
check_refused "deeply nested YAML" "nested too deep (more than 499 levels)" --config.file="$work/deep.yml"
# yaml-cpp 0.7's LoadAll loops forever on a top-level ","; neither file may hang the check.
printf ',\n' >"$work/comma.yml"
check_refused "a config that is just ','" 'comma.yml:1:1: invalid YAML: unexpected ","' --config.file="$work/comma.yml"
check_refused "a web config that is just ','" 'comma.yml:1:1: invalid YAML: unexpected ","' --web.config.file="$work/comma.yml"
check_refused "a FIFO as web config file" "must be a regular file, but this is a FIFO" --web.config.file="$work/config.fifo"

out=$("$exporter" --version 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && grep -q "^kvm_exit_exporter [0-9]" <<<"$out"; then pass "--version"; else fail "--version" "$out"; fi

# --- 4. port already in use: says why, exits 1, never touched BPF ----------
port=$(free_port)
# SO_REUSEADDR: the port may still be in TIME_WAIT from a curl above (its
# ephemeral port), which fails a plain bind; a listening socket still keeps
# the exporter out.
python3 -c "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1',$port)); s.listen(); time.sleep(15)" &
pids+=($!)
# Until the holder listens (python can take over 0.5 s to start on a busy machine).
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
out=$(timeout 10 "$exporter" --web.listen-address=127.0.0.1:"$port" 2>&1) && rc=0 || rc=$?
if [ "$rc" -eq 1 ] && grep -q "cannot listen on 127.0.0.1:$port" <<<"$out" &&
  grep -qi "address already in use" <<<"$out"; then
  pass "port in use is a clear error, exit 1"
else
  fail "port in use is a clear error, exit 1" "exit $rc: $out"
fi
# The server binds before the BPF program is loaded, so a daemon that cannot
# serve logs no attach (and no failed attach) at all.
if grep -q "BPF program" <<<"$out"; then
  fail "port in use: BPF program never loaded" "$out"
else
  pass "port in use: BPF program never loaded"
fi

tally daemon
