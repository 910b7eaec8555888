#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# The Intel (VMX) end-to-end checks, run by /init inside Bochs, where
# kvm_intel makes real VMX exits. Prints one line per check:
#   E2E PASS <name> | E2E FAIL <name>: <detail> | E2E SKIP <name>: <why>
# The checks are lib/'s, with smaller counts than the QEMU suite's (Bochs
# runs about 75 MIPS): one exporter configuration per phase, each hook once.
set -eu
# shellcheck disable=SC3040 # busybox sh has pipefail
set -o pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. /e2e/common.sh
# shellcheck source=vendor.sh
. /e2e/vendor.sh
# shellcheck source=../lib/core_checks.sh
. /e2e/core_checks.sh
# shellcheck source=../lib/perf_kvm_checks.sh
. /e2e/perf_kvm_checks.sh
# shellcheck source=../lib/drilldown_checks.sh
. /e2e/drilldown_checks.sh
# Big hosts (issue 29): width, map memory.
# shellcheck source=../lib/host_width_checks.sh
. /e2e/host_width_checks.sh
# Helpers of the restart phase: check_boot_figures (boot windows), the kvm
# modules' rmmod and insmod. Their own phases do not run here.
# shellcheck source=../lib/lifecycle_checks.sh
. /e2e/lifecycle_checks.sh
# shellcheck source=../lib/kvm_module_checks.sh
. /e2e/kvm_module_checks.sh
# Restarts with the BPF state pinned, an upgrade, a deliberate stop (issue 25):
# fewer exits than the AMD suite's, a longer boot window (an exporter takes
# about 9 s to start under Bochs, adopting or not: the CO-RE BTF is built and
# the drill-down programs that follow storms are verified at each start;
# measured 10.7-10.8 s without an exporter per restart).
RESTART_GAP_IO=1000
RESTART_GAP_CPUID=500
RESTART_UPGRADE_IO=500
RESTART_UPGRADE_CPUID=200
RESTART_BOOT_WINDOW_S=12
# shellcheck source=../lib/restart_checks.sh
. /e2e/restart_checks.sh
# Where the vCPU time goes (issue 26): the AMD suite's checks. On Bochs's one
# CPU the spinning vCPU shares it with the exporter and the scrapes, which
# check_vcpu_time_spin allows for.
# shellcheck source=../lib/vcpu_time_checks.sh
. /e2e/vcpu_time_checks.sh
# Known exit storms with the default config (issue 27): the AMD suite's
# storms on Intel's exit reasons, and the host's Prometheus with the shipped
# rules through Bochs's slirp port forward (vmx/boot.sh).
# shellcheck source=../lib/storm_checks.sh
. /e2e/storm_checks.sh

# Host totals and per-VM counts of two VMMs at once, then the cross-check.
# $1: phase name and tag prefix, $2: expected hook, $3: exporter config.
phase_host_and_vms() {
  local p=$1
  exporter_start "$p" "$3" || return 0
  # Under as_unit: the unit's uid and capabilities, paranoid untouched.
  [ -z "$EXPORTER_PREFIX" ] || check_unit_identity "${p}_identity"
  if check_two_vms "${p}_vm" "$p" "${p}0" "${p}1" 3000 2000 1000; then
    check_hook "${p}_hook" "$WORK/prom-${p}0" "$2"
    check_exits "${p}_host" kvm_exits_total "$WORK/prom-${p}0" "$WORK/prom-${p}1" "" 5000 1000 2
    check_crosscheck "${p}_crosscheck" "${p}0" "${p}1"
    check_reason_names "$WORK/prom-${p}1"
  fi
  check_exit_time_vmm "exit_time_$p"
  check_vcpus_share_counters "${p}_vcpus_share_counters"
  exporter_stop
}

# Per-vCPU counts of one 2-vCPU VM with different work per vCPU, host and
# per-VM sums, then the cross-check. $1..$3 as for phase_host_and_vms.
phase_per_vcpu() {
  local p=$1 p0="$WORK/prom-${1}0" p1="$WORK/prom-${1}1" f
  exporter_start "$p" "$3" || return 0
  if vmm_measure "$p" "gamma$p" "${p}0" "${p}1" --vcpus 2 --io 1500,2500 --cpuid 400,100; then
    check_hook "${p}_hook" "$p0" "$2"
    f="vm=gamma$p;pid=$(vmm_pid "gamma$p")"
    check_exits "${p}_vcpu0" kvm_vcpu_exits_total "" "$p1" "$f;vcpu=0" 1500 400 1
    check_exits "${p}_vcpu1" kvm_vcpu_exits_total "" "$p1" "$f;vcpu=1" 2500 100 1
    check_value "${p}_vm_io" "$p1" kvm_vm_exits_total "$f;isa=$ISA;reason=$IO_NAME;code=$CODE_IO" 4000
    check_exits "${p}_host" kvm_exits_total "$p0" "$p1" "" 4000 500 2
    expect_eq "${p}_lost_zero" "kvm_exit_lost_exits_total" "$(metric "$p1" kvm_exit_lost_exits_total)" 0
    check_crosscheck "${p}_crosscheck" "${p}0" "${p}1"
    check_reason_names "$p1"
  fi
  check_exit_time_vmm "exit_time_$p"
  exporter_stop
}

# The default config: what its maps pin at this width (the vCPU migration
# check needs a second CPU, which Bochs does not have here: it says so).
phase_host_width() {
  exporter_start host_width "" || return 0
  check_map_memory map_memory_default
  check_migrating_vcpus migrating_vcpus 1000 1500 200
  exporter_stop
}

main() {
  checks_begin || return 0
  check_kernel_hist 2000 1000
  check_host_width host_width
  if have_exporter; then
    phase_host_width
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
    as_unit phase_host_and_vms raw_tp raw_tp "$TIMING_CONFIG"
    # Drill-downs (issue 14): port IO.
    phase_drilldown_io ""
    # MSR, MMIO, hypercall and VMM-exit drill-downs, on the classic
    # tracepoints (kvm:kvm_msr, ...): the AMD suite runs the kinds on their
    # tp_btf twins.
    phase_drilldown_kinds "kernel:
  hook: tracepoint"
    # perf kvm stat on the same workload (issue 13); Bochs is slow, so fewer exits.
    phase_perf_kvm_stat 500 500 "$TIMING_CONFIG"
    phase_vcpu_time
    phase_storms
    # Last: it unloads kvm_intel and kvm (and loads them again).
    phase_restarts
  else
    skip exporter "no exporter binary in the image"
  fi
  checks_end
}

main
