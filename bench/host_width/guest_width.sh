#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Guest side of run_host_width.sh, installed as /e2e/checks.sh (the e2e
# /init runs it with kvm_amd loaded, then powers off). Prints WIDTH lines:
# the width, what the exporter pins with its embedded default config and
# with exit handling time on, and scrape_bench's 1,000-VM row.
set -u
PORT=9756
WORK=/tmp/width
mkdir -p "$WORK"

# map_memlock PID: the sum of memlock over PID's map fds, as the e2e check
# map_memory_default sums it (the e2e image holds lib/ under /e2e).
# shellcheck source=../../tests/e2e/lib/host_width_checks.sh
. /e2e/host_width_checks.sh
meminfo_kib() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }

# measure LABEL [CONFIG_YAML]: starts the exporter (the embedded default
# config, or CONFIG_YAML), waits until it serves, prints one WIDTH line
measure() {
  local label=$1 args="" percpu0 pid i=0
  if [ -n "${2:-}" ]; then
    printf '%s\n' "$2" >"$WORK/$label.yaml"
    args="--config.file=$WORK/$label.yaml"
  fi
  sync
  percpu0=$(meminfo_kib Percpu)
  # shellcheck disable=SC2086 # no or one word
  /bin/kvm_exit_exporter $args --web.listen-address=127.0.0.1:$PORT >"$WORK/$label.log" 2>&1 &
  pid=$!
  while [ $i -lt 300 ]; do
    if wget -q -O "$WORK/$label.prom" "http://127.0.0.1:$PORT/metrics" 2>/dev/null &&
      grep -q '^kvm_exit_exporter_bpf_attached 1' "$WORK/$label.prom"; then
      break
    fi
    sleep 0.2
    i=$((i + 1))
  done
  if ! grep -q '^kvm_exit_exporter_bpf_attached 1' "$WORK/$label.prom" 2>/dev/null; then
    echo "WIDTH error $label: the exporter did not attach: $(tail -n 5 "$WORK/$label.log" | tr '\n' ' ')"
    kill "$pid" 2>/dev/null
    return 1
  fi
  echo "WIDTH exporter config=$label memlock_bytes=$(map_memlock "$pid") percpu_added_kib=$(($(meminfo_kib Percpu) - percpu0)) rss_kib=$(awk '/^VmRSS:/ { print $2 }' /proc/"$pid"/status) maps=$(grep -l '^map_id:' /proc/"$pid"/fdinfo/* 2>/dev/null | wc -l)"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null
  sleep 1 # map frees are deferred work
}

echo "WIDTH begin kernel=$(uname -r) possible_cpus=$(cat /sys/devices/system/cpu/possible) online=$(cat /sys/devices/system/cpu/online)"
measure default
measure timed "collector:
  exit_handling_time: true"
measure drilldown "collector:
  exit_handling_time: true
  drilldown: [io, msr, mmio, hypercall, userspace]"
/bin/scrape_bench "${WIDTH_SCRAPES:-20}" 1000 off >"$WORK/scrape.out" 2>&1
status=$?
sed 's/^/WIDTH scrape_bench| /' "$WORK/scrape.out"
echo "WIDTH end status=$status"
