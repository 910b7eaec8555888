#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# collector.vcpu_time (issue 26): where the vCPU threads' time goes, against
# vCPUs whose state is known. /bin/vcpu_time_vmm (tests/e2e/vcpu_time_vmm.c)
# spins in guest mode or halts for a given time; test_vmm's slow IO handler
# makes a vCPU that mostly waits in its VMM. Each check takes the shares of
# kvm_vm_vcpu_seconds_total's modes between two scrapes VT_GAP_S apart, while
# the VMM runs throughout.
#
# Run by svm/checks.sh; written to run in the Intel suite too (no config of
# that suite's is needed), where on Bochs's one CPU the pinned VMMs share it
# with the exporter and the shell, idle but for a sample a second.
#
# Tolerances: guest time is charged a whole tick (CONFIG_HZ 250 here, read in
# USER_HZ 100 units) to whatever mode the thread is in at the tick, so over
# VT_GAP_S = 8 s (2,000 ticks) a share is exact to well under 1%; the wider
# bounds below leave room for the nested guest itself (QEMU TCG runs its two
# CPUs on one host thread, and its timer ticks exit the vCPU into KVM). The
# modes are sampled every VT_INTERVAL_S, so their sum over the gap is the gap
# within one interval either side.

VT_VMM=/bin/vcpu_time_vmm
VT_GAP_S=8
VT_INTERVAL_S=1
VT_WARMUP_S=3 # the VM tracked (its first exits), then a vCPU time sample
VT_CONFIG="collector:
  vcpu_time: true
  vcpu_time_interval: ${VT_INTERVAL_S}s"

# vt_start OUTFILE CPU ARGS... : starts vcpu_time_vmm in the background, every
# thread pinned to CPU (taskset execs it: the same pid), sets VT_PID
vt_start() {
  local out=$1 cpu=$2
  shift 2
  taskset -c "$cpu" "$VT_VMM" "$@" >"$out" 2>&1 &
  VT_PID=$!
}

# vt_window TAG PID...: scrapes $WORK/vt-TAG-0.prom once every PID has its
# vCPU time series (up to 3 s more: a vCPU thread is found at its first guest
# tick and brings its whole history, which must not fall inside the window),
# waits VT_GAP_S, scrapes -1.prom
vt_window() {
  local tag=$1 tries=0 pid missing
  shift
  sleep "$VT_WARMUP_S"
  while :; do
    scrape "$WORK/vt-$tag-0.prom" || return 1
    missing=0
    for pid in "$@"; do
      [ "$(metric_count "$WORK/vt-$tag-0.prom" kvm_vm_vcpu_seconds_total "pid=$pid")" = 4 ] ||
        missing=1
    done
    [ "$missing" = 0 ] || [ "$tries" -ge 3 ] && break
    tries=$((tries + 1))
    sleep 1
  done
  sleep "$VT_GAP_S"
  scrape "$WORK/vt-$tag-1.prom"
}

# vt_delta TAG PID MODE -> seconds MODE grew between the window's scrapes
vt_delta() {
  awk -v a="$(metric "$WORK/vt-$1-0.prom" kvm_vm_vcpu_seconds_total "pid=$2;mode=$3")" \
    -v b="$(metric "$WORK/vt-$1-1.prom" kvm_vm_vcpu_seconds_total "pid=$2;mode=$3")" \
    'BEGIN { printf "%.4f\n", b - a }'
}

# vt_shares TAG PID: sets VT_TOTAL (seconds, all modes) and VT_GUEST, VT_HOST,
# VT_WAITING, VT_SLEEPING (shares of it); returns 1 when the VM has no series.
vt_shares() {
  local g h w s
  if [ "$(metric_count "$WORK/vt-$1-1.prom" kvm_vm_vcpu_seconds_total "pid=$2")" != 4 ]; then
    return 1
  fi
  g=$(vt_delta "$1" "$2" guest)
  h=$(vt_delta "$1" "$2" host)
  w=$(vt_delta "$1" "$2" waiting)
  s=$(vt_delta "$1" "$2" sleeping)
  VT_TOTAL=$(awk -v g="$g" -v h="$h" -v w="$w" -v s="$s" 'BEGIN { printf "%.3f\n", g + h + w + s }')
  share() { awk -v x="$1" -v t="$VT_TOTAL" 'BEGIN { printf "%.3f\n", (t > 0 ? x / t : 0) }'; }
  VT_GUEST=$(share "$g")
  VT_HOST=$(share "$h")
  VT_WAITING=$(share "$w")
  VT_SLEEPING=$(share "$s")
  info "vcpu_time $1 (pid $2): ${VT_TOTAL} s over a ${VT_GAP_S} s gap: guest $VT_GUEST host $VT_HOST waiting $VT_WAITING sleeping $VT_SLEEPING"
}

# vt_expect NAME VALUE OP BOUND WHAT: passes when VALUE OP BOUND (awk comparison)
vt_expect() {
  if awk -v v="$2" -v b="$4" "BEGIN { exit !(v $3 b) }"; then
    pass "$1"
  else
    fail "$1" "$5 is $2, expected $3 $4"
  fi
}

# vt_expect_total NAME: the modes add up to the gap, within one sample interval
# and 5% (one vCPU thread per VM in these checks).
vt_expect_total() {
  local low high
  low=$(awk -v g="$VT_GAP_S" -v i="$VT_INTERVAL_S" 'BEGIN { print g * 0.95 - i }')
  high=$(awk -v g="$VT_GAP_S" -v i="$VT_INTERVAL_S" 'BEGIN { print g * 1.05 + i }')
  vt_expect "${1}_low" "$VT_TOTAL" ">=" "$low" "guest+host+waiting+sleeping over the ${VT_GAP_S} s gap"
  vt_expect "${1}_high" "$VT_TOTAL" "<=" "$high" "guest+host+waiting+sleeping over the ${VT_GAP_S} s gap"
}

# vt_stop PID: ends a VMM still running or holding
vt_stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# One vCPU spinning alone on the last CPU: in guest mode nearly all the time.
check_vcpu_time_spin() {
  local cpu=$1 out="$WORK/vt-spin.out"
  vt_start "$out" "$cpu" -name guest=vtspin --mode spin --seconds $((VT_WARMUP_S + VT_GAP_S + 4))
  local pid=$VT_PID
  vt_window spin "$pid" || { fail vcpu_time_spin "wget $METRICS_URL failed"; vt_stop "$pid"; return 0; }
  vt_stop "$pid"
  if ! vt_shares spin "$pid"; then
    fail vcpu_time_spin "no kvm_vm_vcpu_seconds_total series for the spinning VM (pid $pid)"
    show_series "$WORK/vt-spin-1.prom" '^kvm_vm_(vcpu_seconds_total|exits_total)'
    show_file vcpu_time_vmm "$out"
    return 0
  fi
  vt_expect vcpu_time_spin_guest "$VT_GUEST" ">=" 0.80 "the spinning vCPU's guest share"
  vt_expect vcpu_time_spin_waiting "$VT_WAITING" "<=" 0.05 "the spinning vCPU's waiting share"
  vt_expect_total vcpu_time_spin_total
}

# Two VMs spinning on the same CPU: each waits for it about half the time.
check_vcpu_time_pair() {
  local cpu=$1 p1 p2 pid
  vt_start "$WORK/vt-pair1.out" "$cpu" -name guest=vtpair1 --mode spin --seconds $((VT_WARMUP_S + VT_GAP_S + 4))
  p1=$VT_PID
  vt_start "$WORK/vt-pair2.out" "$cpu" -name guest=vtpair2 --mode spin --seconds $((VT_WARMUP_S + VT_GAP_S + 4))
  p2=$VT_PID
  vt_window pair "$p1" "$p2" || { fail vcpu_time_pair "wget $METRICS_URL failed"; vt_stop "$p1"; vt_stop "$p2"; return 0; }
  vt_stop "$p1"
  vt_stop "$p2"
  for pid in $p1 $p2; do
    if ! vt_shares pair "$pid"; then
      fail vcpu_time_pair "no kvm_vm_vcpu_seconds_total series for pid $pid"
      show_series "$WORK/vt-pair-1.prom" '^kvm_vm_vcpu_seconds_total'
      continue
    fi
    vt_expect "vcpu_time_pair_${pid}_waiting_low" "$VT_WAITING" ">=" 0.35 "a CPU-sharing spinner's waiting share"
    vt_expect "vcpu_time_pair_${pid}_waiting_high" "$VT_WAITING" "<=" 0.65 "a CPU-sharing spinner's waiting share"
    vt_expect_total "vcpu_time_pair_${pid}_total"
  done
}

# A halted vCPU (after a short spin, so it is known as a vCPU thread) sleeps.
check_vcpu_time_halt() {
  local cpu=$1 pid
  vt_start "$WORK/vt-halt.out" "$cpu" -name guest=vthalt --mode spinhalt --spin-ms 500 \
    --seconds $((VT_WARMUP_S + VT_GAP_S + 4))
  pid=$VT_PID
  vt_window halt "$pid" || { fail vcpu_time_halt "wget $METRICS_URL failed"; vt_stop "$pid"; return 0; }
  vt_stop "$pid"
  if ! vt_shares halt "$pid"; then
    fail vcpu_time_halt "no kvm_vm_vcpu_seconds_total series for the halted VM (pid $pid)"
    show_file vcpu_time_vmm "$WORK/vt-halt.out"
    return 0
  fi
  vt_expect vcpu_time_halt_sleeping "$VT_SLEEPING" ">=" 0.90 "the halted vCPU's sleeping share"
  vt_expect_total vcpu_time_halt_total
}

# test_vmm's IO handler sleeps 4 ms per exit: the VMM's wait is the vCPU
# thread's (sleeping, or host while it handles the exit), not the guest's.
check_vcpu_time_io_delay() {
  local out="$WORK/vt-io.out" pid
  vmm_start "$out" -name guest=vtio,debug-threads=on --io-seconds $((VT_WARMUP_S + VT_GAP_S + 4)) \
    --io-delay-us 4000
  pid=$VMM_PID
  vt_window io "$pid" || { fail vcpu_time_io_delay "wget $METRICS_URL failed"; vt_stop "$pid"; return 0; }
  vt_stop "$pid"
  if ! vt_shares io "$pid"; then
    fail vcpu_time_io_delay "no kvm_vm_vcpu_seconds_total series for the IO-delay VM (pid $pid): its vCPU thread was never charged a guest tick"
    show_series "$WORK/vt-io-1.prom" '^kvm_vm_vcpu_seconds_total'
    return 0
  fi
  vt_expect vcpu_time_io_delay_guest "$VT_GUEST" "<=" 0.20 "the IO-delay vCPU's guest share"
  vt_expect vcpu_time_io_delay_sleeping_host "$(awk -v s="$VT_SLEEPING" -v h="$VT_HOST" 'BEGIN { print s + h }')" \
    ">=" 0.75 "the IO-delay vCPU's sleeping + host share"
  vt_expect_total vcpu_time_io_delay_total
}

phase_vcpu_time() {
  local failed_before=$FAILED cpu
  if [ ! -x "$VT_VMM" ]; then
    skip vcpu_time "no $VT_VMM in the image"
    return 0
  fi
  cpu=$(($(nproc) - 1))
  exporter_start vcpu_time "$VT_CONFIG
${RATES_CONFIG:-}" || return 0
  check_vcpu_time_spin "$cpu"
  check_vcpu_time_pair "$cpu"
  check_vcpu_time_halt "$cpu"
  check_vcpu_time_io_delay
  # Off: no family at all.
  end_phase "$failed_before"
  failed_before=$FAILED
  exporter_start vcpu_time_off "collector:
  vcpu_time: false
${RATES_CONFIG:-}" || return 0
  if scrape "$WORK/vt-off.prom"; then
    expect_eq vcpu_time_off_no_family "kvm_vm_vcpu_seconds_total lines with vcpu_time: false" \
      "$(grep -c '^kvm_vm_vcpu_seconds_total' "$WORK/vt-off.prom" || true)" 0
  else
    fail vcpu_time_off_no_family "wget $METRICS_URL failed"
  fi
  end_phase "$failed_before"
}
