#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# Side by side with an independent tool (issue 13): `perf kvm stat record`
# (Debian's linux-perf, copied into the image with its libraries by
# build_image.sh) records the same test VMM workload the exporter counts.
# perf pairs each kvm_exit with the next kvm_entry of the same vCPU and
# reports, per reason, the exits it paired and their average time. Its counts
# must equal the workload and the exporter's kvm_vm_exits_total exactly; the
# averages are printed next to the exporter's (kvm_vm_exit_handling_seconds_total
# over the exits counted) for docs/benchmarks.md and must agree within
# PERF_AVG_TOLERANCE. HLT is not compared: the test VMM's last HLT exits to
# user space and never re-enters, so perf pairs none (and the exporter cannot
# time it either). Sourced by svm/checks.sh (SVM) and vmx/checks.sh (VMX)
# after core_checks.sh, and by bench/exit_cost/guest_bench.sh for
# perf_record_start alone (so: functions only).

# Both tools time the same intervals; they differ by where each takes its
# clock reading among the tracepoint's handlers (perf's and the BPF program's
# own run time), which is a few microseconds of an emulated CPU.
PERF_AVG_TOLERANCE=${PERF_AVG_TOLERANCE:-0.5}

# perf_record_start DATA: starts `perf kvm stat record -a` with its events
# disabled and enables them through its control FIFO; returns once perf has
# acknowledged, so every later exit is recorded (perf synthesizes the running
# threads before it enables anything, which takes seconds under Bochs, and
# prints nothing until it stops). Sets PERF_PID.
perf_record_start() {
  local ctl="$WORK/perf-ctl" ack="$WORK/perf-ack" reply=
  rm -f "$ctl" "$ack"
  mkfifo "$ctl" "$ack"
  perf kvm stat record -a -D -1 --control "fifo:$ctl,$ack" -o "$1" >"$WORK/perf-record.log" 2>&1 &
  PERF_PID=$!
  exec 8<>"$ack"
  # Opening the control FIFO blocks until perf opens it: bounded.
  # shellcheck disable=SC2016 # $1 is the inner shell's argument
  timeout 120 sh -c 'echo enable >"$1"' enable "$ctl" || true
  # shellcheck disable=SC3045 # busybox ash has read -t
  read -r -t 120 reply <&8 || true
  exec 8<&-
  [ "$reply" = ack ]
}

# perf_report_field REPORT REASON -> "SAMPLES AVG_US" of REASON's row, or nothing.
# Rows look like `  io   2000   49.78%   60.91%   0.00us   4473.72us   62.43us ( +-   6.88% )`.
perf_report_field() {
  awk -v r="$2" '$1 == r && $2 ~ /^[0-9]+$/ {
      for (i = NF; i > 2; i--) if ($i ~ /us$/) { sub(/us$/, "", $i); print $2, $i; exit }
    }' "$1"
}

# phase_perf_kvm_stat N_IO N_CPUID CONFIG: a VMM's N_IO io and N_CPUID cpuid
# exits under perf and an exporter with CONFIG
phase_perf_kvm_stat() {
  local n_io=$1 n_cpuid=$2 config=$3 isa=$ISA
  local data="$WORK/perf.data" report="$WORK/perf-report.txt" prom="$WORK/perfkvm.prom" pid
  local reason code expected row perf_n perf_avg ours_n ours_s ours_avg timing=1
  if ! command -v perf >/dev/null 2>&1; then
    skip perf_kvm_stat "perf is not in the image (build_image.sh adds linux-perf's /usr/bin/perf)"
    return 0
  fi
  exporter_start perf_kvm_stat "$config" || return 0
  if ! perf_record_start "$data"; then
    fail perf_kvm_stat_record "perf kvm stat record did not acknowledge 'enable' within 120 s"
    show_file "perf record" "$WORK/perf-record.log"
    kill -KILL "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    exporter_stop
    return 0
  fi
  if ! vmm_run perf_kvm_stat_vmm perfkvm --io "$n_io" --cpuid "$n_cpuid"; then
    kill -KILL "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    exporter_stop
    return 0
  fi
  pid=$(vmm_pid perfkvm)
  settle
  scrape "$prom" || { fail perf_kvm_stat "wget $METRICS_URL failed"; }
  vmm_stop perf_kvm_stat_vmm perfkvm
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  exporter_stop
  # perf kvm stat prints its table with pr_info, to stderr.
  if ! perf kvm -i "$data" stat report --event=vmexit --pid="$pid" >"$report" 2>&1; then
    fail perf_kvm_stat_report "perf kvm stat report failed: $(tail -n 3 "$report" | tr '\n' ' ')"
    return 0
  fi
  [ -s "$prom" ] || return 0
  [ "$(metric_count "$prom" kvm_vm_exit_handling_seconds_total)" -gt 0 ] || timing=0
  for reason in "$IO_NAME:$CODE_IO:$n_io" "$CPUID_NAME:$CODE_CPUID:$n_cpuid"; do
    code=${reason#*:}
    expected=${code#*:}
    code=${code%%:*}
    reason=${reason%%:*}
    row=$(perf_report_field "$report" "$reason")
    perf_n=${row%% *}
    perf_avg=${row#* }
    ours_n=$(metric "$prom" kvm_vm_exits_total "pid=$pid;isa=$isa;code=$code")
    if [ -z "$row" ]; then
      fail "perf_kvm_stat_count_$reason" "perf kvm stat report has no '$reason' row"
      show_file "perf kvm stat report" "$report" 30
      continue
    fi
    if [ "$perf_n" = "$expected" ] && [ "$ours_n" = "$expected" ]; then
      pass "perf_kvm_stat_count_$reason"
    else
      fail "perf_kvm_stat_count_$reason" "workload $expected, perf kvm stat $perf_n, exporter kvm_vm_exits_total $ours_n"
      show_file "perf kvm stat report" "$report" 30
    fi
    if [ $timing = 0 ]; then
      info "perf_kvm_stat $isa $reason: perf $perf_n exits, avg $perf_avg us; exporter $ours_n exits (no handling time exported)"
      continue
    fi
    ours_s=$(metric "$prom" kvm_vm_exit_handling_seconds_total "pid=$pid;isa=$isa;code=$code")
    ours_avg=$(awk -v s="$ours_s" -v n="$ours_n" 'BEGIN { if (n > 0) printf "%.2f\n", s * 1e6 / n }')
    info "perf_kvm_stat $isa $reason: perf $perf_n exits, avg $perf_avg us; exporter $ours_n exits, avg $ours_avg us"
    if awk -v a="$ours_avg" -v b="$perf_avg" -v t="$PERF_AVG_TOLERANCE" \
      'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && b > 0 && d <= t * b) }'; then
      pass "perf_kvm_stat_avg_$reason"
    else
      fail "perf_kvm_stat_avg_$reason" "exporter average $ours_avg us is not within $PERF_AVG_TOLERANCE of perf kvm stat's $perf_avg us"
      show_file "perf kvm stat report" "$report" 30
    fi
  done
}
