# shellcheck shell=dash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC2034 # the variables are used by the scripts that source this
# The guest side's helper vocabulary (busybox sh and awk), one name per act.
# Sourced first by both suites' checks (svm/checks.sh, vmx/checks.sh, and so
# by every lib/*_checks.sh) and by the host suite's guest script
# (tests/host/guest/control.sh, which uses the reporting, parsing and tracefs
# helpers only). Besides the paths below it only defines functions; the
# vendor's constants ($ISA, $CODE_IO, $VMM_TIMEOUT_S, ...) come from
# /e2e/vendor.sh (svm/vendor.sh or vmx/vendor.sh).
#
#   report     pass fail skip info expect_eq expect_cmp show_file show_series
#   time       now elapsed settle
#   parse      metric metric_count metric_values metric_is no_series metric_delta
#   kernel     kernel_reason_name hist_enable hist_snapshot hist_delta snapshot_delta
#   VMMs       vmm_start vmm_spawn vmm_run vmm_wait vmm_stop vmm_kill vmm_pid vmm_out vmm_field
#   exporter   have_exporter exporter_start exporter_stop exporter_kill as_unit check_unit_identity
#   scrape     scrape scrape_until exporter_snapshot
#   host       host_requested host_ask

TRACEFS=/sys/kernel/tracing
KVM_EXIT_EVENT=$TRACEFS/events/kvm/kvm_exit
EXPORTER=/bin/kvm_exit_exporter
EXPORTER_PORT=9756
METRICS_URL=http://127.0.0.1:$EXPORTER_PORT/metrics
HOST_ACK_PORT=9757 # the host connects here when it has done what the guest asked
WORK=/tmp/e2e
mkdir -p "$WORK"

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

# expect_cmp NAME VALUE OP BOUND WHAT: passes when VALUE OP BOUND (an awk
# comparison of numbers, e.g. ">=")
expect_cmp() {
  if awk -v v="$2" -v b="$4" "BEGIN { exit !(v $3 b) }"; then
    pass "$1"
  else
    fail "$1" "$5 is $2, expected $3 $4"
  fi
}

# show_file PREFIX FILE [LINES]: FILE's last lines prefixed, for the log of a failed step
show_file() {
  local prefix=$1 file=$2 lines=${3:-40}
  [ -f "$file" ] || return 0
  tail -n "$lines" "$file" | sed "s|^|$prefix: |"
}

# show_series PROMFILE PATTERN: matching metric lines, for a failure's context
show_series() {
  grep -E "$2" "$1" | head -n 30 | sed 's/^/metrics: /' || true
}

# ---- Time -----------------------------------------------------------------------

now() { awk '{ print $1 }' /proc/uptime; }
# elapsed SINCE -> seconds since the `now` value SINCE
elapsed() { awk -v s="$1" '{ printf "%.1f\n", $1 - s }' /proc/uptime; }
# settle: lets the exporter's reads after the VMMs went idle see every exit
settle() { sleep "${SETTLE_S:-1}"; }

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
# metric_is PROM METRIC FILTER VALUE: at least one series matches and they sum to VALUE
metric_is() {
  [ "$(metric_count "$1" "$2" "$3")" -ge 1 ] && [ "$(metric "$1" "$2" "$3")" = "$4" ]
}
# no_series PROM METRIC FILTER
no_series() {
  [ "$(metric_count "$1" "$2" "$3")" = 0 ]
}
# metric_delta PROM0 PROM1 METRIC [FILTER] -> how much the matching samples
# rose (an integer when it is one)
metric_delta() {
  awk -v a="$(metric "$1" "$3" "${4:-}")" -v b="$(metric "$2" "$3" "${4:-}")" \
    'BEGIN { d = b - a; if (d == int(d)) printf "%.0f\n", d; else printf "%.9g\n", d }'
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

# kernel_reason_name svm|vmx|arm64 CODE -> the name the running kernel's
# kvm_exit format gives exit code CODE of that vendor (entries look like
# `{ 0x07b, "io" }`, `{ 0x040 + 14, "PF excp" }` or arm64's `{ (0x24),
# "DABT_LOW" }`). arm64 codes: the exception class (ESR_EL2.EC) of a trap,
# 256 + ret for the other exits (256 "IRQ"), as the exporter labels them.
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
        t = terms[i]; gsub(/[ ()]/, "", t)
        v += (t ~ /^0x/) ? hex(substr(t, 3)) : t + 0
      }
      return v
    }
    /^print fmt:/ {
      # The VMX table is the first __print_symbolic, the SVM table the last;
      # arm64 has the table of ret, then the exception classes.
      n = split($0, parts, "__print_symbolic")
      text = (isa == "vmx") ? parts[2] : parts[n]
      if (isa == "arm64") {
        if (code >= 256) { text = parts[2]; code -= 256 } else text = parts[3]
      }
      while (match(text, /\{ *[0-9a-fA-Fx +()]+, *"[^"]*" *\}/)) {
        entry = substr(text, RSTART + 1, RLENGTH - 2)
        text = substr(text, RSTART + RLENGTH)
        comma = index(entry, ",")
        name = substr(entry, comma + 1); sub(/^ *"/, "", name); sub(/" *$/, "", name)
        if (number(substr(entry, 1, comma - 1)) == code) { print name; exit }
      }
    }' "$KVM_EXIT_EVENT/format"
}

# The hist trigger's keys and how its lines read are the vendor's: a
# vendor.sh (sourced after this file) may set HIST_KEYS and redefine
# hist_parse (arm64/vendor.sh: keys ret,esr_ec); these defaults are x86's.
hist_enable() {
  echo "hist:keys=${HIST_KEYS:-isa,exit_reason}:size=2048" >"$KVM_EXIT_EVENT/trigger"
}

# hist_parse < HIST -> "isa exit_reason hitcount" per line of the hist trigger
hist_parse() {
  awk '/^\{ *isa:/ {
         line = $0; gsub(/[{}:,]/, " ", line); split(line, f, " ")
         # f: isa N exit_reason N hitcount N
         print f[2], f[4], f[6]
       }'
}

# hist_snapshot FILE: "isa code hitcount" lines of the hist trigger
hist_snapshot() {
  hist_parse <"$KVM_EXIT_EVENT/hist" | sort -n >"$1"
}

# snapshot_value FILE ISA CODE -> count (0 if absent)
snapshot_value() {
  awk -v isa="$2" -v code="$3" '$1 == isa && $2 == code { v = $3 } END { print v + 0 }' "$1"
}

# hist_delta OLD NEW CODE -> how many exits of the vendor's CODE the hist
# trigger counted between the snapshots OLD and NEW
hist_delta() {
  echo $(($(snapshot_value "$2" "$ISA_NUM" "$3") - $(snapshot_value "$1" "$ISA_NUM" "$3")))
}

# snapshot_delta OLD NEW -> "isa code delta" for every key whose count changed
snapshot_delta() {
  awk 'FILENAME == ARGV[1] { old[$1 " " $2] = $3; next }
       { d = $3 - old[$1 " " $2]; if (d != 0) print $1, $2, d; seen[$1 " " $2] = 1 }
       END { for (k in old) if (!(k in seen)) print k, -old[k] }' "$1" "$2" | sort -n
}

# ---- VMMs -----------------------------------------------------------------------------
# Every VMM has a NAME (its guest name for the test VMM): its output is
# `vmm_out NAME`, its pid `vmm_pid NAME`.

vmm_out() { echo "$WORK/vmm-$1.out"; }
vmm_pid() { cat "$WORK/vmm-$1.pid"; }

# vmm_spawn NAME COMMAND...: runs COMMAND in the background as the VMM NAME;
# sets VMM_PID
vmm_spawn() {
  local name=$1
  shift
  "$@" >"$WORK/vmm-$name.out" 2>&1 &
  VMM_PID=$!
  echo "$VMM_PID" >"$WORK/vmm-$name.pid"
}

# vmm_start NAME ARGS...: starts test_vmm as guest NAME in the background. It
# holds its VM open (idle) after the scenario until vmm_stop (or 120 s), so the
# exporter sees a live VMM process when it is scraped.
vmm_start() {
  local name=$1
  shift
  vmm_spawn "$name" /bin/test_vmm --hold-ms 120000 -name "guest=$name,debug-threads=on" "$@"
}

# vmm_run CHECK NAME ARGS...: vmm_start, then vmm_wait CHECK NAME
vmm_run() {
  local check=$1 name=$2
  shift 2
  vmm_start "$name" "$@"
  vmm_wait "$check" "$name"
}

# vmm_wait CHECK NAME... -> 0 once every VMM NAME printed TEST_VMM DONE; else
# (one failed, exited without it, or took more than VMM_TIMEOUT_S) fails
# CHECK for it, shows its output, kills all of them and returns 1.
vmm_wait() {
  local check=$1 name status=0
  shift
  for name in "$@"; do
    if ! vmm_done "$(vmm_pid "$name")" "$(vmm_out "$name")" "${VMM_TIMEOUT_S:-120}"; then
      fail "$check" "test_vmm $name did not finish its scenario"
      show_file "test_vmm $name" "$(vmm_out "$name")"
      status=1
    fi
  done
  [ "$status" = 0 ] || vmm_kill "$@"
  return "$status"
}

# vmm_done PID OUTFILE TIMEOUT_S -> 0 when the VMM printed TEST_VMM DONE (vmm_wait's)
vmm_done() {
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

# vmm_stop CHECK NAME...: ends each VMM's hold (SIGTERM) and waits for it;
# fails CHECK for each that exited non-zero. An empty CHECK: the exit status
# does not matter (a --io-seconds loop or vcpu_time_vmm dies of the SIGTERM).
vmm_stop() {
  local check=$1 name pid status
  shift
  for name in "$@"; do
    pid=$(vmm_pid "$name")
    kill -TERM "$pid" 2>/dev/null || true
    status=0
    wait "$pid" 2>/dev/null || status=$?
    if [ -n "$check" ] && [ "$status" != 0 ]; then
      show_file "test_vmm $name" "$(vmm_out "$name")"
      fail "$check" "test_vmm $name (pid $pid) exited with status $status"
    fi
  done
}

# vmm_kill NAME...: ends VMMs that did not finish (SIGKILL: a VMM blocks
# SIGTERM until its scenario is over)
vmm_kill() {
  local name
  for name in "$@"; do
    kill -KILL "$(vmm_pid "$name")" 2>/dev/null || true
    wait "$(vmm_pid "$name")" 2>/dev/null || true
  done
}

# vmm_field NAME KEY -> value of KEY= on the VMM's DONE/FAILED line
vmm_field() {
  awk -v k="$2" '/^TEST_VMM (DONE|FAILED) / {
      for (i = 3; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit }
    }' "$(vmm_out "$1")"
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

# as_unit COMMAND...: runs COMMAND with every exporter it starts under the
# unit's identity (UNIT_PREFIX)
as_unit() {
  local status=0
  EXPORTER_PREFIX=$UNIT_PREFIX
  "$@" || status=$?
  EXPORTER_PREFIX=
  return "$status"
}

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

# scrape_until TIMEOUT_S PROM TEST ARGS...: scrapes into PROM until `TEST PROM
# ARGS...` succeeds; returns 1 when TIMEOUT_S passed first.
scrape_until() {
  local timeout=$1 prom=$2 test=$3 start
  shift 3
  start=$(now)
  while :; do
    if scrape "$prom" && "$test" "$prom" "$@"; then
      return 0
    fi
    if [ -n "$(elapsed "$start" | awk -v t="$timeout" '$1 > t')" ]; then
      return 1
    fi
    sleep 0.2
  done
}

# exporter_snapshot PROMFILE OUT: "ISA_NUM code count" lines of
# kvm_exits_total{isa=$ISA}, in the same form as hist_snapshot, for the
# cross-check.
exporter_snapshot() {
  metric_values "$1" kvm_exits_total code "isa=$ISA" |
    awk -v isa="$ISA_NUM" '{ c[$1] += $2 } END { for (k in c) printf "%s %s %.0f\n", isa, k, c[k] }' |
    sort -n >"$2"
}

# exporter_start NAME CONFIG_YAML [ATTACHED]: starts the exporter (under
# EXPORTER_PREFIX when set) and waits until it serves with
# kvm_exit_exporter_bpf_attached ATTACHED (default 1; 0 when kvm is not loaded
# yet), trying EXPORTER_START_TRIES times 0.2 s apart (a vendor.sh may lower
# the default 150 where each try takes longer: arm64's TCG). The checks that
# fail from here on are its phase's: exporter_stop shows its log when there
# were any.
exporter_start() {
  local name=$1 config="$WORK/exporter-$1.yaml" log="$WORK/exporter-$1.log" attached=${3:-1} i
  local tries=${EXPORTER_START_TRIES:-150}
  printf '%s\n' "$2" >"$config"
  info "starting exporter ($name) at $(now) s${EXPORTER_PREFIX:+ under $EXPORTER_PREFIX}: $(tr '\n' ' ' <"$config")"
  EXPORTER_FAILED_BEFORE=$FAILED
  # shellcheck disable=SC2086 # the prefix's words, split on purpose
  $EXPORTER_PREFIX "$EXPORTER" --config.file="$config" --web.listen-address=0.0.0.0:$EXPORTER_PORT >"$log" 2>&1 &
  EXPORTER_PID=$!
  EXPORTER_LOG=$log
  i=0
  while [ $i -lt "$tries" ]; do
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
  fail "exporter_start_$name" "not serving /metrics with kvm_exit_exporter_bpf_attached $attached after $tries tries 0.2 s apart"
  show_file exporter "$log"
  timeout 15 wget -S -O "$WORK/start.prom" "$METRICS_URL" 2>&1 | sed 's/^/wget: /' || true
  show_file "last scrape" "$WORK/start.prom" 20
  EXPORTER_FAILED_BEFORE=$FAILED # its log is shown
  exporter_stop
  return 1
}

# exporter_stop: stops the exporter, after showing the end of its log when a
# check failed since exporter_start
exporter_stop() {
  [ -n "$EXPORTER_PID" ] || return 0
  if [ "$FAILED" -gt "${EXPORTER_FAILED_BEFORE:-$FAILED}" ]; then
    show_file exporter "$EXPORTER_LOG" 30
  fi
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

# exporter_kill: ends the exporter with SIGKILL, as a crash would (no clean-up
# of its own runs)
exporter_kill() {
  [ -n "$EXPORTER_PID" ] || return 0
  if [ "$FAILED" -gt "${EXPORTER_FAILED_BEFORE:-$FAILED}" ]; then
    show_file exporter "$EXPORTER_LOG" 30
  fi
  kill -KILL "$EXPORTER_PID" 2>/dev/null || true
  wait "$EXPORTER_PID" 2>/dev/null || true
  EXPORTER_PID=
}

# ---- The host side of the suite ----------------------------------------------------

# host_requested: the runner asked for the host-side checks (e2e.hostscrape=1
# on the kernel command line: run_e2e.sh's QEMU, with a port forward, does)
host_requested() {
  case " $(cat /proc/cmdline) " in
    *" e2e.hostscrape=1 "*) return 0 ;;
  esac
  return 1
}

# once_requested: the checks that depend on no kernel (the soak, the host's
# Prometheus checks, the storms) run in one SVM suite only, whose boot says
# e2e.once=1 (svm/boot.sh, unless E2E_ONCE=0: the 6.12 suite)
once_requested() {
  case " $(cat /proc/cmdline) " in
    *" e2e.once=1 "*) return 0 ;;
  esac
  return 1
}

# host_ask LINE TIMEOUT_S: prints LINE, which the runner watches the serial log
# for, and waits up to TIMEOUT_S for it to connect to HOST_ACK_PORT when done;
# logs what it said
host_ask() {
  echo "$1"
  if ! timeout "$2" nc -l -p "$HOST_ACK_PORT" >"$WORK/host-ack" 2>&1; then
    info "the host did not connect to port $HOST_ACK_PORT within $2 s"
  fi
  info "host said: $(cat "$WORK/host-ack")"
}
