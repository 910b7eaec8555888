# shellcheck shell=dash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC2034 # the variables are used by checks.sh
# Helpers of the guest-side checks (busybox sh and awk), sourced by checks.sh.

TRACEFS=/sys/kernel/tracing
KVM_EXIT_EVENT=$TRACEFS/events/kvm/kvm_exit
EXPORTER=/bin/kvm_exit_exporter
EXPORTER_PORT=9756
METRICS_URL=http://127.0.0.1:$EXPORTER_PORT/metrics
WORK=/tmp/e2e
mkdir -p "$WORK"

SVM=2 # the tracepoint's isa value for AMD SVM
CODE_CPUID=114 # SVM exit codes (arch/x86/include/uapi/asm/svm.h)
CODE_HLT=120
CODE_IO=123

# ---- Reporting ------------------------------------------------------------------

FAILED=0
pass() { echo "E2E PASS $1"; }
fail() { echo "E2E FAIL $1: $2"; FAILED=$((FAILED + 1)); }
skip() { echo "E2E SKIP $1: $2"; }
info() { echo "e2e: $*"; }

# expect_eq NAME WHAT ACTUAL EXPECTED
expect_eq() {
  if [ "$3" = "$4" ]; then
    pass "$1"
  else
    fail "$1" "$2 is $3, expected $4"
  fi
}

# Prints FILE's lines prefixed, for the log of a failed step.
show_file() {
  local prefix=$1 file=$2 lines=${3:-40}
  [ -f "$file" ] || return 0
  tail -n "$lines" "$file" | sed "s|^|$prefix: |"
}

now() { awk '{ print $1 }' /proc/uptime; }
# elapsed SINCE -> seconds since the `now` value SINCE
elapsed() { awk -v s="$1" '{ printf "%.1f\n", $1 - s }' /proc/uptime; }

# ---- Prometheus text parsing ------------------------------------------------------

# metric FILE NAME [FILTER] -> sum of the samples of NAME whose labels match
# FILTER ("k=v;k2=v2", values compared whole; label order does not matter).
# Prints 0 when no sample matches. Integers are printed without exponent.
metric() {
  metric_awk sum "$@"
}
# metric_count FILE NAME [FILTER] -> number of matching samples
metric_count() {
  metric_awk count "$@"
}
# metric_values FILE NAME LABEL [FILTER] -> "LABELVALUE VALUE" per matching sample
metric_values() {
  local file=$1 name=$2 label=$3 filter=${4:-}
  metric_awk "list:$label" "$file" "$name" "$filter"
}

metric_awk() {
  awk -v mode="$1" -v name="$3" -v filter="${4:-}" '
    BEGIN {
      nconds = split(filter, conds, ";")
      for (i = 1; i <= nconds; i++) {
        eq = index(conds[i], "=")
        ck[i] = substr(conds[i], 1, eq - 1)
        cv[i] = substr(conds[i], eq + 1)
      }
      if (mode ~ /^list:/) listlabel = substr(mode, 6)
      sum = 0; count = 0
    }
    /^#/ || NF == 0 { next }
    {
      line = $0
      brace = index(line, "{")
      if (brace > 0) {
        mname = substr(line, 1, brace - 1)
        close_at = index(line, "} ")
        rest = substr(line, brace + 1, close_at - brace - 1)
        split(substr(line, close_at + 2), vals, " ")
      } else {
        split(line, vals, " ")
        mname = vals[1]
        rest = ""
        vals[1] = vals[2]
      }
      if (mname != name) next
      for (k in labels) delete labels[k]
      while (match(rest, /[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"/)) {
        kv = substr(rest, RSTART, RLENGTH)
        eq = index(kv, "=")
        labels[substr(kv, 1, eq - 1)] = substr(kv, eq + 2, length(kv) - eq - 2)
        rest = substr(rest, RSTART + RLENGTH)
      }
      for (i = 1; i <= nconds; i++)
        if (!(ck[i] in labels) || labels[ck[i]] != cv[i]) next
      count++
      sum += vals[1]
      if (listlabel != "") print labels[listlabel], vals[1]
    }
    END {
      if (mode == "count") print count
      else if (mode == "sum") {
        if (sum == int(sum)) printf "%.0f\n", sum; else printf "%.6g\n", sum
      }
    }' "$2"
}

# ---- Kernel side: tracefs format and hist trigger --------------------------------

# svm_reason_name CODE -> the name the running kernel's kvm_exit format gives
# SVM exit code CODE (entries look like `{ 0x07b, "io" }` or `{ 0x040 + 14, "PF excp" }`)
svm_reason_name() { kernel_reason_name svm "$1"; }

# kernel_reason_name svm|vmx CODE -> the same for either vendor's table
kernel_reason_name() {
  awk -v isa="$1" -v code="$2" '
    function hex(s,   v, i) {
      v = 0; s = tolower(s)
      for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
      return v
    }
    function number(s,   n, terms, i, v, t) {
      n = split(s, terms, "+"); v = 0
      for (i = 1; i <= n; i++) {
        t = terms[i]; gsub(/ /, "", t)
        v += (t ~ /^0x/) ? hex(substr(t, 3)) : t + 0
      }
      return v
    }
    /^print fmt:/ {
      # The VMX table is the first __print_symbolic, the SVM table the last.
      n = split($0, parts, "__print_symbolic")
      text = (isa == "vmx") ? parts[2] : parts[n]
      while (match(text, /\{ *[0-9a-fA-Fx +]+, *"[^"]*" *\}/)) {
        entry = substr(text, RSTART + 1, RLENGTH - 2)
        text = substr(text, RSTART + RLENGTH)
        comma = index(entry, ",")
        name = substr(entry, comma + 1); sub(/^ *"/, "", name); sub(/" *$/, "", name)
        if (number(substr(entry, 1, comma - 1)) == code) { print name; exit }
      }
    }' "$KVM_EXIT_EVENT/format"
}

hist_enable() {
  echo 'hist:keys=isa,exit_reason:size=2048' >"$KVM_EXIT_EVENT/trigger"
}

# hist_snapshot FILE: "isa exit_reason hitcount" lines of the hist trigger
hist_snapshot() {
  awk '/^\{ *isa:/ {
         line = $0; gsub(/[{}:,]/, " ", line); split(line, f, " ")
         # f: isa N exit_reason N hitcount N
         print f[2], f[4], f[6]
       }' "$KVM_EXIT_EVENT/hist" | sort -n >"$1"
}

# snapshot_value FILE ISA CODE -> count (0 if absent)
snapshot_value() {
  awk -v isa="$2" -v code="$3" '$1 == isa && $2 == code { v = $3 } END { print v + 0 }' "$1"
}

# snapshot_delta OLD NEW -> "isa code delta" for every key whose count changed
snapshot_delta() {
  awk 'FILENAME == ARGV[1] { old[$1 " " $2] = $3; next }
       { d = $3 - old[$1 " " $2]; if (d != 0) print $1, $2, d; seen[$1 " " $2] = 1 }
       END { for (k in old) if (!(k in seen)) print k, -old[k] }' "$1" "$2" | sort -n
}

# ---- Test VMM -----------------------------------------------------------------------

# vmm_start OUTFILE ARGS... : starts test_vmm in the background, sets VMM_PID.
# The VMM holds its VM open after the scenario until vmm_stop (or 120 s), so
# the exporter sees a live VMM process when it is scraped.
vmm_start() {
  local out=$1
  shift
  /bin/test_vmm --hold-ms 120000 "$@" >"$out" 2>&1 &
  VMM_PID=$!
}

# vmm_wait_done PID OUTFILE TIMEOUT_S -> 0 when the VMM printed TEST_VMM DONE
vmm_wait_done() {
  local pid=$1 out=$2 timeout=$3 start
  start=$(now)
  while :; do
    if grep -q '^TEST_VMM DONE ' "$out" 2>/dev/null; then return 0; fi
    if grep -q '^TEST_VMM FAILED ' "$out" 2>/dev/null; then return 1; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      if grep -q '^TEST_VMM DONE ' "$out" 2>/dev/null; then return 0; fi
      echo "test_vmm: exited without a TEST_VMM DONE line" >>"$out"
      return 1
    fi
    if [ -n "$(elapsed "$start" | awk -v t="$timeout" '$1 > t')" ]; then
      echo "test_vmm: no TEST_VMM DONE line after ${timeout}s" >>"$out"
      return 1
    fi
    sleep 0.2
  done
}

# vmm_field OUTFILE KEY -> value of KEY= on the VMM's DONE/FAILED line
vmm_field() {
  awk -v k="$2" '/^TEST_VMM (DONE|FAILED) / {
      for (i = 3; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit }
    }' "$1"
}

# vmm_stop PID OUTFILE -> ends the hold (SIGTERM) and returns the VMM's exit status
vmm_stop() {
  local status=0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" || status=$?
  if [ "$status" != 0 ]; then
    show_file "test_vmm[$1]" "$2"
  fi
  return "$status"
}

# ---- Exporter -----------------------------------------------------------------------

# collector.exit_handling_time is off by default (its cost, README); the
# phases that check timing, and those whose checks should run with it, say so.
# A phase that needs more collector keys appends them to TIMING_COLLECTOR_KEYS
# under one `collector:` (a second `collector:` key would not merge).
TIMING_COLLECTOR_KEYS='  exit_handling_time: true'
TIMING_CONFIG="collector:
$TIMING_COLLECTOR_KEYS"

EXPORTER_PID=
have_exporter() { [ -x "$EXPORTER" ]; }
# A command exporter_start runs the exporter under (its words split), e.g.
# UNIT_PREFIX; empty: the exporter runs as root, as PID 1's child.
EXPORTER_PREFIX=

# The shipped systemd unit's identity (deploy/systemd/kvm_exit_exporter.service):
# a non-root uid whose only capabilities are the unit's ambient ones, with
# no_new_privs. util-linux setpriv (build_image.sh copies it to
# /usr/bin/setpriv; busybox's cannot change the uid) sets it up.
UNIT_UID=4242
UNIT_CAPS=+bpf,+perfmon,+dac_read_search
UNIT_PREFIX="/usr/bin/setpriv --reuid=$UNIT_UID --regid=$UNIT_UID --clear-groups --inh-caps=-all,$UNIT_CAPS --ambient-caps=-all,$UNIT_CAPS --bounding-set=-all,$UNIT_CAPS --no-new-privs --"
UNIT_CAPEFF=000000c000000004 # CAP_BPF 39, CAP_PERFMON 38, CAP_DAC_READ_SEARCH 2

# check_unit_identity NAME: the running exporter has the unit's uid and
# exactly its capabilities, and the kernel's perf_event_paranoid is Debian's
# default (3: perf_event_open wants CAP_SYS_ADMIN), untouched
check_unit_identity() {
  local status="/proc/$EXPORTER_PID/status" got
  got="uid $(awk '/^Uid:/ { print $2 }' "$status") CapEff $(awk '/^CapEff:/ { print $2 }' "$status") NoNewPrivs $(awk '/^NoNewPrivs:/ { print $2 }' "$status") paranoid $(cat /proc/sys/kernel/perf_event_paranoid)"
  info "least privilege exporter: $got"
  expect_eq "$1" "the exporter's identity" "$got" "uid $UNIT_UID CapEff $UNIT_CAPEFF NoNewPrivs 1 paranoid 3"
}

# scrape FILE -> 0 when /metrics answered. A failed attempt is retried twice
# and recorded in $SCRAPE_ERRORS: the `scrapes_all_answered` check reports
# them, so one refused scrape does not also fail the counting checks.
# (busybox 1.35's `wget -T` crashes with a NULL write in Debian's
# busybox-static: the time limit comes from timeout.)
SCRAPE_ERRORS=$WORK/scrape-errors
: >"$SCRAPE_ERRORS"
scrape() {
  local attempt=1 status
  while :; do
    rm -f "$1"
    status=0
    timeout 15 wget -q -O "$1" "$METRICS_URL" 2>"$WORK/wget.err" || status=$?
    [ "$status" != 0 ] || return 0
    echo "$(now) s uptime: exit $status: $(tr '\n' ' ' <"$WORK/wget.err")" >>"$SCRAPE_ERRORS"
    [ $attempt -lt 3 ] || return 1
    attempt=$((attempt + 1))
    sleep 0.5
  done
}

# exporter_start NAME CONFIG_YAML [ATTACHED]: starts the exporter and waits until
# it serves with kvm_exit_exporter_bpf_attached ATTACHED (default 1; 0 when
# kvm is not loaded yet).
exporter_start() {
  local name=$1 config="$WORK/exporter-$1.yaml" log="$WORK/exporter-$1.log" attached=${3:-1} i
  printf '%s\n' "$2" >"$config"
  info "starting exporter ($name)${EXPORTER_PREFIX:+ under $EXPORTER_PREFIX}: $(tr '\n' ' ' <"$config")"
  # shellcheck disable=SC2086 # the prefix's words, split on purpose
  $EXPORTER_PREFIX "$EXPORTER" --config.file="$config" --web.listen-address=0.0.0.0:$EXPORTER_PORT >"$log" 2>&1 &
  EXPORTER_PID=$!
  EXPORTER_LOG=$log
  i=0
  while [ $i -lt 150 ]; do
    if ! kill -0 "$EXPORTER_PID" 2>/dev/null; then
      fail "exporter_start_$name" "exporter exited during start-up"
      show_file exporter "$log"
      EXPORTER_PID=
      return 1
    fi
    if timeout 15 wget -q -O "$WORK/start.prom" "$METRICS_URL" 2>/dev/null &&
      [ "$(metric "$WORK/start.prom" kvm_exit_exporter_bpf_attached)" = "$attached" ]; then
      pass "exporter_start_$name"
      return 0
    fi
    sleep 0.2
    i=$((i + 1))
  done
  fail "exporter_start_$name" "not serving /metrics with kvm_exit_exporter_bpf_attached $attached after 30 s"
  show_file exporter "$log"
  timeout 15 wget -S -O "$WORK/start.prom" "$METRICS_URL" 2>&1 | sed 's/^/wget: /' || true
  show_file "last scrape" "$WORK/start.prom" 20
  exporter_stop
  return 1
}

# end_phase FAILED_BEFORE: stops the exporter, and shows its log when a check
# of the phase failed (FAILED rose above FAILED_BEFORE).
end_phase() {
  if [ "$FAILED" -gt "$1" ] && [ -n "${EXPORTER_LOG:-}" ]; then
    show_file exporter "$EXPORTER_LOG" 30
  fi
  exporter_stop
}

exporter_stop() {
  [ -n "$EXPORTER_PID" ] || return 0
  kill -TERM "$EXPORTER_PID" 2>/dev/null || true
  local i=0
  while kill -0 "$EXPORTER_PID" 2>/dev/null && [ $i -lt 50 ]; do
    sleep 0.2
    i=$((i + 1))
  done
  if kill -0 "$EXPORTER_PID" 2>/dev/null; then
    fail exporter_stop "exporter pid $EXPORTER_PID still running 10 s after SIGTERM"
    kill -KILL "$EXPORTER_PID" 2>/dev/null || true
  fi
  wait "$EXPORTER_PID" 2>/dev/null || true
  EXPORTER_PID=
}

# exporter_snapshot PROMFILE OUT [ISA_LABEL ISA_VALUE]: "2 code count" lines of
# kvm_exits_total{isa="svm"} (or ISA_LABEL, with the tracepoint's ISA_VALUE) in
# the same form as hist_snapshot, for the cross-check.
exporter_snapshot() {
  metric_values "$1" kvm_exits_total code "isa=${3:-svm}" |
    awk -v isa="${4:-$SVM}" '{ c[$1] += $2 } END { for (k in c) printf "%s %s %.0f\n", isa, k, c[k] }' |
    sort -n >"$2"
}

# ---- Exit handling time (issue 13), shared by both suites ---------------------------

# fdelta PROM0 PROM1 METRIC FILTER -> how much the matching samples rose (floats)
fdelta() {
  awk -v a="$(metric "$1" "$3" "$4")" -v b="$(metric "$2" "$3" "$4")" 'BEGIN { printf "%.9g\n", b - a }'
}

# bucket_below PROM FILTER BOUND -> cumulative count of the largest
# kvm_exit_handling_seconds bucket whose le is below BOUND (0 when none)
bucket_below() {
  metric_values "$1" kvm_exit_handling_seconds_bucket le "$2" | awk -v bound="$3" '
    $1 != "+Inf" && $1 + 0 < bound + 0 && (!seen || $1 + 0 > best) { best = $1 + 0; value = $2; seen = 1 }
    END { print seen ? value : 0 }'
}

# check_exit_time NAME PROM0 PROM1 ISA IO_CODE CPUID_CODE HLT_CODE VM N_IO D_US N_HLT
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
  local name=$1 p0=$2 p1=$3 isa=$4 io=$5 cpuid=$6 hlt=$7 vm=$8 n=$9 d_us=${10} n_hlt=${11}
  local h=kvm_exit_handling_seconds d_s r counted timed sum avg below vm_io
  d_s=$(awk -v d="$d_us" 'BEGIN { printf "%.6f\n", d / 1e6 }')
  for r in "io:$io" "cpuid:$cpuid"; do
    counted=$(delta_int "$p0" "$p1" kvm_exits_total "isa=$isa;code=${r#*:}")
    timed=$(delta_int "$p0" "$p1" ${h}_count "isa=$isa;code=${r#*:}")
    sum=$(fdelta "$p0" "$p1" ${h}_sum "isa=$isa;code=${r#*:}")
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
    "$(delta_int "$p0" "$p1" kvm_exits_total "isa=$isa;code=$io")" "$n"
  below=$(($(bucket_below "$p1" "isa=$isa;code=$io" "$d_s") - $(bucket_below "$p0" "isa=$isa;code=$io" "$d_s")))
  expect_eq "${name}_io_all_above_delay" "io exits in buckets with le < $d_s" "$below" 0
  sum=$(fdelta "$p0" "$p1" ${h}_sum "isa=$isa;code=$io")
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
  counted=$(delta_int "$p0" "$p1" kvm_exits_total "isa=$isa;code=$hlt")
  timed=$(delta_int "$p0" "$p1" ${h}_count "isa=$isa;code=$hlt;idle=true")
  info "exit time hlt: counted $counted, timed $timed (the last HLT of the VM is never re-entered)"
  expect_eq "${name}_hlt_counted" "hlt exits counted" "$counted" "$n_hlt"
  expect_eq "${name}_hlt_timed_all_but_last" "hlt exits timed (idle=true)" "$timed" "$((n_hlt - 1))"
  expect_eq "${name}_idle_false_for_io_cpuid" "io/cpuid series with idle=true" \
    "$(($(metric_count "$p1" ${h}_count "isa=$isa;code=$io;idle=true") + $(metric_count "$p1" ${h}_count "isa=$isa;code=$cpuid;idle=true")))" 0
  expect_eq "${name}_timing_lost_zero" "kvm_exit_timing_lost_total" \
    "$(metric "$p1" kvm_exit_timing_lost_total)" 0
}

# delta_int PROM0 PROM1 METRIC FILTER -> how much the matching samples rose (integers)
delta_int() {
  echo $(($(metric "$2" "$3" "$4") - $(metric "$1" "$3" "$4")))
}
