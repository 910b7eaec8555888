#!/bin/sh
# shellcheck shell=dash
# Port IO drill-down (issue 14, kind io), exact, shared by the AMD (QEMU) and
# Intel (Bochs) suites: sourced by guest/checks.sh and vmx/checks.sh after
# lib.sh. Each test_vmm IN/OUT is one IO exit and one kvm:kvm_pio event, so
# every count below is exact by construction. (String IO would not be: a
# `rep outsb` is one exit but one kvm_pio per batch the emulator hands over.)

DRILL_MAX_KEYS=4
# "ports": 4 (port, direction) pairs = drilldown_max_keys: each its own series.
DRILL_PORTS_ARGS='0x3f8:300:200,0x60:0:150,0x80:400'
DRILL_PORTS_EXPECTED='0x03f8 write 300
0x03f8 read 200
0x0060 read 150
0x0080 write 400'
DRILL_PORTS_TOTAL=1050
# "many": 11 pairs > drilldown_max_keys: 4 get their own series, the rest
# are summed into port="other".
DRILL_MANY_ARGS='0x100:11,0x101:22,0x102:33,0x103:44,0x104:55,0x105:66,0x106:77,0x107:88,0x108:99,0x109:110:5'
DRILL_MANY_EXPECTED='0x0100 write 11
0x0101 write 22
0x0102 write 33
0x0103 write 44
0x0104 write 55
0x0105 write 66
0x0106 write 77
0x0107 write 88
0x0108 write 99
0x0109 write 110
0x0109 read 5'
DRILL_MANY_TOTAL=610
DRILL_MANY_KEYS=11

# drill_series PROM VM PID -> "port direction value" per io port series of the VM
drill_series() {
  local d
  for d in write read; do
    metric_values "$1" kvm_vm_io_port_exits_total port "vm=$2;pid=$3;direction=$d" |
      while read -r port value; do echo "$port $d $value"; done
  done
}

# drill_check_vm TAG PROM VM PID EXPECTED KEYS TOTAL ISA IO_NAME IO_CODE
drill_check_vm() {
  local tag=$1 prom=$2 vm=$3 pid=$4 expected=$5 keys=$6 total=$7 series own_n bad own_sum other sum vm_io
  series=$(drill_series "$prom" "$vm" "$pid")
  own_n=$(echo "$series" | awk '$1 != "other" && NF == 3' | grep -c . || true)
  expect_eq "${tag}_own_series" "$vm: port series of its own" "$own_n" \
    "$((keys < DRILL_MAX_KEYS ? keys : DRILL_MAX_KEYS))"
  # Each own series equals what the guest did on that port and direction.
  bad=$(echo "$series" | DRILL_EXPECTED="$expected" awk '
    BEGIN { n = split(ENVIRON["DRILL_EXPECTED"], lines, "\n"); for (i = 1; i <= n; i++) { split(lines[i], f, " "); want[f[1] " " f[2]] = f[3] } }
    $1 != "other" && NF == 3 { k = $1 " " $2; if (!(k in want) || want[k] != $3) printf "%s=%s (want %s) ", k, $3, want[k] }')
  if [ -z "$bad" ]; then pass "${tag}_each_port_exact"; else fail "${tag}_each_port_exact" "$vm: $bad"; fi
  own_sum=$(echo "$series" | awk '$1 != "other" && NF == 3 { s += $3 } END { printf "%d", s }')
  other=$(metric "$prom" kvm_vm_io_port_exits_total "vm=$vm;pid=$pid;port=other")
  sum=$((own_sum + other))
  if [ "$keys" -gt "$DRILL_MAX_KEYS" ]; then
    expect_eq "${tag}_other_exact" "$vm: port=\"other\" (all - own = $total - $own_sum)" "$other" \
      "$((total - own_sum))"
  else
    expect_eq "${tag}_no_other" "$vm: port=\"other\" series" \
      "$(metric_count "$prom" kvm_vm_io_port_exits_total "vm=$vm;pid=$pid;port=other")" 0
  fi
  expect_eq "${tag}_sum_is_workload" "$vm: sum over ports" "$sum" "$total"
  # perf-independent: the drill-down agrees with the VM's own io exit counter.
  vm_io=$(metric "$prom" kvm_vm_exits_total "vm=$vm;pid=$pid;isa=$8;reason=$9;code=${10}")
  expect_eq "${tag}_sum_is_vm_io_exits" "$vm: sum over ports vs kvm_vm_exits_total{reason=$9} $vm_io" \
    "$sum" "$vm_io"
  if [ -n "$bad" ]; then
    grep "^kvm_vm_io_port_exits_total{vm=\"$vm\"" "$prom" | sed 's/^/metrics: /' || true
  fi
  return 0
}

# phase_drilldown_io ISA IO_NAME IO_CODE EXTRA_CONFIG: two VMs, one within
# drilldown_max_keys, one beyond it; then host totals; then the series go
# with the VMs after the grace period.
phase_drilldown_io() {
  local isa=$1 io_name=$2 io_code=$3 prom="$WORK/drill1.prom" gone="$WORK/drill2.prom" po pm op om
  local failed_before=$FAILED host_io drill_all lost
  exporter_start drilldown_io "collector:
  drilldown: [io]
  drilldown_max_keys: $DRILL_MAX_KEYS
vms:
  grace_period: 2s
$4" || return 0
  op="$WORK/vmm-drill-ports.out" om="$WORK/vmm-drill-many.out"
  vmm_start "$op" -name guest=drillports,debug-threads=on --io-ports "$DRILL_PORTS_ARGS"
  po=$VMM_PID
  vmm_start "$om" -name guest=drillmany,debug-threads=on --io-ports "$DRILL_MANY_ARGS"
  pm=$VMM_PID
  if ! vmm_wait_done "$po" "$op" "$VMM_TIMEOUT_S" || ! vmm_wait_done "$pm" "$om" "$VMM_TIMEOUT_S"; then
    fail drill_vmm "drillports or drillmany did not finish"
    show_file drillports "$op"
    show_file drillmany "$om"
    kill -KILL "$po" "$pm" 2>/dev/null || true
    wait "$po" "$pm" 2>/dev/null || true
    end_phase "$failed_before"
    return 0
  fi
  sleep "$SETTLE_S"
  if scrape "$prom"; then
    drill_check_vm drill_ports "$prom" drillports "$po" "$DRILL_PORTS_EXPECTED" 4 "$DRILL_PORTS_TOTAL" "$isa" "$io_name" "$io_code"
    drill_check_vm drill_many "$prom" drillmany "$pm" "$DRILL_MANY_EXPECTED" "$DRILL_MANY_KEYS" "$DRILL_MANY_TOTAL" "$isa" "$io_name" "$io_code"
    # Host: the exporter started with this phase and only these VMs did IO,
    # so every io exit since the attach is one kvm_pio of them.
    host_io=$(metric "$prom" kvm_exits_total "isa=$isa;reason=$io_name;code=$io_code")
    lost=$(metric "$prom" kvm_drilldown_overflow_events_total "kind=io")
    drill_all=$(($(metric "$prom" kvm_vm_io_port_exits_total) + lost))
    expect_eq drill_host_total_is_io_exits "all port series + overflow ($lost) vs kvm_exits_total{reason=$io_name} $host_io" \
      "$drill_all" "$host_io"
    expect_eq drill_host_total_is_workload "all port series" "$drill_all" "$((DRILL_PORTS_TOTAL + DRILL_MANY_TOTAL))"
    expect_eq drill_overflow_zero "kvm_drilldown_overflow_events_total{kind=io}" "$lost" 0
    info "drilldown io: host io exits $host_io, port series sum $drill_all; drillmany series: $(drill_series "$prom" drillmany "$pm" | tr '\n' ';')"
  else
    fail drill_scrape "wget $METRICS_URL failed"
  fi
  vmm_stop "$po" "$op" || fail drill_vmm "test_vmm drillports exited non-zero"
  vmm_stop "$pm" "$om" || fail drill_vmm "test_vmm drillmany exited non-zero"
  # grace_period 2s, then the next sample deletes the entries.
  sleep 5
  if scrape "$gone"; then
    expect_eq drill_series_gone_with_vm "port series of the ended VMs after the grace period" \
      "$(($(metric_count "$gone" kvm_vm_io_port_exits_total "pid=$po") + $(metric_count "$gone" kvm_vm_io_port_exits_total "pid=$pm")))" 0
  else
    fail drill_scrape "wget $METRICS_URL failed"
  fi
  end_phase "$failed_before"
}
