# shellcheck shell=dash
# SPDX-License-Identifier: Apache-2.0
# Big hosts (issue 29), sourced by svm/checks.sh and vmx/checks.sh after
# core_checks.sh. The suites that boot with `possible_cpus=384` (the
# E2E_POSSIBLE_CPUS of tests/e2e/CMakeLists.txt) size every per-CPU map as
# a 384-thread host does, with 1-2 CPUs online: their exact checks then
# prove the counting at that width, and these prove the width and its cost.
#   check_host_width       the kernel has the possible CPUs asked for
#   check_map_memory       the exporter's maps pin at most MAP_MEMORY_BUDGET
#   check_migrating_vcpus  a VM whose vCPU threads move between CPUs is exact

# 16 MiB: the budget of issue 29 for a 384-thread host, default config.
MAP_MEMORY_BUDGET=16777216

# possible_cpus -> the number of possible CPUs (/sys/devices/system/cpu/possible: "0-383")
possible_cpus() {
  awk -F- '{ print ($2 == "" ? $1 : $2) + 1 }' /sys/devices/system/cpu/possible
}

# check_host_width NAME: with possible_cpus=N on the kernel command line the
# kernel reports N possible CPUs (else the width checks would prove nothing)
check_host_width() {
  local want
  want=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^possible_cpus=//p')
  info "host width: $(possible_cpus) possible CPUs ($(cat /sys/devices/system/cpu/possible)), online CPUs: $(cat /sys/devices/system/cpu/online)"
  if [ -z "$want" ]; then
    skip "$1" "no possible_cpus= on the kernel command line: the width of the guest's $(nproc) CPUs"
    return 0
  fi
  expect_eq "$1" "possible CPUs with possible_cpus=$want" "$(possible_cpus)" "$want"
}

# map_memlock PID -> the sum of the memlock lines of PID's BPF map fds (the
# kernel's charge for each map: its estimate on 6.1, its usage on 6.4+)
map_memlock() {
  local info total=0 m
  for info in /proc/"$1"/fdinfo/*; do
    grep -q '^map_id:' "$info" 2>/dev/null || continue
    m=$(sed -n 's/^memlock:[[:space:]]*//p' "$info")
    total=$((total + ${m:-0}))
  done
  echo "$total"
}

# check_map_memory NAME: the running exporter's maps (default capacity)
# pin at most MAP_MEMORY_BUDGET bytes, whatever the width; prints each map's
# share so that a regression names its map
check_map_memory() {
  local total
  [ -n "$EXPORTER_PID" ] || return 0
  total=$(map_memlock "$EXPORTER_PID")
  # fdinfo names no map: type, value size and entries tell them apart.
  info "map memory at $(possible_cpus) possible CPUs: $total bytes pinned; by map (type/value_size/max_entries=memlock): $(
    for info in /proc/"$EXPORTER_PID"/fdinfo/*; do
      grep -q '^map_id:' "$info" 2>/dev/null || continue
      awk '/^map_type:/ { t = $2 } /^value_size:/ { v = $2 } /^max_entries:/ { e = $2 } /^memlock:/ { m = $2 }
        END { printf "%s/%s/%s=%s ", t, v, e, m }' "$info"
    done)"
  expect_cmp "$1" "$total" "<=" "$MAP_MEMORY_BUDGET" "BPF map memory (memlock of the exporter's map fds, bytes)"
}

# check_migrating_vcpus NAME IO0 IO1 CPUID: a 2-vCPU VM (IO0 and IO1 io
# exits, CPUID cpuid exits each) whose vCPU threads are moved to the other
# online CPU every 50 ms while they exit (each thread to the CPU the other
# just left): its kvm_vm_exits_total is exactly its workload, and the host
# totals rose exactly as the kernel's hist trigger counted. Needs two online
# CPUs (the Intel suite's Bochs has one).
check_migrating_vcpus() {
  local name=$1 vm="migrate$1" pid tid cpu=0 rounds=0 moved=0
  if [ "$(nproc)" -lt 2 ]; then
    skip "$name" "one online CPU ($(nproc)): no CPU to migrate to"
    return 0
  fi
  cross_snapshot "${name}0" || return 0
  vmm_start "$vm" --vcpus 2 --io "$2,$3" --cpuid "$4,$4"
  pid=$(vmm_pid "$vm")
  while kill -0 "$pid" 2>/dev/null && ! grep -q '^TEST_VMM \(DONE\|FAILED\)' "$(vmm_out "$vm")"; do
    for tid in /proc/"$pid"/task/*; do
      taskset -p -c "$cpu" "${tid##*/}" >/dev/null 2>&1 && moved=$((moved + 1))
      cpu=$((1 - cpu))
    done
    cpu=$((1 - cpu)) # next round: every thread to the CPU it did not have
    rounds=$((rounds + 1))
    sleep 0.05
  done
  vmm_wait "${name}_vmm" "$vm" || return 0
  settle
  if ! cross_snapshot "${name}1"; then
    vmm_stop "" "$vm"
    return 0
  fi
  vmm_stop "${name}_vmm" "$vm"
  info "$name: $rounds rounds of moves ($moved thread moves) while test_vmm ran: $(grep '^TEST_VMM' "$(vmm_out "$vm")")"
  expect_cmp "${name}_moved" "$rounds" ">=" 4 "rounds of vCPU thread moves during the VM's exits"
  check_exits "$name" kvm_vm_exits_total "" "$WORK/prom-${name}1" "vm=$vm;pid=$pid" \
    $(($2 + $3)) $(($4 * 2)) 2
  check_crosscheck "${name}_crosscheck" "${name}0" "${name}1"
}
