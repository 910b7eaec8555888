# shellcheck shell=dash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC3043 # busybox sh has `local`
# Nested checks of the VM tracker (issue 4) and the live Prometheus check
# (issue 5). Sourced by svm/checks.sh after core_checks.sh (and $RATES_CONFIG
# of its own); `lifecycle_main` runs every phase, each with an exporter of its
# own:
#   boot_window  vms.boot_window 10s: a VM's burst right after its start is
#                counted exactly while the window is open and frozen after it;
#                a second VM gets its own window; the histogram gets each
#                window once; a VM that ends inside its window keeps all of
#                its exits. Lifecycle: an ended VM's series stay for
#                vms.grace_period, then go with their map entries, and the
#                host totals do not move.
#   soak         many short-lived VMs, grace 1 s: map entries, series, tracked
#                VMs and file descriptors back to the baseline, RSS flat, host
#                totals exact against the VMMs and the kernel's hist trigger.
#   max_vms      vms.max_vms 2 with 3 VMs: the third is vm="other", exactly.
#   promcheck    the host's Prometheus scrapes this exporter through QEMU's
#                port forward while a VM makes exits and evaluates every
#                dashboard query and rule (run_e2e.sh, E2E PROMCHECK marker).

# Every phase samples often, so that windows and grace periods are noticed
# within a fraction of a second.
LC_RATES='rates:
  window: 2s
  sample_interval: 200ms'
BOOT_WINDOW_S=10
BOOT_GRACE_S=3
# Soak: VMs run SOAK_PARALLEL at a time until SOAK_VMS have run or SOAK_MAX_S passed.
SOAK_VMS=600
SOAK_PARALLEL=4
SOAK_MAX_S=90
SOAK_MIN_VMS=50
SOAK_IO=100
SOAK_CPUID=20
SOAK_RSS_TOLERANCE_KB=2048
PROMCHECK_BOOT_WINDOW_S=5
PROMCHECK_ACK_TIMEOUT_S=240

# ---- Helpers ------------------------------------------------------------------------------

# raw_value PROM METRIC FILTER -> the first matching sample's value as written
# (`metric` rounds non-integers to 6 digits: too few for a unix time)
raw_value() {
  metric_values "$1" "$2" vm "$3" | awk 'NR == 1 { print $2 }'
}

# wall_now -> the guest's wall clock to the microsecond (busybox date has no %N;
# adjtimex prints the time it read)
wall_now() {
  adjtimex | awk '$1 == "time.tv_sec:" { s = $2 } $1 == "time.tv_usec:" { u = $2 } END { printf "%d.%06d\n", s, u }'
}

exporter_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$EXPORTER_PID/status"; }
exporter_fds() {
  set -- "/proc/$EXPORTER_PID/fd/"*
  echo "$#"
}

# The exporter dates processes from /proc/stat's btime, a whole second, so
# its start times are up to 1 s early: a VM started within a second of the
# BPF attach would seem to predate it and get no boot window. VMs whose boot
# window is checked start after this.
past_attach_rounding() {
  sleep 1.5
}

# series PROM PATTERN -> the sample lines matching PATTERN, sorted (to compare scrapes)
series() {
  grep -E "$2" "$1" | sort || true
}

# check_boot_figures NAME PROM VM PID IO CPUID CLOSED: the exact boot-window
# exits of a test VM (io, cpuid, one hlt) and its window flag.
check_boot_figures() {
  local name=$1 prom=$2 f="vm=$3;pid=$4" got
  got="io=$(metric "$prom" kvm_vm_boot_exits "$f;isa=$ISA;reason=$IO_NAME;code=$CODE_IO")"
  got="$got cpuid=$(metric "$prom" kvm_vm_boot_exits "$f;isa=$ISA;reason=$CPUID_NAME;code=$CODE_CPUID")"
  got="$got hlt=$(metric "$prom" kvm_vm_boot_exits "$f;isa=$ISA;reason=$HLT_NAME;code=$CODE_HLT")"
  got="$got closed=$(metric "$prom" kvm_vm_boot_window_closed "$f")"
  if [ "$got" = "io=$5 cpuid=$6 hlt=1 closed=$7" ] && [ "$(metric_count "$prom" kvm_vm_boot_window_closed "$f")" = 1 ]; then
    pass "$name"
  else
    fail "$name" "kvm_vm_boot_exits/kvm_vm_boot_window_closed{vm=\"$3\",pid=\"$4\"}: $got ($(metric_count "$prom" kvm_vm_boot_window_closed "$f") closed series), expected io=$5 cpuid=$6 hlt=1 closed=$7"
    show_series "$prom" "^kvm_vm_boot_(exits|window_closed)\{"
  fi
}

# check_boot_histogram NAME PROM0 PROM1 TOTAL: between the scrapes exactly one
# boot window closed, with TOTAL exits: _count +1, _sum +TOTAL, and +1 in
# every cumulative bucket whose bound is >= TOTAL (0 in the others).
check_boot_histogram() {
  local name=$1 p0=$2 p1=$3 total=$4 h=kvm_vm_boot_exits_count count sum bad
  count=$(($(metric "$p1" "${h}_count") - $(metric "$p0" "${h}_count")))
  sum=$(($(metric "$p1" "${h}_sum") - $(metric "$p0" "${h}_sum")))
  bad=$(metric_values "$p1" "${h}_bucket" le | while read -r le value; do
    before=$(metric "$p0" "${h}_bucket" "le=$le")
    want=$(awk -v le="$le" -v t="$total" 'BEGIN { print (le == "+Inf" || t <= le + 0) ? 1 : 0 }')
    [ "$((value - before))" = "$want" ] || printf 'le=%s +%s (expected +%s) ' "$le" "$((value - before))" "$want"
  done)
  if [ "$count" = 1 ] && [ "$sum" = "$total" ] && [ -z "$bad" ]; then
    pass "$name"
  else
    fail "$name" "${h}: _count +$count (expected +1), _sum +$sum (expected +$total), buckets: ${bad:-as expected}"
    show_series "$p1" "^${h}"
  fi
}

# ---- Phase boot_window: boot windows, then the lifecycle of ended VMs ------------------------

phase_boot_window() {
  exporter_start boot_window "vms:
  boot_window: ${BOOT_WINDOW_S}s
  grace_period: ${BOOT_GRACE_S}s
$LC_RATES" || return 0
  if check_boot_windows; then
    check_lifecycle
  else
    # shellcheck disable=SC2086 # one name a word
    vmm_stop "" $BOOT_VMMS
  fi
  check_boot_window_ends_with_vm
  exporter_stop
}

# booter starts, makes its burst (io, cpuid, hlt) and idles, HLT-ed and never
# re-entered, so it makes no exit at all after the burst. booter2 starts a few
# seconds later. Lists the VMMs started in BOOT_VMMS; returns 1 when a check
# cannot go on.
BOOT_VMMS=
check_boot_windows() {
  local p0="$WORK/boot0.prom" p1="$WORK/boot1.prom" p2="$WORK/boot2.prom" p3="$WORK/boot3.prom"
  local pid1 pid2 launch t0 burst age start_time total1 total2 vm_total
  local offset btime_frac
  past_attach_rounding
  scrape "$p0" || { fail boot_window "wget $METRICS_URL failed"; return 1; }
  launch=$(wall_now)
  t0=$(now)
  vmm_run boot_window_vmm booter --io 3000 --cpuid 1000 || return 1
  pid1=$(vmm_pid booter)
  BOOT_VMMS=booter
  burst=$(elapsed "$t0")
  info "boot_window: booter (pid $pid1) did its burst in $burst s: $(grep '^TEST_VMM' "$(vmm_out booter)")"
  scrape "$p1" || { fail boot_window "wget $METRICS_URL failed"; return 1; }
  age=$(elapsed "$t0")
  if [ -n "$(echo "$age" | awk -v w=$BOOT_WINDOW_S '$1 >= w - 1')" ]; then
    fail boot_window_open "the burst and a scrape took $age s, not inside the ${BOOT_WINDOW_S} s window: cannot test an open window"
    return 1
  fi
  check_boot_figures boot_window_open_exact "$p1" booter "$pid1" 3000 1000 0
  start_time=$(raw_value "$p1" kvm_vm_start_time_seconds "vm=booter;pid=$pid1")
  offset=$(awk -v s="${start_time:-0}" -v l="$launch" 'BEGIN { printf "%.3f\n", s - l }')
  btime_frac=$(awk -v now="$(wall_now)" -v up="$(now)" '/^btime / { printf "%.2f\n", now - up - $2 }' /proc/stat)
  info "boot_window: booter started at $launch (guest wall clock), kvm_vm_start_time_seconds $start_time: offset $offset s; the boot time's fraction of a second, which /proc/stat's btime drops, is $btime_frac s"
  if [ -n "$start_time" ] && awk -v d="$offset" 'BEGIN { exit !(d >= -2 && d <= 2) }'; then
    pass boot_window_start_time
  else
    fail boot_window_start_time "kvm_vm_start_time_seconds{vm=\"booter\"} is '$start_time', the guest's wall clock at launch was $launch (tolerance 2 s)"
    show_series "$p1" '^kvm_vm_start_time_seconds'
  fi

  # A second VM, started once booter's window is well under way.
  sleep 2
  vmm_run boot_window_vmm booter2 --io 1500 --cpuid 200 || return 1
  pid2=$(vmm_pid booter2)
  BOOT_VMMS="booter booter2"

  # booter's window closes: figures unchanged, histogram +1 with booter's total.
  if ! scrape_until $((BOOT_WINDOW_S + 5)) "$p2" metric_is kvm_vm_boot_window_closed "vm=booter;pid=$pid1" 1; then
    fail boot_window_closes "kvm_vm_boot_window_closed{vm=\"booter\"} not 1 $(elapsed "$t0") s after booter's start (window ${BOOT_WINDOW_S} s)"
    show_series "$p2" '^kvm_vm_boot_window_closed'
    return 1
  fi
  info "boot_window: booter's window closed $(elapsed "$t0") s after its start"
  pass boot_window_closes
  check_boot_figures boot_window_closed_exact "$p2" booter "$pid1" 3000 1000 1
  total1=$(metric "$p2" kvm_vm_boot_exits "vm=booter;pid=$pid1")
  vm_total=$(metric "$p2" kvm_vm_exits_total "vm=booter;pid=$pid1")
  info "boot_window: booter's boot exits by reason: $(metric_values "$p2" kvm_vm_boot_exits reason "vm=booter" | tr '\n' ' ')"
  # booter made every exit of its life inside its window (idle after HLT).
  expect_eq boot_window_all_exits_of_booter "booter's boot-window exits (all reasons) against its kvm_vm_exits_total (all reasons)" "$total1" "$vm_total"
  check_boot_histogram boot_histogram_first_window "$p0" "$p2" "$total1"
  check_boot_figures boot_window_second_vm_open "$p2" booter2 "$pid2" 1500 200 0

  # booter2's own window closes later, with its own figures.
  if ! scrape_until $((BOOT_WINDOW_S + 5)) "$p3" metric_is kvm_vm_boot_window_closed "vm=booter2;pid=$pid2" 1; then
    fail boot_window_second_vm_closes "kvm_vm_boot_window_closed{vm=\"booter2\"} not 1 $(elapsed "$t0") s after booter's start"
    return 1
  fi
  check_boot_figures boot_window_second_vm_closed_exact "$p3" booter2 "$pid2" 1500 200 1
  total2=$(metric "$p3" kvm_vm_boot_exits "vm=booter2;pid=$pid2")
  check_boot_histogram boot_histogram_second_window "$p2" "$p3" "$total2"
  if [ "$(series "$p2" "^kvm_vm_boot_(exits|window_closed)\{vm=\"booter\"")" = "$(series "$p3" "^kvm_vm_boot_(exits|window_closed)\{vm=\"booter\"")" ]; then
    pass boot_window_frozen
  else
    fail boot_window_frozen "booter's boot series changed after its window closed: [$(series "$p2" "^kvm_vm_boot_exits\{vm=\"booter\"" | tr '\n' ';')] -> [$(series "$p3" "^kvm_vm_boot_exits\{vm=\"booter\"" | tr '\n' ';')]"
  fi
  info "boot_window: totals booter $total1, booter2 $total2 (io + cpuid + hlt + the varying npf/interrupt exits)"
}

# Both boot VMs end: their series stay for the grace period, then disappear
# with their map entries, and the host totals (no VM runs) stay the same.
check_lifecycle() {
  local l0="$WORK/life0.prom" l1="$WORK/life1.prom" l2="$WORK/life2.prom" t_end entries0 entries2 own0 own1 baseline
  local h1="$WORK/hist-life1" h2="$WORK/hist-life2" e1="$WORK/exp-life1" e2="$WORK/exp-life2" kept left="" m
  scrape "$l0" || { fail lifecycle "wget $METRICS_URL failed"; return 0; }
  entries0=$(metric "$l0" kvm_exit_exporter_map_entries "map=vm_exits")
  own0=$(metric_count "$l0" kvm_vm_exits_total)
  baseline=$(metric "$WORK/boot0.prom" kvm_exit_exporter_map_entries "map=vm_exits")
  vmm_stop lifecycle_vmm booter booter2
  t_end=$(now)
  # Still inside the grace period: every series as before the end.
  scrape "$l1" || { fail lifecycle "wget $METRICS_URL failed"; return 0; }
  hist_snapshot "$h1"
  exporter_snapshot "$l1" "$e1"
  kept=$(elapsed "$t_end")
  own1=$(metric_count "$l1" kvm_vm_exits_total)
  if [ -n "$(echo "$kept" | awk -v g=$BOOT_GRACE_S '$1 >= g')" ]; then
    fail lifecycle_kept_during_grace "the scrape came $kept s after the VMs ended, not inside the ${BOOT_GRACE_S} s grace period"
  elif [ "$own1" = "$own0" ] && [ "$own1" -gt 0 ] && [ "$(series "$l0" '^kvm_vm_(exits_total|info|start_time_seconds|boot_exits)\{')" = "$(series "$l1" '^kvm_vm_(exits_total|info|start_time_seconds|boot_exits)\{')" ] &&
    [ "$(metric "$l1" kvm_exit_exporter_vms)" = 2 ]; then
    pass lifecycle_kept_during_grace
  else
    fail lifecycle_kept_during_grace "$kept s after the VMs ended: $own1 kvm_vm_exits_total series (before: $own0), kvm_exit_exporter_vms $(metric "$l1" kvm_exit_exporter_vms) (expected 2, series unchanged)"
    show_series "$l1" '^kvm_vm_exits_total|^kvm_exit_exporter_vms'
  fi

  # After the grace period (plus a sample): gone.
  if ! scrape_until $((BOOT_GRACE_S + 5)) "$l2" no_series kvm_vm_exits_total "vm=booter"; then
    fail lifecycle_removed_after_grace "booter's kvm_vm_exits_total series still there $(elapsed "$t_end") s after it ended (grace ${BOOT_GRACE_S} s)"
    show_series "$l2" '^kvm_vm_exits_total|^kvm_exit_exporter_(vms|map_entries)'
    return 0
  fi
  info "lifecycle: booter's series went $(elapsed "$t_end") s after it ended (grace ${BOOT_GRACE_S} s)"
  # booter2 ended at the same time: wait for it too (one more sample at most).
  scrape_until 2 "$l2" no_series kvm_vm_exits_total "vm=booter2" || true
  hist_snapshot "$h2"
  exporter_snapshot "$l2" "$e2"
  for m in kvm_vm_exits_total kvm_vm_info kvm_vm_start_time_seconds kvm_vm_boot_exits kvm_vm_boot_window_closed; do
    [ "$(metric_count "$l2" "$m")" = 0 ] || left="$left $m($(metric_count "$l2" "$m"))"
  done
  if [ -z "$left" ] && [ "$(metric "$l2" kvm_exit_exporter_vms)" = 0 ]; then
    pass lifecycle_removed_after_grace
  else
    fail lifecycle_removed_after_grace "after the grace period: series left:${left:- none}, kvm_exit_exporter_vms $(metric "$l2" kvm_exit_exporter_vms) (expected 0)"
    show_series "$l2" '^kvm_vm_'
  fi
  entries2=$(metric "$l2" kvm_exit_exporter_map_entries "map=vm_exits")
  if [ "$entries2" = "$((entries0 - own0))" ] && [ "$entries2" = "$baseline" ]; then
    pass lifecycle_map_entries_freed
  else
    fail lifecycle_map_entries_freed "kvm_exit_exporter_map_entries{map=\"vm_exits\"} is $entries2 after the grace period: $entries0 with both VMs, whose $own0 series were one entry each; $baseline before they started"
  fi
  info "lifecycle: map entries $baseline before the VMs, $entries0 with them, $entries2 after their removal"
  # No VM ran between the two scrapes (the hist trigger agrees): every host
  # total must be the same although the VMs' entries were deleted in between.
  if [ -n "$(snapshot_delta "$h1" "$h2")" ]; then
    fail lifecycle_host_totals_unchanged "the kernel counted exits while no VM should run: $(snapshot_delta "$h1" "$h2" | tr '\n' ';')"
  elif cmp -s "$e1" "$e2" && grep -q . "$e2"; then
    pass lifecycle_host_totals_unchanged
  else
    fail lifecycle_host_totals_unchanged "kvm_exits_total moved when the ended VMs' entries were deleted (isa code delta): $(snapshot_delta "$e1" "$e2" | tr '\n' ';')"
    show_series "$l2" '^kvm_exits_total'
  fi
  expect_eq lifecycle_no_delete_errors "kvm_exit_exporter_errors_total{kind=\"map_delete\"}" \
    "$(metric "$l2" kvm_exit_exporter_errors_total "kind=map_delete")" 0
}

# A VM that ends inside its boot window made all its exits inside it: its
# boot figures (shown until the grace period ends) are its full counts. The
# burst is small enough to end well inside the window on a loaded machine too:
# 40,000 io exits once took 11.8 s of a 10 s window while two builds shared
# the CPUs, and the (correctly) frozen figure then missed the last exits.
check_boot_window_ends_with_vm() {
  local p0="$WORK/brief0.prom" p1="$WORK/brief1.prom" pid total vm_total status=0
  scrape "$p0" || { fail boot_window_vm_ends "wget $METRICS_URL failed"; return 0; }
  vmm_start brief --io 8000 --cpuid 1000 --hold-ms 0
  pid=$VMM_PID
  wait "$pid" || status=$?
  if [ "$status" != 0 ] || ! grep -q '^TEST_VMM DONE ' "$(vmm_out brief)"; then
    fail boot_window_vm_ends_vmm "test_vmm brief exited with status $status"
    show_file test_vmm "$(vmm_out brief)"
    return 0
  fi
  info "boot_window: brief (pid $pid) ran $(vmm_field brief seconds) s and exited: $(grep '^TEST_VMM' "$(vmm_out brief)")"
  if awk -v s="$(vmm_field brief seconds)" -v w="$BOOT_WINDOW_S" 'BEGIN { exit !(s + 1 >= w) }'; then
    fail boot_window_vm_ends_premise "brief ran $(vmm_field brief seconds) s, not inside its ${BOOT_WINDOW_S} s window: the machine is too loaded for this check"
    return 0
  fi
  if ! scrape_until "$BOOT_GRACE_S" "$p1" metric_is kvm_vm_boot_window_closed "vm=brief;pid=$pid" 1; then
    fail boot_window_vm_ends "kvm_vm_boot_window_closed{vm=\"brief\",pid=\"$pid\"} not 1 within the grace period after the VM ended"
    show_series "$p1" '^kvm_vm_boot_(exits|window_closed)|^kvm_vm_exits_total'
    return 0
  fi
  check_boot_figures boot_window_vm_ends_exact "$p1" brief "$pid" 8000 1000 1
  total=$(metric "$p1" kvm_vm_boot_exits "vm=brief;pid=$pid")
  vm_total=$(metric "$p1" kvm_vm_exits_total "vm=brief;pid=$pid")
  expect_eq boot_window_vm_ends_all_exits "brief's boot-window exits (all reasons) against its kvm_vm_exits_total (all reasons)" "$total" "$vm_total"
  check_boot_histogram boot_histogram_vm_ends "$p0" "$p1" "$vm_total"
}

# ---- Phase soak: many short-lived VMs ---------------------------------------------------------

phase_soak() {
  exporter_start soak "vms:
  grace_period: 1s
$TIMING_CONFIG
$LC_RATES" || return 0
  check_soak
  exporter_stop
}

check_soak() {
  local p0="$WORK/soak0.prom" pm="$WORK/soak-mid.prom" p1="$WORK/soak1.prom" start i j pids status
  local vms=0 io_sum=0 cpuid_sum=0 failed_vms=0 entries0 series0 fds0 rss_first="" rss_end rss0
  local peak_entries=0 peak_series=0 n seconds fds1 skipped
  cross_snapshot s0 || return 0
  cp "$WORK/prom-s0" "$p0"
  entries0=$(metric "$p0" kvm_exit_exporter_map_entries "map=vm_exits")
  series0=$(metric_count "$p0" kvm_vm_exits_total)
  fds0=$(exporter_fds)
  rss0=$(exporter_rss_kb)
  start=$(now)
  i=0
  while [ "$i" -lt "$SOAK_VMS" ] && [ -z "$(elapsed "$start" | awk -v m=$SOAK_MAX_S '$1 >= m')" ]; do
    pids=""
    j=0
    while [ "$j" -lt "$SOAK_PARALLEL" ]; do
      # Short-lived: no hold, so each ends at its last HLT.
      vmm_spawn "soak$j" /bin/test_vmm -name "guest=soak$((i + j)),debug-threads=on" --io "$SOAK_IO" --cpuid "$SOAK_CPUID"
      pids="$pids $VMM_PID"
      j=$((j + 1))
    done
    j=0
    for pid in $pids; do
      status=0
      wait "$pid" || status=$?
      if [ "$status" = 0 ] && grep -q '^TEST_VMM DONE ' "$(vmm_out "soak$j")"; then
        io_sum=$((io_sum + $(vmm_field "soak$j" io)))
        cpuid_sum=$((cpuid_sum + $(vmm_field "soak$j" cpuid)))
      else
        failed_vms=$((failed_vms + 1))
        [ "$failed_vms" -gt 3 ] || show_file "soak VM $((i + j))" "$(vmm_out "soak$j")"
      fi
      j=$((j + 1))
    done
    i=$((i + SOAK_PARALLEL))
    vms=$i
    # Scrape now and then, while VMs come and go.
    if [ $((i % 20)) = 0 ] && scrape "$pm"; then
      n=$(metric "$pm" kvm_exit_exporter_map_entries "map=vm_exits")
      [ "$n" -le "$peak_entries" ] || peak_entries=$n
      n=$(metric_count "$pm" kvm_vm_exits_total)
      [ "$n" -le "$peak_series" ] || peak_series=$n
    fi
    if [ -z "$rss_first" ] && [ "$i" -ge $((SOAK_VMS / 10)) ]; then
      rss_first=$(exporter_rss_kb)
    fi
  done
  seconds=$(elapsed "$start")
  info "soak: $vms VMs ($SOAK_PARALLEL at a time, each --io $SOAK_IO --cpuid $SOAK_CPUID) in $seconds s, $failed_vms failed"
  if [ "$failed_vms" != 0 ] || [ "$vms" -lt "$SOAK_MIN_VMS" ]; then
    fail soak_vms "$vms VMs run in $seconds s ($failed_vms failed); expected at least $SOAK_MIN_VMS and no failure"
    return 0
  fi
  pass soak_vms

  # Every VM ended: after the 1 s grace period (and a sample) nothing is left.
  if ! scrape_until 10 "$p1" metric_is kvm_exit_exporter_vms "" 0; then
    fail soak_vms_removed "kvm_exit_exporter_vms still $(metric "$p1" kvm_exit_exporter_vms) 10 s after the last VM ended (grace 1 s)"
  fi
  sleep 1 # one more sample: the entries of the last VMs are deleted right after
  cross_snapshot s1 || return 0
  cp "$WORK/prom-s1" "$p1"
  rss_end=$(exporter_rss_kb)
  fds1=$(exporter_fds)
  info "soak figures: VMs $vms; map entries $entries0 before, up to $peak_entries during, $(metric "$p1" kvm_exit_exporter_map_entries "map=vm_exits") after; kvm_vm_exits_total series $series0 before, up to $peak_series during, $(metric_count "$p1" kvm_vm_exits_total) after; tracked VMs $(metric "$p1" kvm_exit_exporter_vms) after; exporter RSS $rss0 kB at start, $rss_first kB after $((SOAK_VMS / 10)) VMs, $rss_end kB at the end; fds $fds0 -> $fds1"

  expect_eq soak_map_entries_back "kvm_exit_exporter_map_entries{map=\"vm_exits\"} after the soak" \
    "$(metric "$p1" kvm_exit_exporter_map_entries "map=vm_exits")" "$entries0"
  expect_eq soak_series_back "number of kvm_vm_exits_total series after the soak" \
    "$(metric_count "$p1" kvm_vm_exits_total)" "$series0"
  expect_eq soak_tracked_vms_back "kvm_exit_exporter_vms after the soak" "$(metric "$p1" kvm_exit_exporter_vms)" 0
  expect_eq soak_fds_back "open file descriptors of the exporter (pidfds) after the soak" "$fds1" "$fds0"
  if [ "$((rss_end - rss_first))" -lt "$SOAK_RSS_TOLERANCE_KB" ]; then
    pass soak_rss_flat
  else
    fail soak_rss_flat "exporter VmRSS grew by $((rss_end - rss_first)) kB ($rss_first -> $rss_end kB) between the first 10 % of the VMs and the end, tolerance $SOAK_RSS_TOLERANCE_KB kB"
  fi
  expect_eq soak_kernel_io "hist trigger io delta over the soak" \
    "$(hist_delta "$WORK/hist-s0" "$WORK/hist-s1" "$CODE_IO")" "$io_sum"
  check_crosscheck crosscheck_soak s0 s1
  # When the kernel skipped the program on some exits (crosscheck_soak says
  # so), no count of the exporter can match the VMMs'.
  if skipped=$(kernel_skipped_runs s0 s1 "$WORK/hist-delta-crosscheck_soak" "$WORK/exp-delta-crosscheck_soak"); then
    skip soak_totals "the kernel skipped the BPF program on $skipped exit(s), see crosscheck_soak"
  else
    check_exits soak_total kvm_exits_total "$p0" "$p1" "" "$io_sum" "$cpuid_sum" "$vms"
  fi
  expect_eq soak_nothing_lost "kvm_exit_overflow_exits_total + kvm_exit_lost_exits_total + map_delete errors" \
    "$(($(metric "$p1" kvm_exit_overflow_exits_total) + $(metric "$p1" kvm_exit_lost_exits_total) + $(metric "$p1" kvm_exit_exporter_errors_total "kind=map_delete")))" 0
}

# ---- Phase max_vms: the VMs beyond max_vms are vm="other" -------------------------------------

phase_max_vms() {
  exporter_start max_vms "vms:
  max_vms: 2
  grace_period: 1s
$LC_RATES" || return 0
  check_max_vms
  exporter_stop
}

check_max_vms() {
  local prom="$WORK/fold.prom" prom2="$WORK/fold2.prom" started="" n other_all
  # One after the other, each seen by the exporter before the next starts:
  # the first two seen get their own series.
  for n in 1 2 3; do
    # shellcheck disable=SC2086 # one name a word
    vmm_run max_vms_vmm "fold$n" --io $((1000 * n)) --cpuid $((100 * n)) || { vmm_stop "" $started; return 0; }
    started="$started fold$n"
    settle
  done
  set -- "$(vmm_pid fold1)" "$(vmm_pid fold2)" "$(vmm_pid fold3)"
  scrape "$prom" || { fail max_vms "wget $METRICS_URL failed"; return 0; }
  check_value max_vms_own_first_io "$prom" kvm_vm_exits_total "vm=fold1;pid=$1;isa=$ISA;reason=$IO_NAME;code=$CODE_IO" 1000
  check_value max_vms_own_second_io "$prom" kvm_vm_exits_total "vm=fold2;pid=$2;isa=$ISA;reason=$IO_NAME;code=$CODE_IO" 2000
  check_exits max_vms_other kvm_vm_exits_total "" "$prom" "vm=other;pid=" 3000 300 1
  expect_eq max_vms_folded "kvm_exit_exporter_vms_folded" "$(metric "$prom" kvm_exit_exporter_vms_folded)" 1
  expect_eq max_vms_tracked "kvm_exit_exporter_vms" "$(metric "$prom" kvm_exit_exporter_vms)" 3
  # The folded VM has no series of its own in any per-VM family.
  n=$(grep -c -E '^kvm_vm_[a-z_]+\{vm="fold3"' "$prom" || true)
  if [ "$n" = 0 ] && [ "$(metric_count "$prom" kvm_vm_info)" = 2 ] && no_series "$prom" kvm_vm_info "vm=other"; then
    pass max_vms_no_own_series_beyond
  else
    fail max_vms_no_own_series_beyond "$n series with vm=\"fold3\", $(metric_count "$prom" kvm_vm_info) kvm_vm_info series (expected 0 and 2, none for other)"
    show_series "$prom" '^kvm_vm_(info|exits_total)'
  fi
  other_all=$(series "$prom" '^kvm_vm_exits_total\{vm="other"' | sed 's/^[^,]*,[^,]*,//')

  # fold1 ends: after its grace period fold3 gets its own series, with the
  # counts "other" had (fold3 is idle), and nothing is folded any more.
  vmm_stop max_vms_vmm fold1
  if scrape_until 10 "$prom2" metric_is kvm_exit_exporter_vms_folded "" 0; then
    info "max_vms: after fold1's removal fold3 has its own series: $(series "$prom2" '^kvm_vm_exits_total\{vm="fold3"' | tr '\n' ';')"
    if [ -n "$other_all" ] && [ "$(series "$prom2" "^kvm_vm_exits_total\{vm=\"fold3\",pid=\"$3\"" | sed 's/^[^,]*,[^,]*,//')" = "$other_all" ] &&
      no_series "$prom2" kvm_vm_exits_total "vm=other"; then
      pass max_vms_unfolded_after_grace
    else
      fail max_vms_unfolded_after_grace "fold3's own series [$(series "$prom2" '^kvm_vm_exits_total\{vm="fold3"' | tr '\n' ';')] differ from what vm=\"other\" had [$other_all]"
    fi
  else
    fail max_vms_unfolded_after_grace "kvm_exit_exporter_vms_folded still $(metric "$prom2" kvm_exit_exporter_vms_folded) after fold1 ended (grace 1 s)"
  fi
  vmm_stop max_vms_vmm fold2 fold3
}

# ---- Phase promcheck: Prometheus on the host scrapes this exporter ----------------------------

# Prints `E2E PROMCHECK vm=NAME` while VMs make exits; run_e2e.sh then runs
# tests/monitoring/prom_live_check.sh against the port forward, records its
# result and connects to HOST_ACK_PORT to say it is done. The boot window is short
# so that the boot histogram has a closed window by then.
#
# Every drill-down kind is on, and each kind has a VM that keeps making its
# events until the host's check is over, so that every drill-down panel
# (rates, ranges and the share of "other" alike) is evaluated on real series
# that grow: promload loops on `outb $0x10` (io, and KVM_EXIT_IO for
# userspace); prommsr, prommmio and promhcall each run one --msrs, --mmio or
# --hypercalls entry with a count (2^32-1) they never finish, MMIO reads
# adding KVM_EXIT_MMIO for userspace. The guest phases run in order, so one
# kind per VM.
PROMCHECK_FOREVER=4294967295
PROMCHECK_MSR=0x1b                # MSR_IA32_APICBASE: emulated by KVM, reads never fault
PROMCHECK_MSR_LABEL=0x0000001b
PROMCHECK_MMIO_GPA=0x10000        # first page above test_vmm's 64 KiB of RAM
PROMCHECK_MMIO_PAGE=0x10000
PROMCHECK_HYPERCALL=1             # KVM_HC_VAPIC_POLL_IRQ: KVM returns 0, no side effect

# promcheck_series NAME PROM METRIC FILTER WHAT: passes NAME when FILTER
# matches a series of METRIC, else fails it and shows the family
promcheck_series() {
  if [ "$(metric_count "$2" "$3" "$4")" -ge 1 ]; then
    pass "$1"
  else
    fail "$1" "no $3{$(echo "$4" | tr ';' ',')} ($5)"
    show_series "$2" "^$3"
  fi
}

phase_promcheck() {
  local pid prom="$WORK/promcheck.prom" name
  if ! host_requested; then
    info "no Prometheus check requested (e2e.hostscrape=1 not on the kernel command line)"
    return 0
  fi
  # One collector mapping with every key (a second `collector:` would not merge).
  exporter_start promcheck "vms:
  boot_window: ${PROMCHECK_BOOT_WINDOW_S}s
collector:
$TIMING_COLLECTOR_KEYS
  drilldown: [io, msr, mmio, hypercall, userspace]
$RATES_CONFIG" || return 0
  past_attach_rounding
  vmm_start promload -uuid 66666666-7777-8888-9999-000000000000 --io-seconds 600
  pid=$VMM_PID
  vmm_start prommsr --msrs "$PROMCHECK_MSR:$PROMCHECK_FOREVER"
  vmm_start prommmio --mmio "$PROMCHECK_MMIO_GPA:$PROMCHECK_FOREVER"
  vmm_start promhcall --hypercalls "$PROMCHECK_HYPERCALL:$PROMCHECK_FOREVER"
  if ! scrape_until $((PROMCHECK_BOOT_WINDOW_S + 10)) "$prom" metric_is kvm_vm_boot_window_closed "vm=promload;pid=$pid" 1; then
    fail promcheck_boot_window "promload's boot window did not close within $((PROMCHECK_BOOT_WINDOW_S + 10)) s"
    show_series "$prom" '^kvm_vm_'
  fi
  # Each kind's series must be there before the host's Prometheus is asked
  # to find it (the exact counts are drilldown_checks.sh's business).
  promcheck_series promcheck_port_series "$prom" kvm_vm_io_port_exits_total \
    "vm=promload;pid=$pid;port=0x0010;direction=write" "promload loops on outb \$0x10"
  promcheck_series promcheck_msr_series "$prom" kvm_vm_msr_exits_total \
    "vm=prommsr;pid=$(vmm_pid prommsr);msr=$PROMCHECK_MSR_LABEL;direction=read;fault=false" "prommsr reads MSR $PROMCHECK_MSR"
  promcheck_series promcheck_mmio_series "$prom" kvm_vm_mmio_exits_total \
    "vm=prommmio;pid=$(vmm_pid prommmio);page=$PROMCHECK_MMIO_PAGE;direction=read" "prommmio reads GPA $PROMCHECK_MMIO_GPA"
  promcheck_series promcheck_hypercall_series "$prom" kvm_vm_hypercalls_total \
    "vm=promhcall;pid=$(vmm_pid promhcall);nr=$PROMCHECK_HYPERCALL" "promhcall makes hypercall $PROMCHECK_HYPERCALL"
  promcheck_series promcheck_userspace_io_series "$prom" kvm_vm_userspace_exits_total \
    "vm=promload;pid=$pid;exit_reason=KVM_EXIT_IO;error=none" "promload's OUTs go to test_vmm"
  promcheck_series promcheck_userspace_mmio_series "$prom" kvm_vm_userspace_exits_total \
    "vm=prommmio;pid=$(vmm_pid prommmio);exit_reason=KVM_EXIT_MMIO;error=none" "prommmio's reads go to test_vmm"
  info "promcheck drill-down series: $(grep -E '^kvm_(vm_(msr_exits|mmio_exits|hypercalls|userspace_exits)_total|drilldown_overflow_events_total)' "$prom" | tr '\n' ';')"
  host_ask "E2E PROMCHECK vm=promload pid=$pid" "$PROMCHECK_ACK_TIMEOUT_S"
  # Every load VM must still be making its events when the check ends: a
  # VM that stopped early leaves flat counters, and the rate panels of its
  # kind would have been checked on nothing.
  for name in promload prommsr prommmio promhcall; do
    if kill -0 "$(vmm_pid "$name")" 2>/dev/null; then
      pass "promcheck_load_throughout_$name"
    else
      fail "promcheck_load_throughout_$name" "test_vmm $name stopped before the host's check ended: $(grep '^TEST_VMM' "$(vmm_out "$name")" || true)"
      show_file "test_vmm $name" "$(vmm_out "$name")"
    fi
    vmm_stop "" "$name"
  done
  exporter_stop
}

lifecycle_main() {
  phase_boot_window
  phase_max_vms
  if once_requested; then
    phase_soak
    phase_promcheck
  else
    skip soak "no e2e.once=1: the 6.1 suite runs it (user space only, as the dashboards' queries)"
    skip promcheck "no e2e.once=1: the 6.1 suite runs it"
  fi
}
