# shellcheck shell=dash
# SPDX-License-Identifier: Apache-2.0
# The core checks both suites are built from, sourced by svm/checks.sh
# and vmx/checks.sh after common.sh and /e2e/vendor.sh. Only exits that are
# exact by construction are asserted: io (one per OUT), cpuid (one per CPUID)
# and hlt (one per vCPU); timer interrupts and page faults vary from run to
# run and are only cross-checked against the kernel's own hist trigger over
# the same idle-to-idle period.
#
#   checks_begin checks_end          the kernel's names for the codes; the closing checks
#   check_delta check_value          one series (delta between scrapes, or value)
#   check_exits                      io, cpuid and hlt of a host, VM or vCPU
#   cross_snapshot check_crosscheck  exporter against the hist trigger
#   vmm_measure                      one VMM between two snapshots
#   check_kernel_hist check_two_vms check_hook check_reason_names
#   check_exit_time_vmm check_vcpus_share_counters check_collector_off

IO_NAME=io CPUID_NAME=cpuid HLT_NAME=hlt # replaced by the kernel's names in checks_begin

# checks_begin -> 0 once the kernel's names of the vendor's io, cpuid and hlt
# codes are known (IO_NAME, CPUID_NAME, HLT_NAME) and the hist trigger counts;
# 1 (a failed check) when its kvm_exit format lacks them
checks_begin() {
  CHECKS_START=$(now)
  IO_NAME=$(kernel_reason_name "$ISA" "$CODE_IO")
  CPUID_NAME=$(kernel_reason_name "$ISA" "$CODE_CPUID")
  HLT_NAME=$(kernel_reason_name "$ISA" "$CODE_HLT")
  info "kernel names: $CODE_IO=$IO_NAME $CODE_CPUID=$CPUID_NAME $CODE_HLT=$HLT_NAME"
  if [ -z "$IO_NAME" ] || [ -z "$CPUID_NAME" ] || [ -z "$HLT_NAME" ]; then
    fail kvm_exit_format "cannot read the $ISA exit names from $KVM_EXIT_EVENT/format"
    return 1
  fi
  hist_enable
}

# checks_end: no scrape attempt of any phase failed (scrapes_all_answered),
# and how long the checks took
checks_end() {
  if have_exporter; then
    if [ -s "$SCRAPE_ERRORS" ]; then
      fail scrapes_all_answered "$(grep -c . "$SCRAPE_ERRORS") scrape attempts of $METRICS_URL failed: $(tr '\n' ';' <"$SCRAPE_ERRORS")"
    else
      pass scrapes_all_answered
    fi
  fi
  info "checks took $(elapsed "$CHECKS_START") s, $FAILED failed"
}

# check_delta NAME PROM0 PROM1 METRIC FILTER EXPECTED: the series rose by EXPECTED
check_delta() {
  local name=$1 got
  got=$(metric_delta "$2" "$3" "$4" "$5")
  if [ "$got" = "$6" ]; then
    pass "$name"
  else
    fail "$name" "$4{$5} rose by $got ($(metric "$2" "$4" "$5") -> $(metric "$3" "$4" "$5")), expected $6"
    show_series "$3" "^$4\{"
  fi
}

# check_value NAME PROM METRIC FILTER EXPECTED: at least one series, summing to EXPECTED
check_value() {
  if metric_is "$2" "$3" "$4" "$5"; then
    pass "$1"
  else
    fail "$1" "$3{$4} is $(metric "$2" "$3" "$4") ($(metric_count "$2" "$3" "$4") series), expected $5"
    show_series "$2" "^$3\{"
  fi
}

# check_exits PREFIX METRIC PROM0 PROM1 FILTER IO CPUID HLT: METRIC's io,
# cpuid and hlt series of the vendor, narrowed by FILTER ("vm=...;pid=...",
# or empty), are exactly IO, CPUID and HLT: checks PREFIX_io, PREFIX_cpuid and
# PREFIX_hlt. With PROM0 the rise from PROM0 to PROM1 is checked, without it
# (empty) the value in PROM1. An expected count "-" leaves its reason out.
check_exits() {
  local prefix=$1 m=$2 p0=$3 p1=$4 f=${5:+$5;}isa=$ISA r
  for r in "io:$IO_NAME:$CODE_IO:$6" "cpuid:$CPUID_NAME:$CODE_CPUID:$7" "hlt:$HLT_NAME:$CODE_HLT:$8"; do
    set -- "${r%%:*}" "$(echo "$r" | cut -d: -f2)" "$(echo "$r" | cut -d: -f3)" "${r##*:}"
    [ "$4" != - ] || continue
    if [ -n "$p0" ]; then
      check_delta "${prefix}_$1" "$p0" "$p1" "$m" "$f;reason=$2;code=$3" "$4"
    else
      check_value "${prefix}_$1" "$p1" "$m" "$f;reason=$2;code=$3" "$4"
    fi
  done
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

# check_reason_names PROM: every reason label of the vendor's kvm_exits_total
# series is the running kernel's name for its code (tracefs kvm_exit/format)
check_reason_names() {
  local prom=$1 codes code names kname bad
  codes=$(metric_values "$prom" kvm_exits_total code "isa=$ISA" | awk '{ print $1 }' | sort -un)
  if [ -z "$codes" ]; then
    fail reason_names_from_kernel "no kvm_exits_total{isa=\"$ISA\"} series"
    return 0
  fi
  bad=$(for code in $codes; do
    # The label value may hold spaces ("PF excp"): all but the sample's value.
    names=$(metric_values "$prom" kvm_exits_total reason "isa=$ISA;code=$code" | sed 's/ [^ ]*$//' | sort -u)
    kname=$(kernel_reason_name "$ISA" "$code" || true)
    [ "$names" = "$kname" ] || printf '%s ' "code $code: kernel says '$kname', exporter has '$(echo "$names" | tr '\n' '|')'"
  done)
  if [ -z "$bad" ]; then
    pass reason_names_from_kernel
  else
    fail reason_names_from_kernel "$bad"
  fi
}

# ---- The exporter against the kernel's hist trigger -----------------------------

# cross_snapshot TAG: the hist trigger ($WORK/hist-TAG) and the exporter
# ($WORK/prom-TAG, its totals in $WORK/exp-TAG) at one idle moment
cross_snapshot() {
  hist_snapshot "$WORK/hist-$1"
  scrape "$WORK/prom-$1" || { fail "scrape_$1" "wget $METRICS_URL failed"; return 1; }
  exporter_snapshot "$WORK/prom-$1" "$WORK/exp-$1"
}

# check_crosscheck NAME TAG0 TAG1: per (isa, exit code), the exporter's host
# total rose exactly as much as the kernel's hist trigger counted.
check_crosscheck() {
  local name=$1 skipped
  snapshot_delta "$WORK/hist-$2" "$WORK/hist-$3" >"$WORK/hist-delta-$name"
  snapshot_delta "$WORK/exp-$2" "$WORK/exp-$3" >"$WORK/exp-delta-$name"
  if ! grep -q . "$WORK/hist-delta-$name"; then
    fail "$name" "the hist trigger counted no exits in the period"
  elif cmp -s "$WORK/hist-delta-$name" "$WORK/exp-delta-$name"; then
    pass "$name"
    info "$name (isa code delta): $(tr '\n' ';' <"$WORK/hist-delta-$name")"
  elif [ "${TRACEPOINT_RUNS_SKIPPED:-0}" = 1 ] &&
    [ "$(metric_count "$WORK/prom-$3" kvm_exit_exporter_bpf_hook_info "hook=tracepoint")" = 1 ] &&
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

# bpf_runs TAG0 TAG1 -> how often the BPF program ran between the snapshots
# (kernel.bpf_stats_enabled is on)
bpf_runs() {
  metric_delta "$WORK/prom-$1" "$WORK/prom-$2" kvm_exit_exporter_bpf_prog_run_count_total
}

# kernel_skipped_runs TAG0 TAG1 HIST_DELTA EXP_DELTA: prints how many exits the
# kernel did not run the program for, and succeeds, when that alone explains
# the gap: the exporter's total equals the program's runs, and the hist count
# exceeds both by the same number.
kernel_skipped_runs() {
  local runs hits counted
  runs=$(bpf_runs "$1" "$2")
  hits=$(awk '{ s += $3 } END { printf "%.0f\n", s }' "$3")
  counted=$(awk '{ s += $3 } END { printf "%.0f\n", s }' "$4")
  [ "$runs" -gt 0 ] && [ "$counted" -eq "$runs" ] && [ "$hits" -gt "$runs" ] || return 1
  echo $((hits - runs))
}

# bpf_runs_vs_hits TAG0 TAG1 HIST_DELTA: the program's runs in the period
# against the tracepoint's hits. Fewer runs than hits means the kernel
# skipped the program on some exits.
bpf_runs_vs_hits() {
  echo "BPF program runs in the period: $(bpf_runs "$1" "$2") for $(awk '{ s += $3 } END { printf "%.0f\n", s }' "$3") kvm_exit hits"
}

# vmm_measure CHECK NAME TAG0 TAG1 ARGS...: one test VMM (guest NAME, ARGS)
# run to its end between cross snapshots TAG0 and TAG1 (then idle: every
# exit is counted). Failures are CHECK's (CHECK_vmm for the VMM's); returns 1
# when there is nothing to check.
vmm_measure() {
  local check=$1 name=$2 t0=$3 t1=$4
  shift 4
  cross_snapshot "$t0" || return 1
  vmm_run "${check}_vmm" "$name" "$@" || return 1
  settle
  if ! cross_snapshot "$t1"; then
    vmm_stop "" "$name"
    return 1
  fi
  vmm_stop "${check}_vmm" "$name"
}

# ---- Checks both suites run ---------------------------------------------------------

# check_kernel_hist N_IO N_CPUID: the hist trigger (keys=isa,exit_reason)
# counts exactly one VMM's N_IO io, N_CPUID cpuid and 1 hlt exits
check_kernel_hist() {
  local h0="$WORK/hist-k0" h1="$WORK/hist-k1"
  hist_snapshot "$h0"
  vmm_run kernel_hist_vmm kernelcheck --io "$1" --cpuid "$2" || return 0
  vmm_stop kernel_hist_vmm kernelcheck
  hist_snapshot "$h1"
  info "test_vmm: $(grep '^TEST_VMM' "$(vmm_out kernelcheck)")"
  expect_eq kernel_hist_io "hist io (isa $ISA_NUM, exit_reason $CODE_IO) delta" "$(hist_delta "$h0" "$h1" "$CODE_IO")" "$1"
  expect_eq kernel_hist_cpuid "hist cpuid (isa $ISA_NUM, exit_reason $CODE_CPUID) delta" "$(hist_delta "$h0" "$h1" "$CODE_CPUID")" "$2"
  expect_eq kernel_hist_hlt "hist hlt (isa $ISA_NUM, exit_reason $CODE_HLT) delta" "$(hist_delta "$h0" "$h1" "$CODE_HLT")" 1
  info "kernel hist delta (isa code count): $(snapshot_delta "$h0" "$h1" | tr '\n' ';')"
}

# check_two_vms PREFIX SUFFIX TAG0 TAG1 ALPHA_IO BETA_IO BETA_CPUID: two test
# VMMs at once, alphaSUFFIX (--io ALPHA_IO, with a UUID) and betaSUFFIX (--io
# BETA_IO --cpuid BETA_CPUID), between cross snapshots TAG0 and TAG1: each
# VM's kvm_vm_exits_total is exactly its own workload (PREFIX_alpha_io,
# _alpha_hlt, _beta_io, _beta_cpuid, _beta_hlt), and alpha, which ran no
# CPUID, has no cpuid exit (PREFIX_alpha_no_cpuid). Returns 1 when there is
# nothing to check.
check_two_vms() {
  local p=$1 a="alpha$2" b="beta$2" prom="$WORK/prom-$4"
  cross_snapshot "$3" || return 1
  vmm_start "$a" -uuid 11111111-2222-3333-4444-555555555555 --io "$5"
  vmm_start "$b" --io "$6" --cpuid "$7"
  vmm_wait "${p}_vmm" "$a" "$b" || return 1
  settle
  if ! cross_snapshot "$4"; then
    vmm_stop "" "$a" "$b"
    return 1
  fi
  vmm_stop "${p}_vmm" "$a" "$b"
  check_exits "${p}_alpha" kvm_vm_exits_total "" "$prom" "vm=$a;pid=$(vmm_pid "$a")" "$5" - 1
  check_exits "${p}_beta" kvm_vm_exits_total "" "$prom" "vm=$b;pid=$(vmm_pid "$b")" "$6" "$7" 1
  expect_eq "${p}_alpha_no_cpuid" "kvm_vm_exits_total{vm=\"$a\",reason=\"$CPUID_NAME\"}" \
    "$(metric "$prom" kvm_vm_exits_total "vm=$a;pid=$(vmm_pid "$a");reason=$CPUID_NAME")" 0
}

# check_vcpus_share_counters NAME: per-vCPU counting off (the default), a
# 2-vCPU VM's vCPUs share one counter per reason (the classic tracepoint's
# record carries the vCPU id; it must not reach the key), so the counters it
# adds are as many as its kvm_vm_exits_total series. Ended VMs keep theirs
# for the 5 min grace period, so nothing else changes the count.
check_vcpus_share_counters() {
  local name=$1 vm="twovcpu$1" p0="$WORK/prom-${1}0" p1="$WORK/prom-${1}1" added series
  vmm_measure "$name" "$vm" "${name}0" "${name}1" --vcpus 2 --io 300 || return 0
  added=$(metric_delta "$p0" "$p1" kvm_exit_exporter_map_entries "map=vm_exits")
  series=$(metric_count "$p1" kvm_vm_exits_total "vm=$vm")
  if [ "$series" -ge 2 ]; then
    expect_eq "$name" "counters added by a 2-vCPU VM (kvm_exit_exporter_map_entries{map=\"vm_exits\"} delta)" "$added" "$series"
  else
    fail "$name" "only $series kvm_vm_exits_total series for vm=$vm, expected io and hlt at least"
  fi
  expect_eq "${name}_io" "kvm_vm_exits_total{vm=$vm,io}" \
    "$(metric "$p1" kvm_vm_exits_total "vm=$vm;isa=$ISA;reason=$IO_NAME;code=$CODE_IO")" 600
}

# check_collector_off EXPORTER_NAME NAME KEY PATTERN: an exporter with
# collector.KEY false serves no line matching PATTERN (grep -E)
check_collector_off() {
  local prom="$WORK/$1.prom"
  exporter_start "$1" "collector:
  $3: false
${RATES_CONFIG:-}" || return 0
  if scrape "$prom"; then
    expect_eq "$2" "lines matching $4 with $3: false" "$(grep -c -E "$4" "$prom" || true)" 0
  else
    fail "$2" "wget $METRICS_URL failed"
  fi
  exporter_stop
}

# ---- Exit handling time (issue 13) --------------------------------------------------

EXIT_TIME_DELAY_US=4000 # the timed VMM's IO handler sleeps this long per exit
EXIT_TIME_HLT=3         # HLT exits: the first two are re-entered (timed), the last is not

# check_exit_time_vmm NAME: one VMM (--io EXIT_TIME_IO with a slow IO handler,
# --cpuid EXIT_TIME_CPUID, the vendor's) timed exactly by check_exit_time
check_exit_time_vmm() {
  local name=$1
  vmm_measure "$name" "$name" "$name-0" "$name-1" --io "$EXIT_TIME_IO" \
    --io-delay-us "$EXIT_TIME_DELAY_US" --cpuid "$EXIT_TIME_CPUID" --hlt "$EXIT_TIME_HLT" || return 0
  check_exit_time "$name" "$WORK/prom-$name-0" "$WORK/prom-$name-1" "$name" \
    "$EXIT_TIME_IO" "$EXIT_TIME_DELAY_US" "$EXIT_TIME_HLT"
}

# bucket_below PROM FILTER BOUND -> cumulative count of the largest
# kvm_exit_handling_seconds bucket whose le is below BOUND (0 when none)
bucket_below() {
  metric_values "$1" kvm_exit_handling_seconds_bucket le "$2" | awk -v bound="$3" '
    $1 != "+Inf" && $1 + 0 < bound + 0 && (!seen || $1 + 0 > best) { best = $1 + 0; value = $2; seen = 1 }
    END { print seen ? value : 0 }'
}

# check_exit_time NAME PROM0 PROM1 VM N_IO D_US N_HLT
# Between two scrapes one test VMM (vm=VM) ran --io N_IO --io-delay-us D_US
# --hlt N_HLT with some cpuid exits, and nothing else made io, cpuid or hlt
# exits. Checks:
#  - timed exits (_count) equal counted exits (kvm_exits_total) for io and cpuid;
#  - hlt: all but the last HLT are timed (the VM ends there, never re-entered);
#  - every io exit is in a bucket with le >= D (none at or below the bucket
#    under D) and their _sum >= N_IO * D;
#  - cpuid exits (handled inside KVM) average below D/10;
#  - the VM's kvm_vm_exit_handling_seconds_total for io is >= N_IO * D;
#  - the idle label: true for hlt, false for io and cpuid;
#  - kvm_exit_timing_lost_total is 0.
# Prints the measured counts, sums and averages (docs and reports quote them).
check_exit_time() {
  local name=$1 p0=$2 p1=$3 vm=$4 n=$5 d_us=$6 n_hlt=$7 isa=$ISA io=$CODE_IO cpuid=$CODE_CPUID hlt=$CODE_HLT
  local h=kvm_exit_handling_seconds d_s r counted timed sum avg below vm_io
  d_s=$(awk -v d="$d_us" 'BEGIN { printf "%.6f\n", d / 1e6 }')
  for r in "io:$io" "cpuid:$cpuid"; do
    counted=$(metric_delta "$p0" "$p1" kvm_exits_total "isa=$isa;code=${r#*:}")
    timed=$(metric_delta "$p0" "$p1" ${h}_count "isa=$isa;code=${r#*:}")
    sum=$(metric_delta "$p0" "$p1" ${h}_sum "isa=$isa;code=${r#*:}")
    avg=$(awk -v s="$sum" -v c="$timed" 'BEGIN { printf "%.9f\n", (c > 0 ? s / c : 0) }')
    info "exit time ${r%%:*}: counted $counted, timed $timed, sum ${sum}s, average ${avg}s"
    expect_eq "${name}_${r%%:*}_timed_equals_counted" "${r%%:*} exits timed vs counted" "$timed" "$counted"
    if [ "${r%%:*}" = cpuid ]; then
      if awk -v a="$avg" -v d="$d_s" 'BEGIN { exit !(a > 0 && a < d / 10) }'; then
        pass "${name}_cpuid_far_below_delay"
      else
        fail "${name}_cpuid_far_below_delay" "cpuid average ${avg}s, expected > 0 and < $d_s/10"
      fi
    fi
  done
  expect_eq "${name}_io_counted" "io exits counted" \
    "$(metric_delta "$p0" "$p1" kvm_exits_total "isa=$isa;code=$io")" "$n"
  below=$(($(bucket_below "$p1" "isa=$isa;code=$io" "$d_s") - $(bucket_below "$p0" "isa=$isa;code=$io" "$d_s")))
  expect_eq "${name}_io_all_above_delay" "io exits in buckets with le < $d_s" "$below" 0
  sum=$(metric_delta "$p0" "$p1" ${h}_sum "isa=$isa;code=$io")
  if awk -v s="$sum" -v n="$n" -v d="$d_s" 'BEGIN { exit !(s >= n * d) }'; then
    pass "${name}_io_sum_at_least_n_delays"
  else
    fail "${name}_io_sum_at_least_n_delays" "io _sum rose by ${sum}s, expected >= $n * $d_s"
    show_series "$p1" "^${h}_(bucket|sum|count)\{isa=\"$isa\""
  fi
  vm_io=$(metric "$p1" kvm_vm_exit_handling_seconds_total "vm=$vm;isa=$isa;code=$io;idle=false")
  if awk -v s="$vm_io" -v n="$n" -v d="$d_s" 'BEGIN { exit !(s >= n * d) }'; then
    pass "${name}_vm_io_seconds"
  else
    fail "${name}_vm_io_seconds" "kvm_vm_exit_handling_seconds_total{vm=$vm,io,idle=false} is ${vm_io}, expected >= $n * $d_s"
    show_series "$p1" '^kvm_vm_exit_handling_seconds_total\{'
  fi
  counted=$(metric_delta "$p0" "$p1" kvm_exits_total "isa=$isa;code=$hlt")
  timed=$(metric_delta "$p0" "$p1" ${h}_count "isa=$isa;code=$hlt;idle=true")
  info "exit time hlt: counted $counted, timed $timed (the last HLT of the VM is never re-entered)"
  expect_eq "${name}_hlt_counted" "hlt exits counted" "$counted" "$n_hlt"
  expect_eq "${name}_hlt_timed_all_but_last" "hlt exits timed (idle=true)" "$timed" "$((n_hlt - 1))"
  expect_eq "${name}_idle_false_for_io_cpuid" "io/cpuid series with idle=true" \
    "$(($(metric_count "$p1" ${h}_count "isa=$isa;code=$io;idle=true") + $(metric_count "$p1" ${h}_count "isa=$isa;code=$cpuid;idle=true")))" 0
  expect_eq "${name}_timing_lost_zero" "kvm_exit_timing_lost_total" \
    "$(metric "$p1" kvm_exit_timing_lost_total)" 0
}
