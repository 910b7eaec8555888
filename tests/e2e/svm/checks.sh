#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# The nested end-to-end checks (issue 3), run by /init inside the QEMU guest
# where kvm_amd makes real kvm:kvm_exit events. Prints one line per check:
#   E2E PASS <name> | E2E FAIL <name>: <detail> | E2E SKIP <name>: <why>
# Only exits that are exact by construction are asserted: `io` (one per OUT),
# `cpuid` (one per CPUID) and `hlt` (one per vCPU); timer `interrupt` and
# page-fault exits vary from run to run and are only cross-checked against
# the kernel's own hist trigger over the same quiescent-to-quiescent period.
set -eu
# shellcheck disable=SC3040 # busybox sh has pipefail
set -o pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. /e2e/common.sh
# Boot windows, VM lifecycle, soak, max_vms (issue 4); the Prometheus check (issue 5).
# shellcheck source=../lib/lifecycle_checks.sh
. /e2e/lifecycle_checks.sh
# Unloading and loading kvm around the exporter (issue 11).
# shellcheck source=../lib/kvm_module_checks.sh
. /e2e/kvm_module_checks.sh
# Drill-downs: port IO, MSRs, MMIO, hypercalls, exits to the VMM (issue 14).
# shellcheck source=../lib/drilldown_checks.sh
. /e2e/drilldown_checks.sh
# Where the vCPU threads' time goes (issue 26).
# shellcheck source=../lib/vcpu_time_checks.sh
. /e2e/vcpu_time_checks.sh
# perf kvm stat on the same workload (issue 13).
# shellcheck source=../lib/perf_kvm_checks.sh
. /e2e/perf_kvm_checks.sh

# Every exporter phase uses short rate windows so that check 6 is quick.
RATES_CONFIG='rates:
  window: 4s
  sample_interval: 500ms'
RATE_WINDOW_S=4
SETTLE_S=1            # >= 2 sample intervals: scrapes after it see every exit
RATE_TOLERANCE=0.25   # check 6: sampled rate vs the rate the VMM measured
VMM_TIMEOUT_S=120     # one scenario, from start to TEST_VMM DONE

IO_NAME=io CPUID_NAME=cpuid HLT_NAME=hlt # replaced by the kernel's names below

# ---- Scenario helpers -----------------------------------------------------------

# run_vmm CHECK OUTFILE ARGS... : runs test_vmm until its DONE line (it then
# holds, VM open and idle, until vmm_stop); sets VMM_PID. Reports a failure
# under CHECK and returns 1 when the VMM does not finish its scenario.
run_vmm() {
  local check=$1 out=$2
  shift 2
  vmm_start "$out" "$@"
  if ! vmm_wait_done "$VMM_PID" "$out" "$VMM_TIMEOUT_S"; then
    fail "$check" "test_vmm $* did not finish its scenario"
    show_file test_vmm "$out"
    kill -KILL "$VMM_PID" 2>/dev/null || true
    wait "$VMM_PID" 2>/dev/null || true
    return 1
  fi
}

# finish_vmm CHECK PID OUTFILE: ends the VMM's hold, checks its exit status
finish_vmm() {
  if vmm_stop "$2" "$3"; then
    return 0
  fi
  fail "$1" "test_vmm pid $2 exited non-zero (unexpected exit, see above)"
}

# show_series PROMFILE PATTERN: matching metric lines, for a failure's context
show_series() {
  grep -E "$2" "$1" | head -n 30 | sed 's/^/metrics: /' || true
}

settle() { sleep "$SETTLE_S"; }

# check_delta NAME PROM0 PROM1 METRIC FILTER EXPECTED
check_delta() {
  local name=$1 before after
  before=$(metric "$2" "$4" "$5")
  after=$(metric "$3" "$4" "$5")
  if [ "$((after - before))" = "$6" ]; then
    pass "$name"
  else
    fail "$name" "$4{$5} rose by $((after - before)) ($before -> $after), expected $6"
    show_series "$3" "^$4\{"
  fi
}

# check_value NAME PROM METRIC FILTER EXPECTED
check_value() {
  local value
  value=$(metric "$2" "$3" "$4")
  if [ "$value" = "$5" ] && [ "$(metric_count "$2" "$3" "$4")" -ge 1 ]; then
    pass "$1"
  else
    fail "$1" "$3{$4} is $value ($(metric_count "$2" "$3" "$4") series), expected $5"
    show_series "$2" "^$3\{"
  fi
}

# cross_snapshot TAG: hist trigger and exporter totals at one quiescent moment
cross_snapshot() {
  hist_snapshot "$WORK/hist-$1"
  scrape "$WORK/prom-$1" || { fail "scrape_$1" "wget $METRICS_URL failed"; return 1; }
  exporter_snapshot "$WORK/prom-$1" "$WORK/exp-$1"
}

# check_crosscheck NAME TAG0 TAG1: per (isa, exit code), the exporter's host
# total rose exactly as much as the kernel's hist trigger counted.
check_crosscheck() {
  local name=$1
  snapshot_delta "$WORK/hist-$2" "$WORK/hist-$3" >"$WORK/hist-delta-$name"
  snapshot_delta "$WORK/exp-$2" "$WORK/exp-$3" >"$WORK/exp-delta-$name"
  if ! grep -q . "$WORK/hist-delta-$name"; then
    fail "$name" "the hist trigger counted no exits in the period"
  elif cmp -s "$WORK/hist-delta-$name" "$WORK/exp-delta-$name"; then
    pass "$name"
  elif [ "$(metric_count "$WORK/prom-$3" kvm_exit_exporter_bpf_hook_info "hook=tracepoint")" = 1 ] &&
    skipped=$(kernel_skipped_runs "$2" "$3" "$WORK/hist-delta-$name" "$WORK/exp-delta-$name"); then
    # The exporter counted every run of its program exactly; the kernel did not
    # run it on some exits (bpf_prog_active busy: README "Known limitations").
    # Only the classic tracepoint has this gap; on tp_btf any difference fails.
    pass "${name}_every_program_run_counted"
    skip "$name" "the kernel skipped the BPF program on $skipped exit(s) (bpf_prog_active busy on that CPU), so no tracepoint program could count them"
  else
    fail "$name" "kvm_exits_total deltas differ from the kernel's hist trigger (isa code delta): kernel [$(tr '\n' ';' <"$WORK/hist-delta-$name")] exporter [$(tr '\n' ';' <"$WORK/exp-delta-$name")]; $(bpf_runs_vs_hits "$2" "$3" "$WORK/hist-delta-$name")"
    show_series "$WORK/prom-$3" '^kvm_exit_(lost|overflow)|^kvm_exit_exporter_(errors|map_entries|vms|bpf_prog_run_count)'
  fi
}

# kernel_skipped_runs TAG0 TAG1 HIST_DELTA EXP_DELTA: prints how many exits the
# kernel did not run the program for, and succeeds, when that alone explains
# the gap: the exporter's total equals the program's runs, and the hist count
# exceeds both by the same number.
kernel_skipped_runs() {
  local runs hits counted
  runs=$(($(metric "$WORK/prom-$2" kvm_exit_exporter_bpf_prog_run_count_total) - $(metric "$WORK/prom-$1" kvm_exit_exporter_bpf_prog_run_count_total)))
  hits=$(awk '{ s += $3 } END { printf "%.0f\n", s }' "$3")
  counted=$(awk '{ s += $3 } END { printf "%.0f\n", s }' "$4")
  [ "$runs" -gt 0 ] && [ "$counted" -eq "$runs" ] && [ "$hits" -gt "$runs" ] || return 1
  echo $((hits - runs))
}

# bpf_runs_vs_hits TAG0 TAG1 HIST_DELTA: how often the BPF program ran in the
# period against the tracepoint's hits (kernel.bpf_stats_enabled is on). Fewer
# runs than hits means the kernel skipped the program on some exits.
bpf_runs_vs_hits() {
  local runs hits
  runs=$(($(metric "$WORK/prom-$2" kvm_exit_exporter_bpf_prog_run_count_total) - $(metric "$WORK/prom-$1" kvm_exit_exporter_bpf_prog_run_count_total)))
  hits=$(awk '{ s += $3 } END { printf "%.0f\n", s }' "$3")
  echo "BPF program runs in the period: $runs for $hits kvm_exit hits"
}

# ---- Check 1: the kernel's own count ------------------------------------------------

check_kernel_hist() {
  local out="$WORK/vmm-kernel.out" h0="$WORK/hist-k0" h1="$WORK/hist-k1"
  hist_snapshot "$h0"
  run_vmm kernel_hist_vmm "$out" -name guest=kernelcheck,debug-threads=on --io 10000 --cpuid 5000 || return 0
  finish_vmm kernel_hist_vmm "$VMM_PID" "$out"
  hist_snapshot "$h1"
  info "test_vmm: $(grep '^TEST_VMM' "$out")"
  expect_eq kernel_hist_io "hist io (isa 2, exit_reason $CODE_IO) delta" \
    "$(($(snapshot_value "$h1" $SVM $CODE_IO) - $(snapshot_value "$h0" $SVM $CODE_IO)))" 10000
  expect_eq kernel_hist_cpuid "hist cpuid (isa 2, exit_reason $CODE_CPUID) delta" \
    "$(($(snapshot_value "$h1" $SVM $CODE_CPUID) - $(snapshot_value "$h0" $SVM $CODE_CPUID)))" 5000
  expect_eq kernel_hist_hlt "hist hlt (isa 2, exit_reason $CODE_HLT) delta" \
    "$(($(snapshot_value "$h1" $SVM $CODE_HLT) - $(snapshot_value "$h0" $SVM $CODE_HLT)))" 1
  info "kernel hist delta (isa code count): $(snapshot_delta "$h0" "$h1" | tr '\n' ';')"
}

# ---- Check 2: host totals --------------------------------------------------------------

check_exporter_counts() {
  local out="$WORK/vmm-solo.out" p0="$WORK/counts0.prom" p1="$WORK/counts1.prom"
  scrape "$p0" || { fail exporter_counts "wget $METRICS_URL failed"; return 0; }
  # 70000 > 65535: the guest's counters must be 32-bit.
  run_vmm exporter_counts_vmm "$out" -name guest=solo,debug-threads=on --io 70000 --cpuid 20000 || return 0
  settle
  scrape "$p1" || { fail exporter_counts "wget $METRICS_URL failed"; return 0; }
  finish_vmm exporter_counts_vmm "$VMM_PID" "$out"
  check_delta exporter_total_io "$p0" "$p1" kvm_exits_total "isa=svm;reason=$IO_NAME;code=$CODE_IO" 70000
  check_delta exporter_total_cpuid "$p0" "$p1" kvm_exits_total "isa=svm;reason=$CPUID_NAME;code=$CODE_CPUID" 20000
  check_delta exporter_total_hlt "$p0" "$p1" kvm_exits_total "isa=svm;reason=$HLT_NAME;code=$CODE_HLT" 1
}

# Every reason label is the kernel's own name for its code.
check_reason_names() {
  local prom=$1 bad
  bad=$(metric_values "$prom" kvm_exits_total code "isa=svm" | while read -r code _; do
    labels=$(grep -E "^kvm_exits_total\{" "$prom" | grep "code=\"$code\"" | head -n 1 || true)
    kname=$(svm_reason_name "$code" || true)
    case $labels in
      *"reason=\"$kname\""*) ;;
      *) printf '%s ' "code $code: kernel says '$kname', exporter has $labels" ;;
    esac
  done)
  if [ -z "$(metric_values "$prom" kvm_exits_total code "isa=svm")" ]; then
    fail reason_names_from_kernel "no kvm_exits_total{isa=\"svm\"} series"
  elif [ -z "$bad" ]; then
    pass reason_names_from_kernel
  else
    fail reason_names_from_kernel "$bad"
  fi
}

# ---- Check 3: per-VM attribution ----------------------------------------------------------

check_attribution() {
  local oa="$WORK/vmm-alpha.out" ob="$WORK/vmm-beta.out" pa pb prom="$WORK/attr.prom"
  vmm_start "$oa" -name guest=alpha,debug-threads=on -uuid 11111111-2222-3333-4444-555555555555 --io 12000
  pa=$VMM_PID
  vmm_start "$ob" -name guest=beta,debug-threads=on --io 7000 --cpuid 3000
  pb=$VMM_PID
  if ! vmm_wait_done "$pa" "$oa" "$VMM_TIMEOUT_S" || ! vmm_wait_done "$pb" "$ob" "$VMM_TIMEOUT_S"; then
    fail attribution_vmm "alpha or beta did not finish"
    show_file alpha "$oa"
    show_file beta "$ob"
    kill -KILL "$pa" "$pb" 2>/dev/null || true
    wait "$pa" "$pb" 2>/dev/null || true
    return 0
  fi
  settle
  scrape "$prom" || { fail attribution "wget $METRICS_URL failed"; return 0; }
  finish_vmm attribution_vmm "$pa" "$oa"
  finish_vmm attribution_vmm "$pb" "$ob"
  check_value attribution_alpha_io "$prom" kvm_vm_exits_total "vm=alpha;pid=$pa;isa=svm;reason=$IO_NAME;code=$CODE_IO" 12000
  check_value attribution_alpha_hlt "$prom" kvm_vm_exits_total "vm=alpha;pid=$pa;isa=svm;reason=$HLT_NAME;code=$CODE_HLT" 1
  check_value attribution_beta_io "$prom" kvm_vm_exits_total "vm=beta;pid=$pb;isa=svm;reason=$IO_NAME;code=$CODE_IO" 7000
  check_value attribution_beta_cpuid "$prom" kvm_vm_exits_total "vm=beta;pid=$pb;isa=svm;reason=$CPUID_NAME;code=$CODE_CPUID" 3000
  check_value attribution_beta_hlt "$prom" kvm_vm_exits_total "vm=beta;pid=$pb;isa=svm;reason=$HLT_NAME;code=$CODE_HLT" 1
  # alpha ran no CPUID: a cpuid count under alpha would be misattribution.
  expect_eq attribution_alpha_no_cpuid "kvm_vm_exits_total{vm=\"alpha\",reason=\"$CPUID_NAME\"}" \
    "$(metric "$prom" kvm_vm_exits_total "vm=alpha;pid=$pa;reason=$CPUID_NAME")" 0
}

# ---- Check 6: rates ---------------------------------------------------------------------------

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
  local out="$WORK/vmm-rate.out" prom="$WORK/rate.prom" log="$WORK/rate-hist.log"
  local samples="" sample kernel_rate t io seconds vmm_rate mean bad=""
  vmm_start "$out" -name guest=rate,debug-threads=on --io-seconds 10
  local pid=$VMM_PID
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
  if ! vmm_wait_done "$pid" "$out" 30; then
    fail rate_vmm "test_vmm --io-seconds 10 did not finish"
    show_file test_vmm "$out"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 0
  fi
  finish_vmm rate_vmm "$pid" "$out"
  io=$(vmm_field "$out" io)
  seconds=$(vmm_field "$out" seconds)
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
  sample=$(metric "$prom" kvm_exit_rate_per_second "isa=svm;reason=$IO_NAME")
  expect_eq rate_io_falls_to_zero "kvm_exit_rate_per_second{reason=\"$IO_NAME\"} after the window" "$sample" 0
}

# ---- Host scrape through QEMU's port forward ---------------------------------------------------

# The host (run_e2e.sh) scrapes the exporter through hostfwd when it sees the
# HOSTSCRAPE marker, then connects to port 9757 to say it is done.
host_scrape_handshake() {
  local prom="$WORK/host.prom" io
  case " $(cat /proc/cmdline) " in
    *" e2e.hostscrape=1 "*) ;;
    *) info "no host scrape requested (e2e.hostscrape=1 not on the kernel command line)"; return 0 ;;
  esac
  scrape "$prom" || { fail host_scrape_guest_side "wget $METRICS_URL failed"; return 0; }
  io=$(metric "$prom" kvm_exits_total "isa=svm;reason=$IO_NAME;code=$CODE_IO")
  echo "E2E HOSTSCRAPE kvm_exits_total_io=$io"
  if ! timeout 60 nc -l -p 9757 >"$WORK/host-ack" 2>&1; then
    info "the host did not connect to port 9757 within 60 s"
  fi
  info "host said: $(cat "$WORK/host-ack")"
}

# ---- Check 4: per-vCPU --------------------------------------------------------------------------

check_per_vcpu() {
  local out="$WORK/vmm-gamma.out" prom="$WORK/vcpu.prom" pid f
  run_vmm per_vcpu_vmm "$out" -name guest=gamma,debug-threads=on --vcpus 2 --io 4000,9000 --cpuid 1500,500 || return 0
  pid=$VMM_PID
  settle
  scrape "$prom" || { fail per_vcpu "wget $METRICS_URL failed"; return 0; }
  finish_vmm per_vcpu_vmm "$pid" "$out"
  f="vm=gamma;pid=$pid;isa=svm"
  check_value per_vcpu_0_io "$prom" kvm_vcpu_exits_total "$f;vcpu=0;reason=$IO_NAME;code=$CODE_IO" 4000
  check_value per_vcpu_1_io "$prom" kvm_vcpu_exits_total "$f;vcpu=1;reason=$IO_NAME;code=$CODE_IO" 9000
  check_value per_vcpu_0_cpuid "$prom" kvm_vcpu_exits_total "$f;vcpu=0;reason=$CPUID_NAME;code=$CODE_CPUID" 1500
  check_value per_vcpu_1_cpuid "$prom" kvm_vcpu_exits_total "$f;vcpu=1;reason=$CPUID_NAME;code=$CODE_CPUID" 500
  check_value per_vcpu_0_hlt "$prom" kvm_vcpu_exits_total "$f;vcpu=0;reason=$HLT_NAME;code=$CODE_HLT" 1
  check_value per_vcpu_1_hlt "$prom" kvm_vcpu_exits_total "$f;vcpu=1;reason=$HLT_NAME;code=$CODE_HLT" 1
  # The per-VM series still sums both vCPUs.
  check_value per_vcpu_vm_sum_io "$prom" kvm_vm_exits_total "$f;reason=$IO_NAME;code=$CODE_IO" 13000
}

# ---- Check 5: overflow of the per-VM map ----------------------------------------------------------

OVERFLOW_VMS=10 # x (io, cpuid, hlt, page fault) >= 40 keys for a 16-entry map

check_overflow() {
  local p0="$WORK/ovf0.prom" p1="$WORK/ovf1.prom" i pids="" io_sum=0 out ok=1
  local host_io host_all vm_io vm_all ovf ovf_io
  scrape "$p0" || { fail overflow "wget $METRICS_URL failed"; return 0; }
  i=0
  while [ $i -lt $OVERFLOW_VMS ]; do
    vmm_start "$WORK/vmm-ovf$i.out" -name "guest=ovf$i,debug-threads=on" --io $((1000 * (i + 1))) --cpuid 200
    pids="$pids $VMM_PID"
    io_sum=$((io_sum + 1000 * (i + 1)))
    i=$((i + 1))
  done
  i=0
  for pid in $pids; do
    vmm_wait_done "$pid" "$WORK/vmm-ovf$i.out" "$VMM_TIMEOUT_S" || { ok=0; show_file "ovf$i" "$WORK/vmm-ovf$i.out"; }
    i=$((i + 1))
  done
  if [ $ok = 0 ]; then
    fail overflow_vmm "not every overflow VMM finished"
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in $pids; do wait "$pid" 2>/dev/null || true; done
    return 0
  fi
  settle
  scrape "$p1" || { fail overflow "wget $METRICS_URL failed"; return 0; }
  i=0
  for pid in $pids; do
    finish_vmm overflow_vmm "$pid" "$WORK/vmm-ovf$i.out"
    i=$((i + 1))
  done

  check_delta overflow_total_io "$p0" "$p1" kvm_exits_total "isa=svm;reason=$IO_NAME;code=$CODE_IO" "$io_sum"
  check_delta overflow_total_cpuid "$p0" "$p1" kvm_exits_total "isa=svm;reason=$CPUID_NAME;code=$CODE_CPUID" $((200 * OVERFLOW_VMS))
  check_delta overflow_total_hlt "$p0" "$p1" kvm_exits_total "isa=svm;reason=$HLT_NAME;code=$CODE_HLT" "$OVERFLOW_VMS"

  ovf=$(($(metric "$p1" kvm_exit_overflow_exits_total) - $(metric "$p0" kvm_exit_overflow_exits_total)))
  if [ "$(metric_count "$p1" kvm_exit_overflow_exits_total)" -ge 1 ] && [ "$ovf" -gt 0 ]; then
    pass overflow_counted
  else
    fail overflow_counted "kvm_exit_overflow_exits_total rose by $ovf with $OVERFLOW_VMS VMs x 4 reasons in a 16-entry map, expected > 0"
    show_series "$p1" '^kvm_exit_overflow'
  fi

  # Nothing is lost: what the per-VM series miss is in the overflow counter.
  # The VMMs are idle at both scrapes, so all reasons add up exactly.
  host_all=$(($(metric "$p1" kvm_exits_total) - $(metric "$p0" kvm_exits_total)))
  vm_all=$(($(metric "$p1" kvm_vm_exits_total) - $(metric "$p0" kvm_vm_exits_total)))
  if [ "$((vm_all + ovf))" = "$host_all" ]; then
    pass overflow_sum_all_reasons
  else
    fail overflow_sum_all_reasons "sum of kvm_vm_exits_total deltas $vm_all + overflow $ovf = $((vm_all + ovf)), kvm_exits_total delta $host_all"
    show_series "$p1" '^kvm_(exit_overflow|exits_total)'
  fi
  host_io=$(($(metric "$p1" kvm_exits_total "reason=$IO_NAME") - $(metric "$p0" kvm_exits_total "reason=$IO_NAME")))
  vm_io=$(($(metric "$p1" kvm_vm_exits_total "reason=$IO_NAME") - $(metric "$p0" kvm_vm_exits_total "reason=$IO_NAME")))
  if [ "$(metric_count "$p1" kvm_exit_overflow_exits_total "reason=$IO_NAME")" -ge 1 ]; then
    ovf_io=$(($(metric "$p1" kvm_exit_overflow_exits_total "reason=$IO_NAME") - $(metric "$p0" kvm_exit_overflow_exits_total "reason=$IO_NAME")))
    expect_eq overflow_sum_io "per-VM io $vm_io + overflow io $ovf_io" "$((vm_io + ovf_io))" "$host_io"
  elif [ "$vm_io" -le "$host_io" ] && [ "$((host_io - vm_io))" -le "$ovf" ]; then
    # The overflow counter has no reason label: io's share of it is bounded.
    pass overflow_sum_io
  else
    fail overflow_sum_io "per-VM io $vm_io, host io $host_io, overflow (all reasons) $ovf"
  fi
}

# check_hook NAME PROM HOOK: the exporter says which program it attached
check_hook() {
  if [ "$(metric "$2" kvm_exit_exporter_bpf_hook_info "hook=$3")" = 1 ]; then
    pass "$1"
  else
    fail "$1" "expected kvm_exit_exporter_bpf_hook_info{hook=\"$3\"} 1"
    show_series "$2" '^kvm_exit_exporter_bpf_(hook|attached)'
  fi
}

# ---- Check 7: exit handling time (issue 13) ------------------------------------------------------

EXIT_TIME_IO=500       # io exits of the timed VMM
EXIT_TIME_DELAY_US=4000 # its IO handler sleeps this long per exit
EXIT_TIME_HLT=3        # HLT exits: the first two are re-entered (timed), the last is not

# check_exit_time_svm NAME: one VMM with a slow IO handler, timed exactly (common.sh check_exit_time)
check_exit_time_svm() {
  local name=$1 out="$WORK/vmm-$1.out" p0="$WORK/$1-0.prom" p1="$WORK/$1-1.prom"
  scrape "$p0" || { fail "$name" "wget $METRICS_URL failed"; return 0; }
  run_vmm "${name}_vmm" "$out" -name "guest=$name,debug-threads=on" --io "$EXIT_TIME_IO" \
    --io-delay-us "$EXIT_TIME_DELAY_US" --cpuid 2000 --hlt "$EXIT_TIME_HLT" || return 0
  settle
  scrape "$p1" || { fail "$name" "wget $METRICS_URL failed"; return 0; }
  finish_vmm "${name}_vmm" "$VMM_PID" "$out"
  check_exit_time "$name" "$p0" "$p1" svm "$CODE_IO" "$CODE_CPUID" "$CODE_HLT" "$name" \
    "$EXIT_TIME_IO" "$EXIT_TIME_DELAY_US" "$EXIT_TIME_HLT"
}

# ---- Phases -------------------------------------------------------------------------------------

phase_default() {
  local failed_before=$FAILED
  exporter_start default "$TIMING_CONFIG
$RATES_CONFIG" || return 0
  cross_snapshot a0 || { end_phase "$failed_before"; return 0; }
  # kernel.hook auto: tp_btf on kvm_amd, so checks 2, 3, 6 and 4 count through it.
  check_hook hook_auto_is_tp_btf "$WORK/prom-a0" tp_btf
  check_exporter_counts
  check_attribution
  check_rates
  check_exit_time_svm exit_time_tp_btf
  cross_snapshot a1 || { end_phase "$failed_before"; return 0; }
  check_crosscheck crosscheck_default a0 a1
  # Kernels >= 6.7 count the runs they skip (recursion): none may be.
  expect_eq prog_missed_zero_default "kvm_exit_exporter_bpf_prog_missed_total" \
    "$(metric "$WORK/prom-a1" kvm_exit_exporter_bpf_prog_missed_total)" 0
  check_reason_names "$WORK/prom-a1"
  expect_eq overflow_zero_default "kvm_exit_overflow_exits_total with a 16384-entry map" \
    "$(metric "$WORK/prom-a1" kvm_exit_overflow_exits_total)" 0
  host_scrape_handshake
  end_phase "$failed_before"
}

phase_per_vcpu() {
  local failed_before=$FAILED
  exporter_start per_vcpu "collector:
  per_vcpu: true
$RATES_CONFIG" || return 0
  cross_snapshot b0 || { end_phase "$failed_before"; return 0; }
  check_per_vcpu
  cross_snapshot b1 || { end_phase "$failed_before"; return 0; }
  check_crosscheck crosscheck_per_vcpu b0 b1
  end_phase "$failed_before"
}

# Per-vCPU counting off (the default) on the classic tracepoint, whose record
# carries the vCPU id: a 2-vCPU VM's vCPUs share one counter per reason, so the
# counters it adds are as many as its kvm_vm_exits_total series. (Ended VMs
# keep theirs for the 5 min grace period, so nothing else changes the count.)
check_tracepoint_vcpus_share_counters() {
  local name=tracepoint_vcpus_share_counters out="$WORK/vmm-twovcpu.out"
  local p0="$WORK/twovcpu0.prom" p1="$WORK/twovcpu1.prom" pid added series
  scrape "$p0" || { fail "$name" "wget $METRICS_URL failed"; return 0; }
  run_vmm "$name" "$out" -name guest=twovcpu,debug-threads=on --vcpus 2 --io 300 || return 0
  pid=$VMM_PID
  settle
  scrape "$p1" || { fail "$name" "wget $METRICS_URL failed"; return 0; }
  finish_vmm "${name}_vmm" "$pid" "$out"
  added=$(($(metric "$p1" kvm_exit_exporter_map_entries "map=vm_exits") - $(metric "$p0" kvm_exit_exporter_map_entries "map=vm_exits")))
  series=$(metric_count "$p1" kvm_vm_exits_total "vm=twovcpu")
  if [ "$series" -ge 2 ]; then
    expect_eq "$name" "counters added by a 2-vCPU VM (kvm_exit_exporter_map_entries{map=\"vm_exits\"} delta)" "$added" "$series"
  else
    fail "$name" "only $series kvm_vm_exits_total series for vm=twovcpu, expected io and hlt at least"
  fi
  expect_eq "${name}_io" "kvm_vm_exits_total{vm=twovcpu,io}" \
    "$(metric "$p1" kvm_vm_exits_total "vm=twovcpu;isa=svm;reason=$IO_NAME;code=$CODE_IO")" 600
}

# The classic tracepoint times exits too; with collector.exit_handling_time
# false (the default, said explicitly here) the kvm_entry program is not
# loaded and no timing family is served.
phase_exit_time() {
  local failed_before=$FAILED prom="$WORK/exit-time-off.prom"
  exporter_start exit_time_tracepoint "kernel:
  hook: tracepoint
$TIMING_CONFIG
$RATES_CONFIG" || return 0
  check_exit_time_svm exit_time_tracepoint
  check_tracepoint_vcpus_share_counters
  end_phase "$failed_before"
  failed_before=$FAILED
  exporter_start exit_time_off "collector:
  exit_handling_time: false
$RATES_CONFIG" || return 0
  if scrape "$prom"; then
    expect_eq exit_time_off_no_families "timing families with exit_handling_time: false" \
      "$(grep -c -E '^(# TYPE )?kvm_(vm_)?exit_(handling_seconds|timing_lost)' "$prom" || true)" 0
  else
    fail exit_time_off_no_families "wget $METRICS_URL failed"
  fi
  end_phase "$failed_before"
}

phase_overflow() {
  local failed_before=$FAILED
  # The classic tracepoint (the fallback where tp_btf cannot load) must count
  # exactly too: this phase's exact totals and cross-check go through it.
  exporter_start overflow "kernel:
  hook: tracepoint
collector:
  vm_map_capacity: 16
$RATES_CONFIG" || return 0
  cross_snapshot c0 || { end_phase "$failed_before"; return 0; }
  check_hook hook_tracepoint "$WORK/prom-c0" tracepoint
  check_overflow
  cross_snapshot c1 || { end_phase "$failed_before"; return 0; }
  check_crosscheck crosscheck_overflow c0 c1
  end_phase "$failed_before"
}

# The shipped systemd unit's way (issue 23): uid UNIT_UID with only CAP_BPF,
# CAP_PERFMON and CAP_DAC_READ_SEARCH, Debian's perf_event_paranoid 3, the
# default config: auto must attach raw_tp (tp_btf wants CAP_SYS_ADMIN to find
# kvm's module BTF, the classic tracepoint's perf_event_open too) and count
# exactly, with no gap against the hist trigger; exit handling time on raw_tp;
# then every drill-down kind's raw_tp program, with the kinds phase's checks.
phase_least_privilege() {
  local failed_before=$FAILED out="$WORK/vmm-lp.out" p0="$WORK/prom-lp0" p1="$WORK/prom-lp1"
  EXPORTER_PREFIX=$UNIT_PREFIX
  exporter_start least_priv "$TIMING_CONFIG
$RATES_CONFIG" || { EXPORTER_PREFIX=; return 0; }
  EXPORTER_PREFIX=
  check_unit_identity least_priv_identity
  info "least privilege: $(grep -m1 'attached to kvm:kvm_exit' "$EXPORTER_LOG" || true)"
  cross_snapshot lp0 || { end_phase "$failed_before"; return 0; }
  check_hook least_priv_hook_raw_tp "$p0" raw_tp
  run_vmm least_priv_vmm "$out" -name guest=leastpriv,debug-threads=on --io 10000 --cpuid 5000 || { end_phase "$failed_before"; return 0; }
  settle
  cross_snapshot lp1 || { end_phase "$failed_before"; return 0; }
  finish_vmm least_priv_vmm "$VMM_PID" "$out"
  check_delta least_priv_total_io "$p0" "$p1" kvm_exits_total "isa=svm;reason=$IO_NAME;code=$CODE_IO" 10000
  check_delta least_priv_total_cpuid "$p0" "$p1" kvm_exits_total "isa=svm;reason=$CPUID_NAME;code=$CODE_CPUID" 5000
  check_delta least_priv_total_hlt "$p0" "$p1" kvm_exits_total "isa=svm;reason=$HLT_NAME;code=$CODE_HLT" 1
  check_crosscheck crosscheck_least_priv lp0 lp1
  expect_eq least_priv_lost_zero "kvm_exit_lost_exits_total" "$(metric "$p1" kvm_exit_lost_exits_total)" 0
  expect_eq least_priv_prog_missed_zero "kvm_exit_exporter_bpf_prog_missed_total" \
    "$(metric "$p1" kvm_exit_exporter_bpf_prog_missed_total)" 0
  check_exit_time_svm exit_time_raw_tp
  end_phase "$failed_before"
  info "least privilege: the drill-down kinds on raw_tp (drill_kinds_* and drill_manykinds_* again)"
  EXPORTER_PREFIX=$UNIT_PREFIX
  phase_drilldown_kinds svm $CODE_IO 124 129 "1024 78" "$RATES_CONFIG
kernel:
  hook: raw_tp"
  EXPORTER_PREFIX=
}

main() {
  local start
  start=$(now)
  IO_NAME=$(svm_reason_name $CODE_IO)
  CPUID_NAME=$(svm_reason_name $CODE_CPUID)
  HLT_NAME=$(svm_reason_name $CODE_HLT)
  info "kernel names: $CODE_IO=$IO_NAME $CODE_CPUID=$CPUID_NAME $CODE_HLT=$HLT_NAME"
  if [ -z "$IO_NAME" ] || [ -z "$CPUID_NAME" ] || [ -z "$HLT_NAME" ]; then
    fail kvm_exit_format "cannot read the SVM exit names from $KVM_EXIT_EVENT/format"
    return 0
  fi
  hist_enable

  check_kernel_hist
  if have_exporter; then
    phase_default
    phase_per_vcpu
    phase_exit_time
    phase_overflow
    phase_least_privilege
    # Port IO on the classic tracepoint (kvm:kvm_pio); the kinds below and the
    # Intel suite's io phase run the tp_btf twins (kernel.hook auto).
    phase_drilldown_io svm "$IO_NAME" $CODE_IO "$RATES_CONFIG
kernel:
  hook: tracepoint"
    # MSR, MMIO, hypercall and VMM-exit drill-downs: SVM exit codes msr 0x7c,
    # vmmcall 0x81, npf 0x400 and "PF excp" 0x4e (no NPT in QEMU's SVM: KVM
    # shadows the guest's paging, so MMIO faults are #PF intercepts).
    phase_drilldown_kinds svm $CODE_IO 124 129 "1024 78" "$RATES_CONFIG"
    phase_perf_kvm_stat svm "$IO_NAME" $CODE_IO "$CPUID_NAME" $CODE_CPUID 2000 2000 "$TIMING_CONFIG
$RATES_CONFIG"
    phase_vcpu_time
    lifecycle_main
    phase_kvm_modules # last: it unloads kvm_amd
  else
    for c in exporter_counts attribution rates per_vcpu exit_time overflow least_priv drilldown_io drilldown_kinds perf_kvm_stat vcpu_time crosscheck boot_window lifecycle soak max_vms promcheck kvm_module; do
      skip "$c" "no exporter binary in the image"
    done
  fi
  if have_exporter; then
    if [ -s "$SCRAPE_ERRORS" ]; then
      fail scrapes_all_answered "$(grep -c . "$SCRAPE_ERRORS") scrape attempts of $METRICS_URL failed: $(tr '\n' ';' <"$SCRAPE_ERRORS")"
    else
      pass scrapes_all_answered
    fi
  fi
  info "checks took $(elapsed "$start") s, $FAILED failed"
}

main
