#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# Guest side of the per-exit cost benchmark (bench/exit_cost/README.md).
# Installed as /e2e/checks.sh by run_exit_cost.sh (an extra initramfs archive
# laid over the e2e image), so the e2e /init runs it after loading kvm_amd
# (with kernel.bpf_stats_enabled=1 already set) and prints `E2E DONE` and
# powers off after it. With EXIT_COST_VMX=1 it is /e2e/checks.sh of the
# Intel suite's image instead (Bochs; its /init loads kvm_intel and does the
# same); the loader picks the vendor's exit-reason read for ours itself.
# With EXIT_COST_ARM64=1 it is /e2e/checks.sh of the arm64 suite's image
# (QEMU aarch64, KVM built in), test_vmm is arm64_vmm, and the scenarios are
# hvc and sysreg (bench.cpuid=0 bench.io=0).
#
# Runs the same exit-heavy test_vmm scenario several times in each mode, the
# modes interleaved (and rotated run to run) so that drift hits all alike:
#   none       no program on kvm:kvm_exit (the tracepoint stays disabled)
#   <program>  exit_cost_loader <program> attached during the run (ours,
#              ours_timed, reference, or a variant the loader knows)
#   perf_kvm_stat  `perf kvm stat record -a` recording during the run (the
#              tool a user would otherwise run), no BPF program
# Prints one line per run:
#   BENCH scenario=S mode=M run=R exits=N seconds=T [run_cnt=C run_time_ns=NS
#         [counted=K top=REASON:K]]
# exits = io + cpuid + hlt + msr_reads + msr_writes + hypercalls + mmio_reads + mmio_writes from
# test_vmm's DONE line (arm64_vmm's: hvc + sysreg + psci + mmio) (the exits the scenario makes by construction); seconds = test_vmm's own wall time of the scenario;
# run_cnt/run_time_ns = the kernel's BPF statistics for the program over the
# loader's lifetime (the scenario plus VM setup, a few dozen more exits);
# counted/top = what the program's map holds (see exit_cost_loader.cpp).
# Settings come from the kernel command line (bench.KEY=VALUE):
#   bench.runs=5  bench.cpuid=200000  bench.io=100000 (0: skip the scenario)
#   bench.msr=0  bench.hypercall=0 (RDMSRs of MSR_IA32_UCODE_REV, KVM_HC_VAPIC_POLL_IRQ
#                hypercalls: the drill-down kinds' own events; 0 skips them)
#   bench.mmio=0 (reads of MMIO page 0x10000, out to test_vmm; 0 skips them)
#   bench.alternate=0 (IO exits per vCPU of two vCPU threads that take turns
#                on one CPU: each sleeps in its IO exit, so every exit follows
#                the other thread's; with mode ours_per_vcpu each exit misses
#                the per-CPU index cache; 0 skips them)
#   bench.hvc=0 bench.sysreg=0 (arm64: `hvc #0` calls and ID register reads
#                per run, both handled inside KVM; 0 skips them)
#   bench.modes=none,ours,reference  bench.stats=1 (kernel.bpf_stats_enabled)
set -eu
# shellcheck disable=SC3040 # busybox sh has pipefail
set -o pipefail

LOADER=/bin/exit_cost_loader
VMM=/bin/test_vmm
WORK=/tmp/bench
mkdir -p "$WORK"

setting() {
  local value
  value=$(tr ' ' '\n' </proc/cmdline | awk -F= -v k="bench.$1" '$1 == k { print substr($0, length(k) + 2) }' | tail -n 1)
  echo "${value:-$2}"
}

RUNS=$(setting runs 5)
CPUID_EXITS=$(setting cpuid 200000)
IO_EXITS=$(setting io 100000)
MSR_EXITS=$(setting msr 0)
HYPERCALL_EXITS=$(setting hypercall 0)
MMIO_EXITS=$(setting mmio 0)
ALTERNATE_EXITS=$(setting alternate 0)
HVC_EXITS=$(setting hvc 0)
SYSREG_EXITS=$(setting sysreg 0)
MODES=$(setting modes none,ours,reference | tr ',' ' ')
STATS=$(setting stats 1)
SETTLE_S=1

fail() { echo "BENCH FAIL $*" >&2; }

# perf_record_start (started with its events enabled through its control FIFO):
# the e2e suites' helper, one copy.
# shellcheck source-path=SCRIPTDIR source=../../tests/e2e/lib/perf_kvm_checks.sh
. /e2e/perf_kvm_checks.sh

# vmm_field OUTFILE KEY -> value of KEY= on test_vmm's DONE line
vmm_field() {
  awk -v k="$2" '/^TEST_VMM DONE / {
      for (i = 3; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit }
    }' "$1"
}

# loader_start PROGRAM: starts the loader, waits for `LOADER attached`; sets LOADER_PID
loader_start() {
  local i=0
  # Never a stale file: the grep below must see this loader's line, not the
  # last one's (the child truncates the file only once it runs).
  rm -f "$WORK/loader.out"
  : >"$WORK/loader.out"
  "$LOADER" "$1" >"$WORK/loader.out" 2>&1 &
  LOADER_PID=$!
  while [ $i -lt 300 ]; do
    grep -q '^LOADER attached' "$WORK/loader.out" && return 0
    if ! kill -0 "$LOADER_PID" 2>/dev/null; then
      fail "loader $1 exited: $(tr '\n' ' ' <"$WORK/loader.out")"
      return 1
    fi
    sleep 0.1
    i=$((i + 1))
  done
  fail "loader $1 not attached after 30 s"
  kill -KILL "$LOADER_PID" 2>/dev/null || true
  return 1
}

# loader_stop: SIGTERM, wait, then sets LOADER_STATS to "run_cnt=C run_time_ns=NS"
# from its LOADER line. (Not in a subshell: only this shell can wait for it.)
loader_stop() {
  local status=0 extra
  kill -TERM "$LOADER_PID" 2>/dev/null || true
  wait "$LOADER_PID" || status=$?
  LOADER_STATS=$(awk '/^LOADER program=[^ ]* run_cnt=/ { $1 = $2 = ""; sub(/^ +/, ""); print }' "$WORK/loader.out")
  # ours_drilldown: the kvm_pio program's statistics, on the same BENCH line.
  extra=$(awk '/^LOADER extra / { $1 = $2 = ""; sub(/^ +/, ""); print }' "$WORK/loader.out")
  [ -z "$extra" ] || LOADER_STATS="$LOADER_STATS $extra"
  if [ -z "$LOADER_STATS" ]; then
    fail "loader exit status $status, no statistics: $(tr '\n' ' ' <"$WORK/loader.out")"
    return 1
  fi
}

# run_one SCENARIO MODE RUN VMM_ARGS...
run_one() {
  local scenario=$1 mode=$2 run=$3 stats="" exits seconds key value
  shift 3
  case $mode in
    none) ;;
    perf_kvm_stat)
      perf_record_start "$WORK/perf.data" || {
        fail "perf kvm stat record did not start: $(tr '\n' ' ' <"$WORK/perf-record.log")"
        return 1
      }
      ;;
    *) loader_start "$mode" || return 1 ;;
  esac
  if ! "$VMM" "$@" >"$WORK/vmm.out" 2>&1; then
    fail "test_vmm $* failed: $(tail -n 3 "$WORK/vmm.out" | tr '\n' ' ')"
    case $mode in
      none) ;;
      perf_kvm_stat) kill -INT "$PERF_PID" 2>/dev/null || true ;;
      *) loader_stop || true ;;
    esac
    return 1
  fi
  if [ "$mode" = perf_kvm_stat ]; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" || true
    rm -f "$WORK/perf.data"
    sleep "$SETTLE_S"
  elif [ "$mode" != none ]; then
    loader_stop || return 1
    stats=" $LOADER_STATS"
    # The map freed behind the loader (the reference's is 16 MB, preallocated)
    # goes in deferred work: let it finish before the next timed run.
    sleep "$SETTLE_S"
  fi
  exits=0
  # arm64_vmm's keys (hvc sysreg psci mmio) after test_vmm's; a key absent counts 0.
  for key in io cpuid hlt msr_reads msr_writes hypercalls mmio_reads mmio_writes hvc sysreg psci mmio; do
    value=$(vmm_field "$WORK/vmm.out" "$key")
    exits=$((exits + ${value:-0}))
  done
  seconds=$(vmm_field "$WORK/vmm.out" seconds)
  echo "BENCH scenario=$scenario mode=$mode run=$run exits=$exits seconds=$seconds$stats"
}

# rotate N WORDS...: the words, the first N moved to the end
rotate() {
  local n=$1
  shift
  echo "$@" | awk -v n="$n" '{ k = n % NF; for (i = 1; i <= NF; i++) printf "%s%s", $((i + k - 1) % NF + 1), (i < NF ? " " : "\n") }'
}

scenario() {
  local name=$1 run mode
  shift
  # Warm-up (not reported): page cache, first KVM VM creation, program load.
  for mode in $MODES; do
    run_one "$name" "$mode" 0 "$@" >/dev/null || return 1
  done
  run=1
  while [ "$run" -le "$RUNS" ]; do
    # shellcheck disable=SC2086 # MODES is a word list
    for mode in $(rotate $((run - 1)) $MODES); do
      run_one "$name" "$mode" "$run" "$@" || return 1
    done
    run=$((run + 1))
  done
}

main() {
  local status=0
  echo "$STATS" >/proc/sys/kernel/bpf_stats_enabled
  echo "BENCH begin kernel=$(uname -r) cpus=$(nproc) possible_cpus=$(cat /sys/devices/system/cpu/possible) runs=$RUNS cpuid=$CPUID_EXITS io=$IO_EXITS msr=$MSR_EXITS hypercall=$HYPERCALL_EXITS mmio=$MMIO_EXITS alternate=$ALTERNATE_EXITS hvc=$HVC_EXITS sysreg=$SYSREG_EXITS modes=$(echo "$MODES" | tr ' ' ',') bpf_stats_enabled=$(cat /proc/sys/kernel/bpf_stats_enabled)"
  if [ "$CPUID_EXITS" != 0 ]; then
    scenario cpuid --cpuid "$CPUID_EXITS" || status=1
  fi
  if [ "$IO_EXITS" != 0 ]; then
    scenario io --io "$IO_EXITS" || status=1
  fi
  if [ "$MSR_EXITS" != 0 ]; then
    scenario msr --msrs "0x8b:$MSR_EXITS" || status=1
  fi
  if [ "$HYPERCALL_EXITS" != 0 ]; then
    scenario hypercall --hypercalls "1:$HYPERCALL_EXITS" || status=1
  fi
  if [ "$MMIO_EXITS" != 0 ]; then
    # Reads of a page outside guest RAM: each a page-fault exit that KVM
    # hands to test_vmm as KVM_EXIT_MMIO (kvm_mmio fires twice, counted once).
    scenario mmio --mmio "0x10000:$MMIO_EXITS" || status=1
  fi
  if [ "$ALTERNATE_EXITS" != 0 ]; then
    # The worst case of a per-CPU cache: two vCPU threads on one CPU, the
    # other's exit between any two of one's (the "miss path").
    scenario io_alternating --vcpus 2 --io "$ALTERNATE_EXITS" --io-delay-us 1 || status=1
  fi
  if [ "$HVC_EXITS" != 0 ]; then
    # arm64: HVC64 exits answered inside KVM (plus one PSCI SYSTEM_OFF).
    scenario hvc --hvc "$HVC_EXITS" || status=1
  fi
  if [ "$SYSREG_EXITS" != 0 ]; then
    # arm64: SYS64 exits (ID_AA64PFR0_EL1 reads, HCR_EL2.TID3) emulated inside KVM.
    scenario sysreg --sysreg "$SYSREG_EXITS" || status=1
  fi
  echo "BENCH end status=$status"
  return "$status"
}

main
