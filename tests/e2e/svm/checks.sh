#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# The AMD (SVM) nested end-to-end checks (issue 3), run by /init inside the
# QEMU guest where kvm_amd makes real kvm:kvm_exit events. Prints one line
# per check:
#   E2E PASS <name> | E2E FAIL <name>: <detail> | E2E SKIP <name>: <why>
# The phases are lib/'s; what only this suite runs (the QEMU guest is fast
# enough for it) is below: host totals of 70000 exits, rates, overflow of the
# per-VM map, and the host's scrape through QEMU's port forward.
set -eu
# shellcheck disable=SC3040 # busybox sh has pipefail
set -o pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. /e2e/common.sh
# shellcheck source=vendor.sh
. /e2e/vendor.sh
# shellcheck source=../lib/core_checks.sh
. /e2e/core_checks.sh
# Boot windows, VM lifecycle, soak, max_vms (issue 4); the Prometheus check (issue 5).
# shellcheck source=../lib/lifecycle_checks.sh
. /e2e/lifecycle_checks.sh
# Unloading and loading kvm around the exporter (issue 11).
# shellcheck source=../lib/kvm_module_checks.sh
. /e2e/kvm_module_checks.sh
# Drill-downs: port IO, MSRs, MMIO, hypercalls, exits to the VMM (issue 14).
# shellcheck source=../lib/drilldown_checks.sh
. /e2e/drilldown_checks.sh
# Known exit storms named with the default config (issue 27).
# shellcheck source=../lib/storm_checks.sh
. /e2e/storm_checks.sh
# Where the vCPU threads' time goes (issue 26).
# shellcheck source=../lib/vcpu_time_checks.sh
. /e2e/vcpu_time_checks.sh
# perf kvm stat on the same workload (issue 13).
# shellcheck source=../lib/perf_kvm_checks.sh
. /e2e/perf_kvm_checks.sh
# Big hosts (issue 29): width, map memory, migrating vCPUs.
# shellcheck source=../lib/host_width_checks.sh
. /e2e/host_width_checks.sh
# Restarts with the BPF state pinned, an upgrade, a deliberate stop (issue 25).
# shellcheck source=../lib/restart_checks.sh
. /e2e/restart_checks.sh

# Every exporter phase uses short rate windows so that the rate checks are quick.
RATES_CONFIG='rates:
  window: 4s
  sample_interval: 500ms'
RATE_WINDOW_S=4
RATE_TOLERANCE=0.25 # sampled rate vs the rate the VMM measured

# ---- Host totals ----------------------------------------------------------------------

check_exporter_counts() {
  # 70000 > 65535: the guest's counters must be 32-bit.
  vmm_measure exporter_counts solo counts0 counts1 --io 70000 --cpuid 20000 || return 0
  check_exits exporter_total kvm_exits_total "$WORK/prom-counts0" "$WORK/prom-counts1" "" 70000 20000 1
}

# ---- Rates ------------------------------------------------------------------------------

# within_tolerance VALUE REFERENCE -> 0 when |VALUE - REFERENCE| <= TOL * REFERENCE
within_tolerance() {
  awk -v v="$1" -v r="$2" -v t="$RATE_TOLERANCE" 'BEGIN { d = v - r; if (d < 0) d = -d; exit !(r > 0 && d <= t * r) }'
}

# hist_all_exits -> all kvm_exit hits the hist trigger has counted so far
hist_all_exits() {
  hist_snapshot "$WORK/hist-rate"
  awk '{ s += $3 } END { printf "%.0f\n", s }' "$WORK/hist-rate"
}

# The VMM loops on OUT for 10 s. Each second the kernel's hist trigger is
# read; at 6, 8 and 9 s the exporter's rate (over its 4 s window) is compared
# with the kernel's own rate over the 4 s before the scrape: the exit rate of
# a TCG-nested guest drifts by a third within 10 s, so a 10 s average is no
# reference for a 4 s window. The mean of the samples is also compared with
# the rate the VMM measured itself over the whole 10 s.
check_rates() {
  local prom="$WORK/rate.prom" log="$WORK/rate-hist.log"
  local samples="" sample kernel_rate t io seconds vmm_rate mean bad=""
  vmm_start rate --io-seconds 10
  : >"$log"
  for t in 1 2 3 4 5 6 7 8 9; do
    sleep 1
    echo "$t $(now) $(hist_all_exits)" >>"$log"
    case $t in 6 | 8 | 9) ;; *) continue ;; esac
    scrape "$prom" || { fail rate_during_load "wget $METRICS_URL failed"; break; }
    kernel_rate=$(awk -v t=$t '$1 == t - 4 { t0 = $2; c0 = $3 } $1 == t { printf "%.1f\n", ($3 - c0) / ($2 - t0) }' "$log")
    sample=$(metric "$prom" kvm_exit_rate_all_per_second)
    samples="$samples $sample/$kernel_rate"
    within_tolerance "$sample" "$kernel_rate" || bad="$bad $sample (kernel $kernel_rate)"
  done
  vmm_wait rate_vmm rate || return 0
  vmm_stop rate_vmm rate
  io=$(vmm_field rate io)
  seconds=$(vmm_field rate seconds)
  vmm_rate=$(awk -v n="$io" -v s="$seconds" 'BEGIN { printf "%.1f\n", n / s }')
  info "rate: test_vmm made $io io exits in $seconds s = $vmm_rate/s; exporter/kernel rate at 6, 8, 9 s:$samples"
  if [ -z "$bad" ] && [ -n "$samples" ]; then
    pass rate_during_load
  else
    fail rate_during_load "kvm_exit_rate_all_per_second outside $RATE_TOLERANCE of the kernel's rate over the same 4 s:$bad"
    show_series "$prom" '^kvm_exit_rate'
  fi
  mean=$(echo "$samples" | awk '{ for (i = 1; i <= NF; i++) { split($i, f, "/"); s += f[1] } if (NF) printf "%.1f\n", s / NF }')
  if within_tolerance "${mean:-0}" "$vmm_rate"; then
    pass rate_matches_vmm
  else
    fail rate_matches_vmm "mean of the exporter's samples ${mean:-none} is not within $RATE_TOLERANCE of the VMM's $vmm_rate io exits/s"
  fi

  # No vCPU runs any more: after one window (plus two samples) the rate is 0.
  sleep "$((RATE_WINDOW_S + SETTLE_S + 1))"
  scrape "$prom" || { fail rate_falls_to_zero "wget $METRICS_URL failed"; return 0; }
  sample=$(metric "$prom" kvm_exit_rate_all_per_second)
  if [ "$(metric_count "$prom" kvm_exit_rate_all_per_second)" = 1 ] && [ "$sample" = 0 ]; then
    pass rate_falls_to_zero
  else
    fail rate_falls_to_zero "kvm_exit_rate_all_per_second is '$sample' $RATE_WINDOW_S+ s after the last exit, expected 0"
    show_series "$prom" '^kvm_exit_rate'
  fi
  sample=$(metric "$prom" kvm_exit_rate_per_second "isa=$ISA;reason=$IO_NAME")
  expect_eq rate_io_falls_to_zero "kvm_exit_rate_per_second{reason=\"$IO_NAME\"} after the window" "$sample" 0
}

# ---- Host scrape through QEMU's port forward ---------------------------------------------------

# The host (run_e2e.sh) scrapes the exporter through hostfwd when it sees the
# HOSTSCRAPE marker, then connects to HOST_ACK_PORT to say it is done.
host_scrape_handshake() {
  local prom="$WORK/host.prom" io
  if ! host_requested; then
    info "no host scrape requested (e2e.hostscrape=1 not on the kernel command line)"
    return 0
  fi
  scrape "$prom" || { fail host_scrape_guest_side "wget $METRICS_URL failed"; return 0; }
  io=$(metric "$prom" kvm_exits_total "isa=$ISA;reason=$IO_NAME;code=$CODE_IO")
  host_ask "E2E HOSTSCRAPE kvm_exits_total_io=$io" 60
}

# ---- Overflow of the per-VM map ----------------------------------------------------------------

OVERFLOW_VMS=10 # x (io, cpuid, hlt, page fault) >= 40 keys for a 16-entry map

check_overflow() {
  local p0="$WORK/ovf0.prom" p1="$WORK/ovf1.prom" i names="" io_sum=0
  local host_io host_all vm_io vm_all ovf ovf_io
  scrape "$p0" || { fail overflow "wget $METRICS_URL failed"; return 0; }
  i=0
  while [ $i -lt $OVERFLOW_VMS ]; do
    vmm_start "ovf$i" --io $((1000 * (i + 1))) --cpuid 200
    names="$names ovf$i"
    io_sum=$((io_sum + 1000 * (i + 1)))
    i=$((i + 1))
  done
  # shellcheck disable=SC2086 # one name a word
  vmm_wait overflow_vmm $names || return 0
  settle
  # shellcheck disable=SC2086
  scrape "$p1" || { fail overflow "wget $METRICS_URL failed"; vmm_stop "" $names; return 0; }
  # shellcheck disable=SC2086
  vmm_stop overflow_vmm $names

  check_exits overflow_total kvm_exits_total "$p0" "$p1" "" "$io_sum" $((200 * OVERFLOW_VMS)) "$OVERFLOW_VMS"

  ovf=$(metric_delta "$p0" "$p1" kvm_exit_overflow_exits_total)
  if [ "$(metric_count "$p1" kvm_exit_overflow_exits_total)" -ge 1 ] && [ "$ovf" -gt 0 ]; then
    pass overflow_counted
  else
    fail overflow_counted "kvm_exit_overflow_exits_total rose by $ovf with $OVERFLOW_VMS VMs x 4 reasons in a 16-entry map, expected > 0"
    show_series "$p1" '^kvm_exit_overflow'
  fi

  # Nothing is lost: what the per-VM series miss is in the overflow counter.
  # The VMMs are idle at both scrapes, so all reasons add up exactly.
  host_all=$(metric_delta "$p0" "$p1" kvm_exits_total)
  vm_all=$(metric_delta "$p0" "$p1" kvm_vm_exits_total)
  if [ "$((vm_all + ovf))" = "$host_all" ]; then
    pass overflow_sum_all_reasons
  else
    fail overflow_sum_all_reasons "sum of kvm_vm_exits_total deltas $vm_all + overflow $ovf = $((vm_all + ovf)), kvm_exits_total delta $host_all"
    show_series "$p1" '^kvm_(exit_overflow|exits_total)'
  fi
  host_io=$(metric_delta "$p0" "$p1" kvm_exits_total "reason=$IO_NAME")
  vm_io=$(metric_delta "$p0" "$p1" kvm_vm_exits_total "reason=$IO_NAME")
  if [ "$(metric_count "$p1" kvm_exit_overflow_exits_total "reason=$IO_NAME")" -ge 1 ]; then
    ovf_io=$(metric_delta "$p0" "$p1" kvm_exit_overflow_exits_total "reason=$IO_NAME")
    expect_eq overflow_sum_io "per-VM io $vm_io + overflow io $ovf_io" "$((vm_io + ovf_io))" "$host_io"
  elif [ "$vm_io" -le "$host_io" ] && [ "$((host_io - vm_io))" -le "$ovf" ]; then
    # The overflow counter has no reason label: io's share of it is bounded.
    pass overflow_sum_io
  else
    fail overflow_sum_io "per-VM io $vm_io, host io $host_io, overflow (all reasons) $ovf"
  fi
}

# ---- Phases -------------------------------------------------------------------------------------

phase_default() {
  exporter_start default "$TIMING_CONFIG
$RATES_CONFIG" || return 0
  cross_snapshot a0 || { exporter_stop; return 0; }
  # kernel.hook auto: tp_btf on kvm_amd, so every check up to the cross-check counts through it.
  check_hook hook_auto_is_tp_btf "$WORK/prom-a0" tp_btf
  check_exporter_counts
  check_two_vms attribution "" attr0 attr1 12000 7000 3000
  check_rates
  check_exit_time_vmm exit_time_tp_btf
  cross_snapshot a1 || { exporter_stop; return 0; }
  check_crosscheck crosscheck_default a0 a1
  # Kernels >= 6.7 count the runs they skip (recursion): none may be.
  expect_eq prog_missed_zero_default "kvm_exit_exporter_bpf_prog_missed_total" \
    "$(metric "$WORK/prom-a1" kvm_exit_exporter_bpf_prog_missed_total)" 0
  check_reason_names "$WORK/prom-a1"
  expect_eq overflow_zero_default "kvm_exit_overflow_exits_total with a 16384-entry map" \
    "$(metric "$WORK/prom-a1" kvm_exit_overflow_exits_total)" 0
  host_scrape_handshake
  exporter_stop
}

# The default config but for short rate windows: what its maps pin at this
# width, and a VM whose vCPU threads keep changing CPUs.
phase_host_width() {
  exporter_start host_width "$RATES_CONFIG" || return 0
  check_map_memory map_memory_default
  check_migrating_vcpus migrating_vcpus 6000 9000 2000
  exporter_stop
}

# One 2-vCPU VM with different work per vCPU.
phase_per_vcpu() {
  local prom="$WORK/prom-b1" f
  exporter_start per_vcpu "collector:
  per_vcpu: true
$RATES_CONFIG" || return 0
  if vmm_measure per_vcpu gamma b0 b1 --vcpus 2 --io 4000,9000 --cpuid 1500,500; then
    f="vm=gamma;pid=$(vmm_pid gamma)"
    check_exits per_vcpu_0 kvm_vcpu_exits_total "" "$prom" "$f;vcpu=0" 4000 1500 1
    check_exits per_vcpu_1 kvm_vcpu_exits_total "" "$prom" "$f;vcpu=1" 9000 500 1
    # The per-VM series still sums both vCPUs.
    check_value per_vcpu_vm_sum_io "$prom" kvm_vm_exits_total "$f;isa=$ISA;reason=$IO_NAME;code=$CODE_IO" 13000
    check_crosscheck crosscheck_per_vcpu b0 b1
  fi
  exporter_stop
}

# The classic tracepoint times exits too; with collector.exit_handling_time
# false (the default, said explicitly here) the kvm_entry program is not
# loaded and no timing family is served.
phase_exit_time() {
  exporter_start exit_time_tracepoint "kernel:
  hook: tracepoint
$TIMING_CONFIG
$RATES_CONFIG" || return 0
  check_exit_time_vmm exit_time_tracepoint
  check_vcpus_share_counters tracepoint_vcpus_share_counters
  exporter_stop
  check_collector_off exit_time_off exit_time_off_no_families exit_handling_time \
    '^(# TYPE )?kvm_(vm_)?exit_(handling_seconds|timing_lost)'
}

phase_overflow() {
  # The classic tracepoint (the fallback where tp_btf cannot load) must count
  # exactly too: this phase's exact totals and cross-check go through it.
  exporter_start overflow "kernel:
  hook: tracepoint
collector:
  vm_map_capacity: 16
$RATES_CONFIG" || return 0
  cross_snapshot c0 || { exporter_stop; return 0; }
  check_hook hook_tracepoint "$WORK/prom-c0" tracepoint
  check_overflow
  cross_snapshot c1 || { exporter_stop; return 0; }
  check_crosscheck crosscheck_overflow c0 c1
  exporter_stop
}

# The shipped systemd unit's way (issue 23), run under as_unit: uid UNIT_UID
# with only CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH, Debian's
# perf_event_paranoid 3, the default config: auto must attach raw_tp (tp_btf
# wants CAP_SYS_ADMIN to find kvm's module BTF, the classic tracepoint's
# perf_event_open too) and count exactly, with no gap against the hist
# trigger; exit handling time on raw_tp; then every drill-down kind's raw_tp
# program, with the kinds phase's checks.
phase_least_privilege() {
  local p0="$WORK/prom-lp0" p1="$WORK/prom-lp1"
  exporter_start least_priv "$TIMING_CONFIG
$RATES_CONFIG" || return 0
  check_unit_identity least_priv_identity
  info "least privilege: $(grep -m1 'attached to kvm:kvm_exit' "$EXPORTER_LOG" || true)"
  if vmm_measure least_priv leastpriv lp0 lp1 --io 10000 --cpuid 5000; then
    check_hook least_priv_hook_raw_tp "$p0" raw_tp
    check_exits least_priv_total kvm_exits_total "$p0" "$p1" "" 10000 5000 1
    check_crosscheck crosscheck_least_priv lp0 lp1
    expect_eq least_priv_lost_zero "kvm_exit_lost_exits_total" "$(metric "$p1" kvm_exit_lost_exits_total)" 0
    expect_eq least_priv_prog_missed_zero "kvm_exit_exporter_bpf_prog_missed_total" \
      "$(metric "$p1" kvm_exit_exporter_bpf_prog_missed_total)" 0
    check_exit_time_vmm exit_time_raw_tp
  fi
  exporter_stop
  info "least privilege: the drill-down kinds on raw_tp (drill_kinds_* and drill_manykinds_* again)"
  phase_drilldown_kinds "$RATES_CONFIG
kernel:
  hook: raw_tp"
}

main() {
  checks_begin || return 0
  check_kernel_hist 10000 5000
  check_host_width host_width
  if have_exporter; then
    phase_default
    phase_host_width
    phase_per_vcpu
    phase_exit_time
    phase_overflow
    as_unit phase_least_privilege
    # Port IO on the classic tracepoint (kvm:kvm_pio); the kinds below and the
    # Intel suite's io phase run the tp_btf twins (kernel.hook auto).
    phase_drilldown_io "$RATES_CONFIG
kernel:
  hook: tracepoint"
    phase_drilldown_kinds "$RATES_CONFIG"
    phase_perf_kvm_stat 2000 2000 "$TIMING_CONFIG
$RATES_CONFIG"
    phase_vcpu_time
    lifecycle_main
    # The same SVM exits and programs as in the 6.1 suite, which runs them.
    if once_requested; then phase_storms; else skip storms "no e2e.once=1: the 6.1 suite runs them"; fi
    phase_restarts # unloads kvm_amd and kvm, then loads them again
    phase_kvm_modules # last: it unloads kvm_amd
  else
    for c in exporter_counts map_memory migrating_vcpus attribution rates per_vcpu exit_time overflow least_priv drilldown_io drilldown_kinds perf_kvm_stat vcpu_time crosscheck boot_window lifecycle soak max_vms promcheck storms restarts kvm_module; do
      skip "$c" "no exporter binary in the image"
    done
  fi
  checks_end
}

main
