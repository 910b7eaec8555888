#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# The Intel (VMX) end-to-end checks, run by vmx/init.sh inside Bochs, where
# kvm_intel makes real VMX exits. Prints one line per check:
#   E2E PASS <name> | E2E FAIL <name>: <detail> | E2E SKIP <name>: <why>
# Only exits that are exact by construction are asserted: IO_INSTRUCTION (one
# per OUT), CPUID (one per CPUID) and HLT (one per vCPU). EPT violations and
# interrupt exits vary and are only cross-checked against the kernel's hist
# trigger over the same idle-to-idle period. Bochs runs about 75 MIPS, so
# the counts are smaller than the QEMU suite's.
set -eu
# shellcheck disable=SC3040 # busybox sh has pipefail
set -o pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. /e2e/common.sh
# shellcheck source=../lib/perf_kvm_checks.sh
. /e2e/perf_kvm_checks.sh
# shellcheck source=../lib/drilldown_checks.sh
. /e2e/drilldown_checks.sh

VMX=1 # the tracepoint's isa value for Intel VMX
VMX_CPUID=10 # VMX basic exit reasons (arch/x86/include/uapi/asm/vmx.h)
VMX_HLT=12
VMX_IO=30
VMM_TIMEOUT_S=300 # one scenario, from start to TEST_VMM DONE, at Bochs speed
SETTLE_S=2        # the exporter's reads after the VMMs went idle see every exit

# ---- Helpers ----------------------------------------------------------------------

# delta PROM0 PROM1 METRIC FILTER -> how much the matching samples rose
delta() {
  echo $(($(metric "$2" "$3" "$4") - $(metric "$1" "$3" "$4")))
}

# start_vmms CHECK NAME ARGS... [-- NAME ARGS...]: starts one test VMM per
# group; sets VMM_PIDS ("name:pid ..."). Each holds its idle VM open until
# stop_vmms.
VMM_PIDS=
start_vmm() {
  local name=$1
  shift
  vmm_start "$WORK/vmm-$name.out" -name "guest=$name,debug-threads=on" "$@"
  # shellcheck disable=SC2153 # VMM_PID is set by vmm_start (common.sh)
  VMM_PIDS="$VMM_PIDS $name:$VMM_PID"
}

# wait_vmms CHECK -> 0 when every started VMM finished its scenario
wait_vmms() {
  local entry name pid ok=0
  for entry in $VMM_PIDS; do
    name=${entry%%:*} pid=${entry#*:}
    if ! vmm_wait_done "$pid" "$WORK/vmm-$name.out" "$VMM_TIMEOUT_S"; then
      fail "$1" "test_vmm $name did not finish its scenario"
      show_file "test_vmm $name" "$WORK/vmm-$name.out"
      ok=1
    fi
  done
  return $ok
}

stop_vmms() {
  local entry
  for entry in $VMM_PIDS; do
    vmm_stop "${entry#*:}" "$WORK/vmm-${entry%%:*}.out" || fail "$1" "test_vmm ${entry%%:*} exited non-zero"
  done
  VMM_PIDS=
}

# pid_of NAME -> the pid of the VMM started as NAME
pid_of() {
  local entry
  for entry in $VMM_PIDS; do
    [ "${entry%%:*}" != "$1" ] || echo "${entry#*:}"
  done
}

# snapshot TAG: hist trigger and exporter totals at one idle moment
snapshot() {
  hist_snapshot "$WORK/hist-$1"
  scrape "$WORK/prom-$1" || { fail "scrape_$1" "wget $METRICS_URL failed"; return 1; }
  exporter_snapshot "$WORK/prom-$1" "$WORK/exp-$1" vmx $VMX
}

# crosscheck NAME TAG0 TAG1: per (isa, exit reason), the exporter's host total
# rose exactly as much as the kernel's hist trigger counted. One emulated CPU
# and one BPF program: the kernel never skips the program here.
crosscheck() {
  snapshot_delta "$WORK/hist-$2" "$WORK/hist-$3" >"$WORK/hist-delta-$1"
  snapshot_delta "$WORK/exp-$2" "$WORK/exp-$3" >"$WORK/exp-delta-$1"
  if ! grep -q . "$WORK/hist-delta-$1"; then
    fail "$1" "the hist trigger counted no exits in the period"
  elif cmp -s "$WORK/hist-delta-$1" "$WORK/exp-delta-$1"; then
    pass "$1"
    info "$1 (isa reason delta): $(tr '\n' ';' <"$WORK/hist-delta-$1")"
  else
    fail "$1" "kvm_exits_total deltas differ from the kernel's hist trigger (isa reason delta): kernel [$(tr '\n' ';' <"$WORK/hist-delta-$1")] exporter [$(tr '\n' ';' <"$WORK/exp-delta-$1")]"
  fi
}

# check_hook NAME PROM HOOK: the exporter says which program it attached
check_hook() {
  expect_eq "$1" "kvm_exit_exporter_bpf_hook_info{hook=\"$3\"}" \
    "$(metric "$2" kvm_exit_exporter_bpf_hook_info "hook=$3")" 1
}

# check_names PROM: every reason label of a VMX series is the running
# kernel's name for its code (tracefs kvm_exit/format)
check_names() {
  local bad
  bad=$(metric_values "$1" kvm_exits_total code "isa=vmx" | while read -r code _; do
    name=$(metric_values "$1" kvm_exits_total reason "isa=vmx;code=$code" | awk '{ print $1; exit }')
    kname=$(kernel_reason_name vmx "$code")
    [ "$name" = "$kname" ] || printf '%s ' "code $code: kernel says '$kname', exporter has '$name'"
  done)
  if [ -z "$(metric_values "$1" kvm_exits_total code "isa=vmx")" ]; then
    fail reason_names_from_kernel "no kvm_exits_total{isa=\"vmx\"} series"
  elif [ -z "$bad" ]; then
    pass reason_names_from_kernel
  else
    fail reason_names_from_kernel "$bad"
  fi
}

# ---- The kernel's own count -----------------------------------------------------------

check_kernel_hist() {
  hist_snapshot "$WORK/hist-k0"
  start_vmm kernelcheck --io 2000 --cpuid 1000
  wait_vmms kernel_hist_vmm || { stop_vmms kernel_hist_vmm; return 0; }
  stop_vmms kernel_hist_vmm
  hist_snapshot "$WORK/hist-k1"
  for pair in "io $VMX_IO 2000" "cpuid $VMX_CPUID 1000" "hlt $VMX_HLT 1"; do
    # shellcheck disable=SC2086 # split into its fields on purpose
    set -- $pair
    expect_eq "kernel_hist_$1" "hist (isa $VMX, exit_reason $2) delta" \
      "$(($(snapshot_value "$WORK/hist-k1" $VMX "$2") - $(snapshot_value "$WORK/hist-k0" $VMX "$2")))" "$3"
  done
  info "kernel hist delta (isa reason count): $(snapshot_delta "$WORK/hist-k0" "$WORK/hist-k1" | tr '\n' ';')"
}

# ---- Exit handling time (issue 13) ----------------------------------------------------

EXIT_TIME_IO=200        # io exits of the timed VMM (Bochs is slow: fewer than the QEMU suite's)
EXIT_TIME_DELAY_US=4000 # its IO handler sleeps this long per exit
EXIT_TIME_HLT=3         # HLT exits: the first two are re-entered (timed), the last is not

# check_exit_time_vmx NAME: one VMM with a slow IO handler, timed exactly (common.sh check_exit_time)
check_exit_time_vmx() {
  local name=$1 p0="$WORK/$1-0.prom" p1="$WORK/$1-1.prom"
  scrape "$p0" || { fail "$name" "wget $METRICS_URL failed"; return 0; }
  start_vmm "$name" --io "$EXIT_TIME_IO" --io-delay-us "$EXIT_TIME_DELAY_US" --cpuid 200 \
    --hlt "$EXIT_TIME_HLT"
  if wait_vmms "${name}_vmm"; then
    sleep "$SETTLE_S"
    if scrape "$p1"; then
      check_exit_time "$name" "$p0" "$p1" vmx "$VMX_IO" "$VMX_CPUID" "$VMX_HLT" "$name" \
        "$EXIT_TIME_IO" "$EXIT_TIME_DELAY_US" "$EXIT_TIME_HLT"
    else
      fail "$name" "wget $METRICS_URL failed"
    fi
  fi
  stop_vmms "${name}_vmm"
}

# check_vcpus_share_counters NAME: per-vCPU counting off (the default), a
# 2-vCPU VM's vCPUs share one counter per reason (the classic tracepoint's
# record carries the vCPU id; it must not reach the key), so the counters it
# adds are as many as its kvm_vm_exits_total series. Ended VMs keep theirs
# for the 5 min grace period, so nothing else changes the count.
check_vcpus_share_counters() {
  local name=$1 p0="$WORK/prom-${1}0" p1="$WORK/prom-${1}1" added series
  scrape "$p0" || { fail "$name" "wget $METRICS_URL failed"; return 0; }
  start_vmm "twovcpu$name" --vcpus 2 --io 300
  if wait_vmms "${name}_vmm"; then
    sleep "$SETTLE_S"
    if scrape "$p1"; then
      added=$(($(metric "$p1" kvm_exit_exporter_map_entries "map=vm_exits") - $(metric "$p0" kvm_exit_exporter_map_entries "map=vm_exits")))
      series=$(metric_count "$p1" kvm_vm_exits_total "vm=twovcpu$name")
      if [ "$series" -ge 2 ]; then
        expect_eq "$name" "counters added by a 2-vCPU VM (kvm_exit_exporter_map_entries{map=\"vm_exits\"} delta)" "$added" "$series"
      else
        fail "$name" "only $series kvm_vm_exits_total series for vm=twovcpu$name, expected io and hlt at least"
      fi
      expect_eq "${name}_io" "kvm_vm_exits_total{vm=twovcpu$name,io}" \
        "$(metric "$p1" kvm_vm_exits_total "vm=twovcpu$name;isa=vmx;reason=$IO_NAME;code=$VMX_IO")" 600
    else
      fail "$name" "wget $METRICS_URL failed"
    fi
  fi
  stop_vmms "${name}_vmm"
}

# ---- Phases: one exporter configuration each ------------------------------------------

# Host totals and per-VM counts of two VMMs at once, then the cross-check.
# $1: phase name and tag prefix, $2: expected hook, $3: exporter config.
phase_host_and_vms() {
  local p=$1 p0 p1 alpha beta f
  exporter_start "$p" "$3" || return 0
  # Under UNIT_PREFIX: the unit's uid and capabilities, paranoid untouched.
  [ -z "$EXPORTER_PREFIX" ] || check_unit_identity "${p}_identity"
  snapshot "${p}0" || { exporter_stop; return 0; }
  p0="$WORK/prom-${p}0" p1="$WORK/prom-${p}1"
  check_hook "${p}_hook" "$p0" "$2"
  start_vmm "alpha$p" --io 3000
  start_vmm "beta$p" --io 2000 --cpuid 1000
  if wait_vmms "${p}_vmm"; then
    sleep "$SETTLE_S"
    alpha=$(pid_of "alpha$p") beta=$(pid_of "beta$p")
    if snapshot "${p}1"; then
      f="isa=vmx;reason=$IO_NAME;code=$VMX_IO"
      expect_eq "${p}_host_io" "kvm_exits_total{$f} delta" "$(delta "$p0" "$p1" kvm_exits_total "$f")" 5000
      expect_eq "${p}_host_cpuid" "kvm_exits_total{cpuid} delta" \
        "$(delta "$p0" "$p1" kvm_exits_total "isa=vmx;reason=$CPUID_NAME;code=$VMX_CPUID")" 1000
      expect_eq "${p}_host_hlt" "kvm_exits_total{hlt} delta" \
        "$(delta "$p0" "$p1" kvm_exits_total "isa=vmx;reason=$HLT_NAME;code=$VMX_HLT")" 2
      expect_eq "${p}_vm_alpha_io" "kvm_vm_exits_total{alpha,io}" \
        "$(metric "$p1" kvm_vm_exits_total "vm=alpha$p;pid=$alpha;$f")" 3000
      expect_eq "${p}_vm_alpha_hlt" "kvm_vm_exits_total{alpha,hlt}" \
        "$(metric "$p1" kvm_vm_exits_total "vm=alpha$p;pid=$alpha;isa=vmx;reason=$HLT_NAME;code=$VMX_HLT")" 1
      expect_eq "${p}_vm_beta_io" "kvm_vm_exits_total{beta,io}" \
        "$(metric "$p1" kvm_vm_exits_total "vm=beta$p;pid=$beta;$f")" 2000
      expect_eq "${p}_vm_beta_cpuid" "kvm_vm_exits_total{beta,cpuid}" \
        "$(metric "$p1" kvm_vm_exits_total "vm=beta$p;pid=$beta;isa=vmx;reason=$CPUID_NAME;code=$VMX_CPUID")" 1000
      crosscheck "${p}_crosscheck" "${p}0" "${p}1"
      check_names "$p1"
    fi
  fi
  stop_vmms "${p}_vmm"
  check_exit_time_vmx "exit_time_$p"
  check_vcpus_share_counters "${p}_vcpus_share_counters"
  exporter_stop
}

# Per-vCPU counts of one 2-vCPU VM with different work per vCPU, host and
# per-VM sums, then the cross-check. $1..$3 as for phase_host_and_vms.
phase_per_vcpu() {
  local p=$1 p0 p1 pid f
  exporter_start "$p" "$3" || return 0
  snapshot "${p}0" || { exporter_stop; return 0; }
  p0="$WORK/prom-${p}0" p1="$WORK/prom-${p}1"
  check_hook "${p}_hook" "$p0" "$2"
  start_vmm "gamma$p" --vcpus 2 --io 1500,2500 --cpuid 400,100
  if wait_vmms "${p}_vmm"; then
    sleep "$SETTLE_S"
    pid=$(pid_of "gamma$p")
    if snapshot "${p}1"; then
      f="vm=gamma$p;pid=$pid;isa=vmx"
      for expected in "0 io $VMX_IO $IO_NAME 1500" "1 io $VMX_IO $IO_NAME 2500" \
        "0 cpuid $VMX_CPUID $CPUID_NAME 400" "1 cpuid $VMX_CPUID $CPUID_NAME 100" \
        "0 hlt $VMX_HLT $HLT_NAME 1" "1 hlt $VMX_HLT $HLT_NAME 1"; do
        # shellcheck disable=SC2086 # split into its fields on purpose
        set -- $expected
        expect_eq "${p}_vcpu$1_$2" "kvm_vcpu_exits_total{vcpu=$1,reason=$4}" \
          "$(metric "$p1" kvm_vcpu_exits_total "$f;vcpu=$1;reason=$4;code=$3")" "$5"
      done
      expect_eq "${p}_vm_io" "kvm_vm_exits_total{io}" \
        "$(metric "$p1" kvm_vm_exits_total "$f;reason=$IO_NAME;code=$VMX_IO")" 4000
      expect_eq "${p}_host_io" "kvm_exits_total{io} delta" \
        "$(delta "$p0" "$p1" kvm_exits_total "isa=vmx;reason=$IO_NAME;code=$VMX_IO")" 4000
      expect_eq "${p}_host_cpuid" "kvm_exits_total{cpuid} delta" \
        "$(delta "$p0" "$p1" kvm_exits_total "isa=vmx;reason=$CPUID_NAME;code=$VMX_CPUID")" 500
      expect_eq "${p}_host_hlt" "kvm_exits_total{hlt} delta" \
        "$(delta "$p0" "$p1" kvm_exits_total "isa=vmx;reason=$HLT_NAME;code=$VMX_HLT")" 2
      expect_eq "${p}_lost_zero" "kvm_exit_lost_exits_total" "$(metric "$p1" kvm_exit_lost_exits_total)" 0
      crosscheck "${p}_crosscheck" "${p}0" "${p}1"
      check_names "$p1"
    fi
  fi
  stop_vmms "${p}_vmm"
  check_exit_time_vmx "exit_time_$p"
  exporter_stop
}

main() {
  local start
  start=$(now)
  IO_NAME=$(kernel_reason_name vmx $VMX_IO)
  CPUID_NAME=$(kernel_reason_name vmx $VMX_CPUID)
  HLT_NAME=$(kernel_reason_name vmx $VMX_HLT)
  info "kernel names: $VMX_IO=$IO_NAME $VMX_CPUID=$CPUID_NAME $VMX_HLT=$HLT_NAME"
  if [ -z "$IO_NAME" ] || [ -z "$CPUID_NAME" ] || [ -z "$HLT_NAME" ]; then
    fail kvm_exit_format "cannot read the VMX exit names from $KVM_EXIT_EVENT/format"
    return 0
  fi
  hist_enable
  check_kernel_hist
  if have_exporter; then
    phase_host_and_vms tracepoint tracepoint "kernel:
  hook: tracepoint
$TIMING_CONFIG"
    # kernel.hook auto must choose tp_btf on kvm_intel, which reads
    # vcpu_vmx.exit_reason through CO-RE against kvm_intel's BTF.
    phase_per_vcpu btf tp_btf "collector:
  per_vcpu: true
  exit_handling_time: true"
    # The shipped systemd unit's way (issue 23): uid UNIT_UID with only
    # CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH, perf_event_paranoid 3:
    # auto must attach raw_tp (tp_btf and the classic tracepoint want
    # CAP_SYS_ADMIN here) and count as exactly, gap-free.
    EXPORTER_PREFIX=$UNIT_PREFIX
    phase_host_and_vms raw_tp raw_tp "$TIMING_CONFIG"
    EXPORTER_PREFIX=
    # Drill-downs (issue 14): port IO.
    phase_drilldown_io vmx "$IO_NAME" $VMX_IO ""
    # MSR, MMIO, hypercall and VMM-exit drill-downs: VMX exit reasons
    # msr_read 31 + msr_write 32, vmcall 18, ept_violation 48 + ept_misconfig 49.
    # On the classic tracepoints (kvm:kvm_msr, ...): the AMD suite runs the
    # kinds on their tp_btf twins.
    phase_drilldown_kinds vmx $VMX_IO "31 32" 18 "48 49" "kernel:
  hook: tracepoint"
    # perf kvm stat on the same workload (issue 13); Bochs is slow, so fewer exits.
    phase_perf_kvm_stat vmx "$IO_NAME" $VMX_IO "$CPUID_NAME" $VMX_CPUID 500 500 "$TIMING_CONFIG"
  else
    skip exporter "no exporter binary in the image"
  fi
  info "checks took $(elapsed "$start") s, $FAILED failed"
}

main
