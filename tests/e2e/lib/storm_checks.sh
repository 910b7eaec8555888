# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# Known exit storms (issue 27), with the exporter's default configuration:
# its drill-down follows storms (collector.drilldown_auto), so the storm
# signatures must be named with nothing turned on.
#
#   storm_calm_nothing_attached   a calm VM attaches no drill-down kind
#   storm_calm_one_link           and the exporter holds one BPF link (kvm_exit)
#   storm_links_in_storm          five in the storms (kvm_exit and four kinds)
#   storm_reaction_io             a port 0x608 storm's first port series
#                                 appears within 2 sample intervals of the
#                                 VM's first exits (the figure is printed)
#   storm_attached_<kind>         each kind a storm needs is attached
#   storm_items_<vm>              each storm's item series is there
#   storm_live_check (host)       Prometheus, with the shipped rules, names
#                                 each storm VM's signature and no other
#                                 (tests/monitoring/storm_live_check.sh)
#   storm_load_throughout_<vm>    each storm went on until that check ended
#   storm_detached_after_hold     with hold 3s, the kind detaches after a storm
#   storm_detached_counts_nothing and a VM's port IO after that adds no series
#
# Each storm VM is the test VMM repeating one access forever (a count it
# never reaches; HLTs: 1,000,000, the most test_vmm takes, minutes here):
# the reproduction of a guest in that storm.
STORM_FOREVER=4294967295
# storms -> one line per storm VM: NAME|test_vmm arguments|signature|metric|
# filter of its item series (after checks_begin: the kernel's HLT name)
storms() {
  echo "stormpm|--io-ports 0x608:0:$STORM_FOREVER|acpi_pm_timer|kvm_vm_io_port_exits_total|port=0x0608;direction=read
stormrtc|--io-ports 0x71:0:$STORM_FOREVER|rtc_cmos|kvm_vm_io_port_exits_total|port=0x0071;direction=read
stormhpet|--mmio 0xfed00000:$STORM_FOREVER|hpet|kvm_vm_mmio_exits_total|page=0xfed00000;direction=read
stormtsc|--msrs 0x6e0:1:$STORM_FOREVER|tsc_deadline|kvm_vm_msr_exits_total|msr=0x000006e0;direction=write
stormhlt|--hlt 1000000|hlt_churn|kvm_vm_exits_total|reason=$HLT_NAME"
}
STORM_ACK_TIMEOUT_S=240
# The default rates.sample_interval: the reaction is bounded by two of them.
STORM_SAMPLE_S=1

# storm_field N LINE -> the Nth |-separated field of a STORMS line
storm_field() { echo "$2" | cut -d'|' -f"$1"; }

# has_series PROM METRIC FILTER: a sample of METRIC matches FILTER
has_series() { [ "$(metric_count "$1" "$2" "$3")" -ge 1 ]; }

# exporter_links -> the BPF links the running exporter holds (fds whose
# fdinfo has a link_id): what the kernel runs for it
exporter_links() { grep -l '^link_id:' /proc/"$EXPORTER_PID"/fdinfo/* 2>/dev/null | wc -l; }

# storm_attached PROM KIND: drill-down KIND is attached
storm_attached() { [ "$(metric "$1" kvm_exit_exporter_drilldown_attached "kind=$2")" = 1 ]; }

# storm_reaction: starts stormpm and scrapes until its port series is there;
# the time from the first scrape with its exits to that one
storm_reaction() {
  local prom="$WORK/storm-react.prom" line first_exit="" start pid took
  line=$(storms | grep '^stormpm|')
  # shellcheck disable=SC2046 # the VMM's arguments, split on purpose
  vmm_start stormpm $(storm_field 2 "$line")
  pid=$VMM_PID start=$(now)
  while [ -n "$(elapsed "$start" | awk '$1 < 20')" ]; do
    scrape "$prom" || continue
    if [ -z "$first_exit" ] && has_series "$prom" kvm_vm_exits_total "vm=stormpm;pid=$pid"; then
      first_exit=$(now)
    fi
    if [ -n "$first_exit" ] && has_series "$prom" kvm_vm_io_port_exits_total "vm=stormpm;pid=$pid;port=0x0608"; then
      took=$(elapsed "$first_exit")
      info "storm reaction: stormpm's first port 0x0608 series $took s after the first scrape with its exits (rates.sample_interval ${STORM_SAMPLE_S}s)"
      # Two sample intervals, and one scrape's time in this TCG guest.
      expect_cmp storm_reaction_io "$took" "<=" "$((2 * STORM_SAMPLE_S)).5" "seconds from stormpm's first exits to its first port series"
      return 0
    fi
  done
  fail storm_reaction_io "no port 0x0608 series of stormpm within 20 s (first exits seen: ${first_exit:-never})"
  show_series "$prom" '^kvm_exit_exporter_drilldown'
}

phase_storms() {
  local prom="$WORK/storm.prom" line name kind expect="" pid
  # The default configuration, nothing else.
  exporter_start storms "" || return 0
  vmm_start stormcalm --io 200 --cpuid 100
  sleep 2
  if scrape "$prom"; then
    expect_eq storm_calm_nothing_attached "drill-down kinds attached, switches, port series while only a calm VM ran" \
      "$(metric "$prom" kvm_exit_exporter_drilldown_attached) $(metric "$prom" kvm_exit_exporter_drilldown_switches_total) $(metric_count "$prom" kvm_vm_io_port_exits_total)" "0 0 0"
    info "storm: drill-down kinds while calm: $(grep '^kvm_exit_exporter_drilldown_attached' "$prom" | tr '\n' ' ')"
  fi
  # Calm, the kernel runs the exit program and nothing else for the exporter:
  # an exit costs what it costs with drill-down off.
  expect_eq storm_calm_one_link "BPF links the exporter holds while calm" "$(exporter_links)" 1
  vmm_stop storm_vmm stormcalm
  storm_reaction
  while IFS= read -r line; do
    name=$(storm_field 1 "$line")
    [ "$name" != stormpm ] || continue
    # shellcheck disable=SC2046 # the VMM's arguments, split on purpose
    vmm_start "$name" $(storm_field 2 "$line")
  done <<EOT
$(storms)
EOT
  for kind in io mmio msr userspace; do
    if scrape_until 15 "$prom" storm_attached "$kind"; then
      pass "storm_attached_$kind"
    else
      fail "storm_attached_$kind" "drill-down $kind not attached 15 s into the storms"
      show_series "$prom" '^kvm_exit_exporter_drilldown'
    fi
  done
  sleep 2
  # The exit program's link and one per kind attached.
  expect_eq storm_links_in_storm "BPF links the exporter holds in the storms" "$(exporter_links)" 5
  scrape "$prom" || true
  while IFS= read -r line; do
    name=$(storm_field 1 "$line")
    if has_series "$prom" "$(storm_field 4 "$line")" "vm=$name;pid=$(vmm_pid "$name");$(storm_field 5 "$line")"; then
      pass "storm_items_$name"
    else
      fail "storm_items_$name" "no $(storm_field 4 "$line"){$(storm_field 5 "$line" | tr ';' ',')} of $name"
      show_series "$prom" "^$(storm_field 4 "$line")"
    fi
    expect="$expect${expect:+,}$name=$(storm_field 3 "$line")"
  done <<EOT
$(storms)
EOT
  host_ask "E2E STORMCHECK expect=$expect" "$STORM_ACK_TIMEOUT_S"
  while IFS= read -r line; do
    name=$(storm_field 1 "$line")
    if kill -0 "$(vmm_pid "$name")" 2>/dev/null; then
      pass "storm_load_throughout_$name"
    else
      fail "storm_load_throughout_$name" "test_vmm $name stopped before the storm check ended: $(grep '^TEST_VMM' "$(vmm_out "$name")" || true)"
      show_file "test_vmm $name" "$(vmm_out "$name")"
    fi
    vmm_stop "" "$name"
  done <<EOT
$(storms)
EOT
  exporter_stop
  phase_storm_hold
}

# A kind detaches once no VM has been over the threshold for the hold: then a
# VM's port IO adds no series (the program runs no more), though its exits
# are counted.
phase_storm_hold() {
  local prom="$WORK/storm-hold.prom" pid
  exporter_start storm_hold "collector:
  drilldown_auto:
    hold: 3s" || return 0
  vmm_start stormshort --io-ports 0x608:0:20000
  if ! scrape_until 15 "$prom" storm_attached io; then
    fail storm_detached_after_hold "io never attached during stormshort's 20000 port reads"
    exporter_stop
    return 0
  fi
  vmm_wait storm_vmm stormshort || true
  # The hold (3 s) after the last sample over the threshold, then the sample that sees it.
  sleep 5
  scrape "$prom" || true
  expect_eq storm_detached_after_hold "io attached, io switches 3 s after stormshort's storm" \
    "$(metric "$prom" kvm_exit_exporter_drilldown_attached "kind=io") $(metric "$prom" kvm_exit_exporter_drilldown_switches_total "kind=io")" "0 2"
  vmm_start stormafter --io-ports 0x608:0:300
  pid=$VMM_PID
  vmm_wait storm_vmm stormafter || true
  settle
  scrape "$prom" || true
  expect_eq storm_detached_counts_nothing "stormafter's io exits, port series, io attached" \
    "$(metric "$prom" kvm_vm_exits_total "vm=stormafter;pid=$pid;reason=$IO_NAME") $(metric_count "$prom" kvm_vm_io_port_exits_total "vm=stormafter") $(metric "$prom" kvm_exit_exporter_drilldown_attached "kind=io")" "300 0 0"
  vmm_stop storm_vmm stormshort stormafter
  exporter_stop
}
