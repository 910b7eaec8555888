#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Least privilege (docs/security.md), measured on the real daemon:
#   as root: once serving, every thread holds exactly the documented
#     capabilities (CapEff = CapPrm = CapBnd, nothing inheritable or ambient,
#     no_new_privs), and with only those it still
#     - attaches when kvm:kvm_exit appears after the start (the retry path),
#     - names a VMM process owned by another uid from its /proc files,
#     - reads the BPF maps, and deletes an ended VM's entries from them,
#     - serves /metrics that promtool accepts, with no command-line secret in it;
#   as a non-root user with ambient capabilities (a systemd unit): keeps only
#     the documented non-root set, clears the ambient set, still attaches.
# The late kvm is simulated with kernel.tracefs_path: a symlink to an empty
# tree, switched to the real tracefs while the daemon runs. The VM's exits are
# written into the daemon's own map with bpftool, as the BPF program would.
set -euo pipefail

exporter=${1:?usage: least_privilege_test.sh PATH_TO_kvm_exit_exporter PATH_TO_kvmexit_fake_vmm}
fake_vmm=${2:?usage: least_privilege_test.sh PATH_TO_kvm_exit_exporter PATH_TO_kvmexit_fake_vmm}

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 0; }
for tool in curl promtool bpftool setpriv python3; do
  command -v "$tool" >/dev/null || { echo "$tool missing (scripts/install_deps.sh)"; exit 1; }
done
tracefs=/sys/kernel/tracing
if [ ! -d "$tracefs/events/kvm/kvm_exit" ]; then
  echo "SKIP: this kernel has no kvm:kvm_exit tracepoint under $tracefs"
  exit 0
fi

work=$(mktemp -d /tmp/kvmexit-privilege-test.XXXXXX)
chmod 755 "$work"
# shellcheck source-path=SCRIPTDIR source=test_lib.sh
source "$(dirname "$0")/test_lib.sh"
# Capability bit numbers (linux/capability.h).
readonly CAP_DAC_READ_SEARCH=2 CAP_SYS_PTRACE=19 CAP_PERFMON=38 CAP_BPF=39
mask() {
  local bits=0 cap
  for cap in "$@"; do bits=$((bits | (1 << cap))); done
  printf '%016x' "$bits"
}
# The documented set (docs/security.md) for kernel.hook auto: CAP_BPF and
# CAP_PERFMON, whatever kernel.perf_event_paranoid is (a later attach without
# CAP_SYS_ADMIN uses raw_tp, which opens no perf event).
root_caps=("$CAP_BPF" "$CAP_PERFMON")

# status_field PID FIELD: that line of /proc/PID/status, value only.
status_field() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status"; }

# check_threads NAME PID EFF_PRM BND: every thread's sets, not only the main one's.
check_threads() {
  local name=$1 pid=$2 eff=$3 bnd=$4 task bad=""
  for task in /proc/"$pid"/task/*; do
    local tid=${task##*/}
    local got
    got="$(status_field "$pid/task/$tid" CapEff) $(status_field "$pid/task/$tid" CapPrm)"
    got+=" $(status_field "$pid/task/$tid" CapBnd) $(status_field "$pid/task/$tid" CapInh)"
    got+=" $(status_field "$pid/task/$tid" CapAmb) $(status_field "$pid/task/$tid" NoNewPrivs)"
    [ "$got" = "$eff $eff $bnd 0000000000000000 0000000000000000 1" ] || bad+=" tid $tid: $got;"
  done
  if [ -z "$bad" ]; then
    pass "$name: every thread has CapEff=CapPrm=$eff CapBnd=$bnd, no inheritable/ambient, no_new_privs"
  else
    fail "$name: capabilities (want Eff=Prm=$eff Bnd=$bnd Inh=Amb=0 NoNewPrivs=1)" "$bad"
  fi
}

# start_exporter LOG PORT [prefix command...] -- exporter args: waits until it serves.
start_exporter() {
  local log=$1 port=$2
  shift 2
  "$@" >"$log" 2>&1 &
  pids+=($!)
  wait_until_serving "$port"
}

metric() { curl -sf "http://127.0.0.1:$1/metrics"; }
# Callers grep without -q: grep -q exits at its match, which fails curl's write
# (exit 23) and so the whole pipeline under pipefail, whatever matched.

# wait_for PORT REGEX: up to 10 s for a /metrics line matching REGEX.
wait_for() {
  for _ in $(seq 100); do
    metric "$1" | grep -E "$2" >/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# --- A VMM of another user, with secrets on its command line -----------------
# Run as nobody, as libvirt runs QEMU as libvirt-qemu.
secret=hunter2-$$
# shellcheck disable=SC2016 # expanded by the inner bash
setpriv --reuid=65534 --regid=65534 --clear-groups -- \
  bash -c 'exec -a qemu-system-x86_64 "$0" "$@"' "$fake_vmm" \
  -name guest=lp-probe,debug-threads=on -uuid 0b7e1c52-6f0e-4c7a-9d51-3a2f8e9b4c10 \
  -object "secret,id=sec0,data=$secret" -vnc ":0,password=on" \
  -spice "port=5901,password=$secret" &
vmm=$!
pids+=("$vmm")
sleep 0.3
[ "$(stat -c %u "/proc/$vmm")" = 65534 ] || { echo "fake VMM is not owned by uid 65534"; exit 1; }

# --- 1. root: drop, then attach late, name, read, delete, serve ----------------
mkdir -p "$work/no-kvm/events"
ln -s "$work/no-kvm" "$work/tracefs"
cat >"$work/config.yml" <<YAML
kernel:
  tracefs_path: $work/tracefs
  attach_retry_interval: 200ms
rates:
  sample_interval: 200ms
  window: 1s
vms:
  grace_period: 0s
YAML
port=$(free_port)
if ! start_exporter "$work/root.log" "$port" "$exporter" --config.file="$work/config.yml" \
  --web.listen-address=127.0.0.1:"$port"; then
  fail "root: exporter starts" "$(cat "$work/root.log")"
  tally privilege
  exit 1
fi
daemon=${pids[-1]}
check_threads "root" "$daemon" "$(mask "${root_caps[@]}")" "$(mask "${root_caps[@]}")"
if grep -q "dropped capabilities; kept" "$work/root.log"; then
  pass "root: the kept set is logged"
else
  fail "root: the kept set is logged" "$(cat "$work/root.log")"
fi
if metric "$port" | grep '^kvm_exit_exporter_bpf_attached 0$' >/dev/null; then
  pass "root: not attached while kvm:kvm_exit is absent"
else
  fail "root: not attached while kvm:kvm_exit is absent" "$(metric "$port" | grep attached)"
fi

ln -sfn "$tracefs" "$work/tracefs"  # "kvm is loaded"
if wait_for "$port" '^kvm_exit_exporter_bpf_attached 1$'; then
  pass "root: attaches after kvm:kvm_exit appears, with the dropped set"
else
  fail "root: attaches after kvm:kvm_exit appears" "$(tail -3 "$work/root.log")"
fi

# The daemon's per-VM counters: the directory counter_index (the hash of
# 16-byte keys -> counter index), the per-CPU array exit_counters and the free
# list free_counters (vm_exit_time, the per-VM handling time, has other names).
map_id_named() {
  local info id
  for info in /proc/"$daemon"/fdinfo/*; do
    id=$(sed -n 's/^map_id:[[:space:]]*//p' "$info")
    # grep without -q: exiting at the match can fail bpftool's write (SIGPIPE)
    # and so the pipeline under pipefail, whatever matched.
    if [ -n "$id" ] && bpftool map show id "$id" | grep " name $1 " >/dev/null; then
      echo "$id"
      return
    fi
  done
}
map_id=$(map_id_named counter_index)
counters_id=$(map_id_named exit_counters)
free_id=$(map_id_named free_counters)
# key: tgid, vcpu_id, isa (2: SVM), exit_reason (0x7b: io), little-endian u32s.
le32() { printf '%02x %02x %02x %02x' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)); }
read -r -a key <<<"$(le32 "$vmm") $(le32 0) $(le32 2) $(le32 123)"
# A counter taken from the free list, as the program takes one.
index=""
if [ -n "$free_id" ]; then
  index=$(bpftool -j map pop id "$free_id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"][0])' 2>/dev/null || true)
fi
if [ -n "$map_id" ] && [ -n "$counters_id" ] && [ -n "$index" ] &&
  bpftool map update id "$counters_id" key $(le32 "$index") value hex 2a 00 00 00 00 00 00 00 &&
  bpftool map update id "$map_id" key hex "${key[@]}" value $(le32 "$index"); then
  if wait_for "$port" '^kvm_vm_info\{.*vm="lp-probe"'; then
    pass "root: names the VMM of uid 65534 from its /proc files (vm=\"lp-probe\")"
  else
    fail "root: names the VMM of uid 65534" "$(metric "$port" | grep -E '^kvm_vm_info|^kvm_vm_exits' | head -5)"
  fi
  if metric "$port" | grep "$secret" >/dev/null; then
    fail "root: no command-line secret in /metrics" "$(metric "$port" | grep "$secret" | head -3)"
  else
    pass "root: no command-line secret in /metrics"
  fi
  kill "$vmm"
  wait "$vmm" 2>/dev/null || true
  # Ended (grace_period 0s): the sampler deletes its entries from the map.
  deleted=no
  for _ in $(seq 100); do
    if ! bpftool map lookup id "$map_id" key hex "${key[@]}" >/dev/null 2>&1; then deleted=yes; break; fi
    sleep 0.1
  done
  body=$(metric "$port")
  if [ "$deleted" = yes ] && ! grep -q '^kvm_exit_exporter_errors_total{kind="map_delete"} [1-9]' <<<"$body" &&
    ! grep -q '^kvm_exit_exporter_errors_total{kind="map_read"} [1-9]' <<<"$body"; then
    pass "root: reads the maps and deletes an ended VM's entries"
  else
    fail "root: deletes an ended VM's entries" "deleted=$deleted; $(grep errors_total <<<"$body")"
  fi
else
  fail "root: find and fill the daemon's per-VM counters" "map ids '${map_id}' '${counters_id}' '${free_id}', index '${index}'"
fi
if lint=$(metric "$port" | promtool check metrics 2>&1); then
  pass "root: serves /metrics that promtool accepts"
else
  fail "root: serves /metrics that promtool accepts" "$lint"
fi

# --- 2. non-root with ambient capabilities, as a systemd unit gives them -------
# The set the unit granted before this change, to see the extras go.
granted=+bpf,+perfmon,+dac_read_search,+sys_ptrace
port=$(free_port)
if start_exporter "$work/user.log" "$port" \
  setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,$granted \
  --ambient-caps=-all,$granted --bounding-set=-all,$granted -- \
  "$exporter" --web.listen-address=127.0.0.1:"$port"; then
  user_caps=("$CAP_BPF" "$CAP_PERFMON" "$CAP_DAC_READ_SEARCH")
  # Without CAP_SETPCAP the bounding set stays as granted; no_new_privs makes it moot.
  check_threads "non-root" "${pids[-1]}" "$(mask "${user_caps[@]}")" \
    "$(mask "$CAP_BPF" "$CAP_PERFMON" "$CAP_DAC_READ_SEARCH" "$CAP_SYS_PTRACE")"
  if wait_for "$port" '^kvm_exit_exporter_bpf_attached 1$'; then
    pass "non-root: attached"
  else
    fail "non-root: attached" "$(cat "$work/user.log")"
  fi
else
  fail "non-root: exporter starts with ambient capabilities" "$(cat "$work/user.log")"
fi

tally privilege
