#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# The drill-downs (issue 14), exact, shared by the AMD (QEMU) and Intel
# (Bochs) suites: sourced by svm/checks.sh and vmx/checks.sh after
# core_checks.sh; the vendor's exit codes come from /e2e/vendor.sh.
# phase_drilldown_io: port IO. Each test_vmm IN/OUT is one IO exit and one
# kvm:kvm_pio event, so every count below is exact by construction. (String
# IO would not be: a `rep outsb` is one exit but one kvm_pio per batch the
# emulator hands over.)
# phase_drilldown_kinds: MSRs, MMIO pages, hypercalls and exits to the VMM.
# Each test_vmm rdmsr/wrmsr is one MSR exit and one kvm:kvm_msr (with the
# fault bit when KVM injects #GP), each hypercall one VMMCALL/VMCALL exit and
# one kvm:kvm_hypercall, each MMIO byte access one KVM_EXIT_MMIO and one
# kvm:kvm_mmio READ or WRITE, each KVM_RUN return one kvm:kvm_userspace_exit:
# exact too. Only the page-fault exits behind MMIO are not: populating guest
# RAM takes them as well.

DRILL_MAX_KEYS=4
# "ports": 4 (port, direction) pairs = drilldown_max_keys: each its own series.
DRILL_PORTS_ARGS='0x3f8:300:200,0x60:0:150,0x80:400'
DRILL_PORTS_EXPECTED='0x03f8 write 300
0x03f8 read 200
0x0060 read 150
0x0080 write 400'
DRILL_PORTS_TOTAL=1050
# "many": 71 (port, direction) pairs, more than drilldown_max_keys and more
# than the 64 slots the BPF program has per VM and kind: ports 0x100..0x145
# written 1..70 times, 0x109 read 5 times. 4 pairs get their own series;
# "other" sums the rest exactly, both the pairs that have a slot but no
# series and the 7 that found every slot taken (counted in BPF's own "other").
DRILL_MANY_ARGS=$(i=0; while [ $i -lt 70 ]; do
  printf '%s0x%x:%d' "${sep-}" $((0x100 + i)) $((i + 1)); [ $i -ne 9 ] || printf ':5'
  sep=, i=$((i + 1)); done)
DRILL_MANY_EXPECTED=$(i=0; while [ $i -lt 70 ]; do
  printf '0x%04x write %d\n' $((0x100 + i)) $((i + 1)); [ $i -ne 9 ] || printf '0x%04x read 5\n' $((0x100 + i))
  i=$((i + 1)); done)
DRILL_MANY_TOTAL=2490 # 1 + ... + 70 + 5

# phase_drilldown_kinds workloads. MSRs: 0x1b (APIC base, read), 0x8b (microcode
# revision: KVM ignores the guest's writes), 0xc0000080 (EFER, the value read
# written back) never fault and are intercepted on both vendors;
# 0x4b564dff is no MSR KVM knows: #GP on read and write.
# "kinds": 2 vCPUs, every kind within drilldown_max_keys (4 MSR items, 4 MMIO
# (page, direction) pairs with two addresses in page 0x10000, 3 hypercall
# numbers, 4 exits to the VMM: io, mmio, hlt and, while the guest's CPUIDs
# keep it in KVM, EINTR from test_vmm's own signals), so each item has its
# own series.
DRILL_KINDS_ARGS='--vcpus 2 --cpuid 3000 --signal-us 1000 --io 3 --msrs 0x1b:30,0x8b:20:10,0x4b564dff:5 --mmio 0x10000:12:8,0x10ff0:3,0xa0000:6:1 --hypercalls 1:25,12345:7,0xffffffff:2'
DRILL_KINDS_IO='0x0010 write 6'
DRILL_KINDS_MSR='0x0000001b read false 60
0x0000008b read false 40
0x0000008b write false 20
0x4b564dff read true 10'
DRILL_KINDS_MSR_TOTAL=130 DRILL_KINDS_MSR_FAULTS=10
DRILL_KINDS_MMIO='0x10000 read 30
0x10000 write 16
0xa0000 read 12
0xa0000 write 2'
DRILL_KINDS_MMIO_TOTAL=60
DRILL_KINDS_HC='1 50
12345 14
4294967295 4'
DRILL_KINDS_HC_TOTAL=68
# "manykinds": 1 vCPU, 7 MSR items, 6 MMIO pairs, 6 hypercall numbers, all
# beyond drilldown_max_keys: 4 of each kind get their own series, the rest is
# summed into "other".
DRILL_MANYK_ARGS='--io 2 --msrs 0x1b:11,0x8b:12:13,0xc0000080:14:15,0x4b564dff:16:17 --mmio 0x30000:3:4,0x31000:5:6,0x32000:7,0x33000:0:8 --hypercalls 1:2,100:3,101:4,102:5,103:6,104:7'
DRILL_MANYK_IO='0x0010 write 2'
DRILL_MANYK_MSR='0x0000001b read false 11
0x0000008b read false 12
0x0000008b write false 13
0xc0000080 read false 14
0xc0000080 write false 15
0x4b564dff read true 16
0x4b564dff write true 17'
DRILL_MANYK_MSR_TOTAL=98 DRILL_MANYK_MSR_FAULTS=33
DRILL_MANYK_MMIO='0x30000 read 3
0x30000 write 4
0x31000 read 5
0x31000 write 6
0x32000 read 7
0x33000 write 8'
DRILL_MANYK_MMIO_TOTAL=33
DRILL_MANYK_HC='1 2
100 3
101 4
102 5
103 6
104 7'
DRILL_MANYK_HC_TOTAL=27
# name labels: the kernel's macro names (spec), "" for unknown items and "other"
DRILL_MSR_NAMES='0x0000001b=MSR_IA32_APICBASE 0x0000008b=MSR_IA32_UCODE_REV 0xc0000080=MSR_EFER 0x4b564dff= other='
DRILL_HC_NAMES='1=KVM_HC_VAPIC_POLL_IRQ 12345= 4294967295= 100= 101= 102= 103= 104= other='
# The kinds' rows (bpf/drilldown_kinds.def, copied into the image as
# /e2e/drilldown_kinds.def): each kind's family, item label and the labels
# "other" keeps come from there, as the exporter's do.
DRILL_KINDS_DEF=${DRILL_KINDS_DEF:-/e2e/drilldown_kinds.def}

# drill_rows [KIND] -> per row (of KIND only, if given): name, family, labels,
# the labels "other" keeps and the tracepoint, one row a line, tab-separated
drill_rows() {
  awk -v want="${1:-}" '
    /^DRILLDOWN_KIND\(/ { row = ""; in_row = 1 }
    in_row { row = row " " $0 }
    in_row && /"\)[ \t]*$/ {
      in_row = 0; n = 0; rest = row
      split(row, column, ","); tracepoint = column[4]; gsub(/[ \t]/, "", tracepoint)
      while (match(rest, /"([^"\\]|\\.)*"/)) {
        q[++n] = substr(rest, RSTART + 1, RLENGTH - 2); rest = substr(rest, RSTART + RLENGTH)
      }
      if (want == "" || q[1] == want) print q[1] "\t" q[2] "\t" q[3] "\t" q[4] "\t" tracepoint
    }' "$DRILL_KINDS_DEF"
}

# The kinds of this kernel: those whose tracepoint it has (hvc and sysreg are
# arm64's, io, msr and hypercall x86's; the exporter leaves the others out).
DRILL_ALL_KINDS=$(drill_rows | cut -f1,5 | while read -r kind tracepoint; do
  [ ! -d "${KVM_EXIT_EVENT%/*}/$tracepoint" ] || printf '%s ' "$kind"
done)
DRILL_ALL_KINDS=${DRILL_ALL_KINDS% }

# ---- Helpers shared by the drill-down phases ---------------------------------------

# drill_kind KIND: sets DRILL_FAMILY (the per-VM family of the kind),
# DRILL_KEY (its item label, "other" when folded) and DRILL_SPLIT (labels
# kept in "other", listed after the item).
drill_kind() {
  local row
  row=$(drill_rows "$1")
  if [ -z "$row" ]; then
    fail drill_kind "unknown drill-down kind $1 (no row in $DRILL_KINDS_DEF)"
    return 1
  fi
  DRILL_FAMILY=$(printf '%s' "$row" | cut -f2)
  DRILL_KEY=$(printf '%s' "$row" | cut -f3 | cut -d' ' -f1)
  DRILL_SPLIT=$(printf '%s' "$row" | cut -f4)
}

# drill_label_values PROM FAMILY LABEL FILTER -> the distinct values of LABEL
# among the matching series, one a line ("" for an empty value)
drill_label_values() {
  metric_values "$1" "$2" "$3" "$4" | awk '{ print (NF > 1 ? $1 : "") }' | sort -u
}

# drill_series KIND PROM VM PID -> "ITEM SPLIT... VALUE" per series of the VM,
# e.g. "0x03f8 write 300" (io), "0x0000001b read false 60" (msr),
# "0x10000 read 30" (mmio), "1 50" (hypercall), "KVM_EXIT_IO none 6"
# (userspace); folded series have ITEM "other".
drill_series() {
  local kind=$1 prom=$2 filter="vm=$3;pid=$4" combos combo label values v next c
  drill_kind "$kind" || return 0
  # Every combination of the split labels' values present in the scrape.
  combos=":"
  for label in $DRILL_SPLIT; do
    next=
    for combo in $combos; do
      values=$(drill_label_values "$prom" "$DRILL_FAMILY" "$label" "$filter")
      for v in $values; do next="$next $combo$label=$v;"; done
    done
    combos=$next
  done
  for combo in $combos; do
    c=${combo#:}
    metric_values "$prom" "$DRILL_FAMILY" "$DRILL_KEY" "$filter${c:+;${c%;}}" |
      while read -r item value; do
        echo "$item $(echo "$c" | tr ';' '\n' | sed 's/^[^=]*=//' | tr '\n' ' ')$value" | tr -s ' '
      done
  done
}

# drill_check_kind TAG KIND PROM VM PID EXPECTED TOTAL: the VM's series of
# KIND against its workload EXPECTED ("ITEM SPLIT... VALUE" lines, as
# drill_series prints them; one line per item) whose exits sum to TOTAL:
# min(items, DRILL_MAX_KEYS) series of their own, each exact; "other" exactly
# the rest (absent when every item has its own); the sum exactly TOTAL.
drill_check_kind() {
  local tag=$1 kind=$2 prom=$3 vm=$4 pid=$5 expected=$6 total=$7 series keys own_n bad own_sum other
  drill_kind "$kind" || return 0
  series=$(drill_series "$kind" "$prom" "$vm" "$pid")
  keys=$(echo "$expected" | grep -c . || true)
  own_n=$(echo "$series" | awk '$1 != "other" && NF >= 2' | grep -c . || true)
  expect_eq "${tag}_own_series" "$vm: $kind series of its own" "$own_n" \
    "$((keys < DRILL_MAX_KEYS ? keys : DRILL_MAX_KEYS))"
  # Each own series equals what the guest did for that item.
  bad=$(echo "$series" | DRILL_EXPECTED="$expected" awk '
    function key(   k, i) { k = $1; for (i = 2; i < NF; i++) k = k " " $i; return k }
    BEGIN {
      n = split(ENVIRON["DRILL_EXPECTED"], lines, "\n")
      for (i = 1; i <= n; i++) {
        m = split(lines[i], f, " ")
        if (m < 2) continue
        k = f[1]; for (j = 2; j < m; j++) k = k " " f[j]
        want[k] = f[m]
      }
    }
    $1 != "other" && NF >= 2 { k = key(); if (!(k in want) || want[k] != $NF) printf "[%s]=%s (want %s) ", k, $NF, (k in want) ? want[k] : "no such series" }')
  if [ -z "$bad" ]; then pass "${tag}_each_${DRILL_KEY}_exact"; else fail "${tag}_each_${DRILL_KEY}_exact" "$vm: $bad"; fi
  own_sum=$(echo "$series" | awk '$1 != "other" && NF >= 2 { s += $NF } END { printf "%d", s }')
  other=$(metric "$prom" "$DRILL_FAMILY" "vm=$vm;pid=$pid;$DRILL_KEY=other")
  if [ "$keys" -gt "$DRILL_MAX_KEYS" ]; then
    expect_eq "${tag}_other_exact" "$vm: $DRILL_KEY=\"other\" (all - own = $total - $own_sum)" "$other" \
      "$((total - own_sum))"
  else
    expect_eq "${tag}_no_other" "$vm: $DRILL_KEY=\"other\" series" \
      "$(metric_count "$prom" "$DRILL_FAMILY" "vm=$vm;pid=$pid;$DRILL_KEY=other")" 0
  fi
  DRILL_SUM=$((own_sum + other))
  expect_eq "${tag}_sum_is_workload" "$vm: sum over the $kind series" "$DRILL_SUM" "$total"
  if [ -n "$bad" ]; then
    grep "^$DRILL_FAMILY{vm=\"$vm\"" "$prom" | sed 's/^/metrics: /' || true
  fi
  return 0
}

# drill_check_vm TAG PROM VM PID EXPECTED TOTAL: the io kind, and the sum
# over ports against the VM's own io exit counter (no perf involved).
drill_check_vm() {
  local tag=$1 prom=$2 vm=$3 pid=$4 vm_io
  drill_check_kind "$tag" io "$prom" "$vm" "$pid" "$5" "$6"
  vm_io=$(metric "$prom" kvm_vm_exits_total "vm=$vm;pid=$pid;isa=$ISA;reason=$IO_NAME;code=$CODE_IO")
  expect_eq "${tag}_sum_is_vm_io_exits" "$vm: sum over ports vs kvm_vm_exits_total{reason=$IO_NAME} $vm_io" \
    "$DRILL_SUM" "$vm_io"
}

# drill_exporter_start NAME KINDS EXTRA_CONFIG: an exporter with the
# drill-down KINDS ("io, msr"), drilldown_max_keys DRILL_MAX_KEYS and a 2 s
# grace period
drill_exporter_start() {
  exporter_start "$1" "collector:
  drilldown: [$2]
  drilldown_max_keys: $DRILL_MAX_KEYS
vms:
  grace_period: 2s
$3"
}

# drill_vmms_run NAME1 ARGS1 NAME2 ARGS2: two test VMMs at once, then waits
# until both printed DONE and the exporter has settled -> 0; else reports,
# kills both and returns 1
drill_vmms_run() {
  # shellcheck disable=SC2086 # the VMM's arguments, split on purpose
  vmm_start "$1" $2
  # shellcheck disable=SC2086
  vmm_start "$3" $4
  vmm_wait drill_vmm "$1" "$3" || return 1
  settle
}

# drill_check_gone NAME KINDS VMM...: after the grace period (2 s, then the
# next sample deletes the entries) no series of KINDS is left for the VMMs
drill_check_gone() {
  local name=$1 gone="$WORK/$1-gone.prom" kinds=$2 kind vmm n=0
  shift 2
  sleep 5
  if scrape "$gone"; then
    for kind in $kinds; do
      drill_kind "$kind" || continue
      for vmm in "$@"; do
        n=$((n + $(metric_count "$gone" "$DRILL_FAMILY" "pid=$(vmm_pid "$vmm")")))
      done
    done
    expect_eq "$name" "series of kinds [$kinds] of the ended VMs after the grace period" "$n" 0
  else
    fail drill_scrape "wget $METRICS_URL failed"
  fi
}

# phase_drilldown_io EXTRA_CONFIG: two VMs, one within drilldown_max_keys,
# one beyond it; then host totals; then the series go with the VMs after the
# grace period.
phase_drilldown_io() {
  local prom="$WORK/drill1.prom" host_io drill_all lost
  drill_exporter_start drilldown_io io "$1" || return 0
  if ! drill_vmms_run drillports "--io-ports $DRILL_PORTS_ARGS" drillmany "--io-ports $DRILL_MANY_ARGS"; then
    exporter_stop
    return 0
  fi
  if scrape "$prom"; then
    drill_check_vm drill_ports "$prom" drillports "$(vmm_pid drillports)" "$DRILL_PORTS_EXPECTED" "$DRILL_PORTS_TOTAL"
    drill_check_vm drill_many "$prom" drillmany "$(vmm_pid drillmany)" "$DRILL_MANY_EXPECTED" "$DRILL_MANY_TOTAL"
    # Host: the exporter started with this phase and only these VMs did IO,
    # so every io exit since the attach is one kvm_pio of them.
    host_io=$(metric "$prom" kvm_exits_total "isa=$ISA;reason=$IO_NAME;code=$CODE_IO")
    lost=$(metric "$prom" kvm_drilldown_overflow_events_total "kind=io")
    drill_all=$(($(metric "$prom" kvm_vm_io_port_exits_total) + lost))
    expect_eq drill_host_total_is_io_exits "all port series + overflow ($lost) vs kvm_exits_total{reason=$IO_NAME} $host_io" \
      "$drill_all" "$host_io"
    expect_eq drill_host_total_is_workload "all port series" "$drill_all" "$((DRILL_PORTS_TOTAL + DRILL_MANY_TOTAL))"
    expect_eq drill_overflow_zero "kvm_drilldown_overflow_events_total{kind=io}" "$lost" 0
    info "drilldown io: host io exits $host_io, port series sum $drill_all; drillmany series: $(drill_series io "$prom" drillmany "$(vmm_pid drillmany)" | tr '\n' ';')"
  else
    fail drill_scrape "wget $METRICS_URL failed"
  fi
  vmm_stop drill_vmm drillports drillmany
  drill_check_gone drill_series_gone_with_vm io drillports drillmany
  exporter_stop
}

# ---- MSRs, MMIO pages, hypercalls, exits to the VMM -----------------------------------

# drill_check_names TAG KIND PROM VM PID NAMES: every series of the VM has the
# name label NAMES ("ITEM=NAME ...") gives its item
drill_check_names() {
  local tag=$1 kind=$2 prom=$3 filter="vm=$4;pid=$5" names=$6 item want pair got bad=
  drill_kind "$kind" || return 0
  for item in $(drill_label_values "$prom" "$DRILL_FAMILY" "$DRILL_KEY" "$filter"); do
    want="(not in the test's table)"
    for pair in $names; do
      [ "${pair%%=*}" != "$item" ] || want=${pair#*=}
    done
    got=$(drill_label_values "$prom" "$DRILL_FAMILY" name "$filter;$DRILL_KEY=$item" | tr '\n' ' ')
    [ "$got" = "$want " ] || bad="$bad$DRILL_KEY=$item: name [${got% }], want [$want]; "
  done
  if [ -z "$bad" ]; then pass "${tag}_names"; else fail "${tag}_names" "$4: $bad"; fi
}

# drill_userspace_expected VMM -> "EXIT_REASON ERROR VALUE" lines of the
# exits to the VMM that test_vmm counted (its runs_* on the DONE line)
drill_userspace_expected() {
  local vmm=$1 pair n
  for pair in KVM_EXIT_IO:none:runs_io KVM_EXIT_MMIO:none:runs_mmio KVM_EXIT_HLT:none:runs_hlt \
    KVM_EXIT_INTR:EINTR:runs_eintr; do
    n=$(vmm_field "$vmm" "${pair##*:}")
    [ "${n:-0}" = 0 ] || echo "${pair%%:*} $(echo "$pair" | cut -d: -f2) $n"
  done
}

# drill_check_vmm TAG VMM VCPUS IO MSR MSR_FAULTS MMIO HYPERCALLS: test_vmm's
# own counts (guest counters, handled exits, KVM_RUN returns) are the workload
drill_check_vmm() {
  local tag=$1 vmm=$2
  expect_eq "${tag}_vmm_msr" "test_vmm msr_reads + msr_writes" \
    "$(($(vmm_field "$vmm" msr_reads) + $(vmm_field "$vmm" msr_writes)))" "$5"
  expect_eq "${tag}_vmm_msr_faults" "test_vmm msr_faults (#GPs the guest took)" "$(vmm_field "$vmm" msr_faults)" "$6"
  expect_eq "${tag}_vmm_mmio" "test_vmm mmio_reads + mmio_writes" \
    "$(($(vmm_field "$vmm" mmio_reads) + $(vmm_field "$vmm" mmio_writes)))" "$7"
  expect_eq "${tag}_vmm_hypercalls" "test_vmm hypercalls" "$(vmm_field "$vmm" hypercalls)" "$8"
  expect_eq "${tag}_vmm_runs" "test_vmm runs_io runs_mmio runs_hlt runs_other" \
    "$(vmm_field "$vmm" runs_io) $(vmm_field "$vmm" runs_mmio) $(vmm_field "$vmm" runs_hlt) $(vmm_field "$vmm" runs_other)" \
    "$4 $7 $3 0"
}

# drill_check_kinds_vm TAG PROM VM VCPUS IO_EXPECTED MSR_EXPECTED MSR_TOTAL
# MSR_FAULTS MMIO_EXPECTED MMIO_TOTAL HC_EXPECTED HC_TOTAL: the five kinds of
# the test VMM VM against its workload and test_vmm's own counts
drill_check_kinds_vm() {
  local tag=$1 prom=$2 vm=$3 pid vcpus=$4 io_expected=$5 msr=$6 msr_total=$7 faults=$8
  local mmio=$9 mmio_total=${10} hc=${11} hc_total=${12} io_total us us_total
  pid=$(vmm_pid "$vm")
  io_total=$(echo "$io_expected" | awk '{ s += $NF } END { print s + 0 }')
  drill_check_vmm "$tag" "$vm" "$vcpus" "$io_total" "$msr_total" "$faults" "$mmio_total" "$hc_total"
  drill_check_kind "${tag}_io" io "$prom" "$vm" "$pid" "$io_expected" "$io_total"
  drill_check_kind "${tag}_msr" msr "$prom" "$vm" "$pid" "$msr" "$msr_total"
  # The #GPs KVM injected, own series and "other" (which keeps fault), are
  # the faults the guest's handler counted.
  expect_eq "${tag}_msr_faults" "$vm: msr series with fault=\"true\" vs test_vmm msr_faults" \
    "$(metric "$prom" kvm_vm_msr_exits_total "vm=$vm;pid=$pid;fault=true")" "$(vmm_field "$vm" msr_faults)"
  drill_check_names "${tag}_msr" msr "$prom" "$vm" "$pid" "$DRILL_MSR_NAMES"
  drill_check_kind "${tag}_mmio" mmio "$prom" "$vm" "$pid" "$mmio" "$mmio_total"
  drill_check_kind "${tag}_hypercall" hypercall "$prom" "$vm" "$pid" "$hc" "$hc_total"
  drill_check_names "${tag}_hypercall" hypercall "$prom" "$vm" "$pid" "$DRILL_HC_NAMES"
  # Exits to the VMM: per (exit_reason, error) what test_vmm's KVM_RUN returned.
  us=$(drill_userspace_expected "$vm")
  us_total=$(vmm_field "$vm" runs)
  drill_check_kind "${tag}_userspace" userspace "$prom" "$vm" "$pid" "$us" "$us_total"
  expect_eq "${tag}_userspace_eintr" "$vm: userspace series with error=\"EINTR\" vs test_vmm runs_eintr" \
    "$(metric "$prom" kvm_vm_userspace_exits_total "vm=$vm;pid=$pid;error=EINTR")" "$(vmm_field "$vm" runs_eintr)"
  info "drilldown kinds $vm: test_vmm $(grep '^TEST_VMM ' "$(vmm_out "$vm")" | cut -d' ' -f5-)"
}

# drill_host_exits PROM CODES -> the vendor's kvm_exits_total summed over the exit codes CODES
drill_host_exits() {
  local code n=0
  for code in $2; do
    n=$((n + $(metric "$1" kvm_exits_total "isa=$ISA;code=$code")))
  done
  echo "$n"
}

# drill_reason_names CODES -> "name(code)+..." as the kernel names them
drill_reason_names() {
  local code names=
  for code in $1; do
    names="$names${names:++}$(kernel_reason_name "$ISA" "$code")($code)"
  done
  echo "$names"
}

# drill_kind_all PROM KIND -> all series of KIND, every VM, + its overflow events
drill_kind_all() {
  drill_kind "$2" || return 0
  echo $(($(metric "$1" "$DRILL_FAMILY") + $(metric "$1" kvm_drilldown_overflow_events_total "kind=$2")))
}

# phase_drilldown_kinds EXTRA_CONFIG: an exporter with x86's five kinds
# (drilldown_max_keys 4), two VMs (every kind within the limit; MSR, MMIO and
# hypercalls beyond it), each kind exact per VM; host totals against the
# exits of the vendor's codes (CODE_IO, CODE_MSR, CODE_HYPERCALL: SVM io 123,
# msr 124, vmmcall 129; VMX io 30, msr_read 31 + msr_write 32, vmcall 18);
# MMIO bounded by the page-fault exits (CODE_PAGE: SVM npf 1024 + "PF excp"
# 78, as QEMU's SVM has no NPT and KVM shadows the guest's page tables; VMX
# ept_violation 48 + ept_misconfig 49); overflow 0 for every kind; the series
# go with the VMs after the grace period.
phase_drilldown_kinds() {
  local prom="$WORK/drillkinds.prom" kind lost host all runs mmio pages
  drill_exporter_start drilldown_kinds "$(printf '%s' "$DRILL_ALL_KINDS" | sed 's/ /, /g')" "$1" || return 0
  if ! drill_vmms_run drillkinds "$DRILL_KINDS_ARGS" drillmanykinds "$DRILL_MANYK_ARGS"; then
    exporter_stop
    return 0
  fi
  if scrape "$prom"; then
    drill_check_kinds_vm drill_kinds "$prom" drillkinds 2 "$DRILL_KINDS_IO" \
      "$DRILL_KINDS_MSR" "$DRILL_KINDS_MSR_TOTAL" "$DRILL_KINDS_MSR_FAULTS" \
      "$DRILL_KINDS_MMIO" "$DRILL_KINDS_MMIO_TOTAL" "$DRILL_KINDS_HC" "$DRILL_KINDS_HC_TOTAL"
    # The premise of the EINTR check: test_vmm's signals did interrupt KVM_RUN.
    if [ "$(vmm_field drillkinds runs_eintr)" -gt 0 ]; then
      pass drill_kinds_vmm_eintr_happened
    else
      fail drill_kinds_vmm_eintr_happened "drillkinds: no KVM_RUN returned EINTR in $(vmm_field drillkinds seconds) s of --signal-us 1000"
    fi
    drill_check_kinds_vm drill_manykinds "$prom" drillmanykinds 1 "$DRILL_MANYK_IO" \
      "$DRILL_MANYK_MSR" "$DRILL_MANYK_MSR_TOTAL" "$DRILL_MANYK_MSR_FAULTS" \
      "$DRILL_MANYK_MMIO" "$DRILL_MANYK_MMIO_TOTAL" "$DRILL_MANYK_HC" "$DRILL_MANYK_HC_TOTAL"
    # Host: the exporter started with this phase and only these VMs run, so
    # every io, MSR and hypercall exit since the attach is one event of theirs.
    for kind in $DRILL_ALL_KINDS; do
      lost=$(metric "$prom" kvm_drilldown_overflow_events_total "kind=$kind")
      expect_eq "drill_kinds_overflow_zero_$kind" "kvm_drilldown_overflow_events_total{kind=$kind} ($(metric_count "$prom" kvm_drilldown_overflow_events_total "kind=$kind") samples)" \
        "$lost $(metric_count "$prom" kvm_drilldown_overflow_events_total "kind=$kind")" "0 1"
    done
    host=$(drill_host_exits "$prom" "$CODE_IO")
    all=$(drill_kind_all "$prom" io)
    expect_eq drill_kinds_host_io "all io port series + overflow vs io exits ($CODE_IO)" "$all" "$host"
    host=$(drill_host_exits "$prom" "$CODE_MSR")
    all=$(drill_kind_all "$prom" msr)
    expect_eq drill_kinds_host_msr "all msr series + overflow vs kvm_exits_total $(drill_reason_names "$CODE_MSR")" "$all" "$host"
    expect_eq drill_kinds_host_msr_workload "all msr series + overflow" "$all" \
      "$((DRILL_KINDS_MSR_TOTAL + DRILL_MANYK_MSR_TOTAL))"
    host=$(drill_host_exits "$prom" "$CODE_HYPERCALL")
    all=$(drill_kind_all "$prom" hypercall)
    expect_eq drill_kinds_host_hypercall "all hypercall series + overflow vs kvm_exits_total $(drill_reason_names "$CODE_HYPERCALL")" "$all" "$host"
    expect_eq drill_kinds_host_hypercall_workload "all hypercall series + overflow" "$all" \
      "$((DRILL_KINDS_HC_TOTAL + DRILL_MANYK_HC_TOTAL))"
    runs=$(($(vmm_field drillkinds runs) + $(vmm_field drillmanykinds runs)))
    expect_eq drill_kinds_host_userspace "all userspace series + overflow vs the KVM_RUN returns of both VMMs" \
      "$(drill_kind_all "$prom" userspace)" "$runs"
    # MMIO: every access is a page-fault exit (KVM finds no memslot and
    # emulates), but so is every first touch of a guest RAM page, and KVM may
    # cache an MMIO translation (then EPT misconfig, not violation): the page
    # exits are an upper bound only.
    mmio=$(drill_kind_all "$prom" mmio)
    pages=$(drill_host_exits "$prom" "$CODE_PAGE")
    expect_eq drill_kinds_host_mmio_workload "all mmio series + overflow" "$mmio" \
      "$((DRILL_KINDS_MMIO_TOTAL + DRILL_MANYK_MMIO_TOTAL))"
    if [ "$mmio" -le "$pages" ]; then
      pass drill_kinds_host_mmio_at_most_page_exits
    else
      fail drill_kinds_host_mmio_at_most_page_exits "all mmio series + overflow $mmio > kvm_exits_total $(drill_reason_names "$CODE_PAGE") $pages"
    fi
    info "drilldown kinds: mmio accesses $mmio, page exits $(drill_reason_names "$CODE_PAGE") $pages (not equal: the first touch of each guest RAM page takes one too); msr exits $(drill_host_exits "$prom" "$CODE_MSR"), hypercall exits $(drill_host_exits "$prom" "$CODE_HYPERCALL"), KVM_RUN returns $runs"
    info "drilldown kinds: drillmanykinds series: $(for kind in msr mmio hypercall; do drill_series "$kind" "$prom" drillmanykinds "$(vmm_pid drillmanykinds)" | tr '\n' ';'; done)"
  else
    fail drill_scrape "wget $METRICS_URL failed"
  fi
  vmm_stop drill_vmm drillkinds drillmanykinds
  drill_check_gone drill_kinds_series_gone_with_vm "$DRILL_ALL_KINDS" drillkinds drillmanykinds
  exporter_stop
}
