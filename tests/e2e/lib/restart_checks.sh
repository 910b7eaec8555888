# shellcheck shell=dash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC3043 # busybox sh has `local`
# Restarts with the BPF state pinned (issue 25, kernel.state_path), sourced by
# svm/checks.sh and vmx/checks.sh after core_checks.sh, lifecycle_checks.sh
# (check_boot_figures) and kvm_module_checks.sh (module_refcnt, try_rmmod,
# kvm_modules_load).
# `phase_restarts` runs, with one configuration throughout:
#   1. exporter A starts fresh; a VM (restartsteady, `--io-seconds` with a
#      slow IO handler) exits at a steady rate while A is stopped by SIGTERM
#      and B started, then B killed by SIGKILL and C started, each after a
#      gap with no exporter at all; once C has been scraped a while, SIGUSR2
#      ends the VM's loop (start-ups take longer on a busy host: a fixed
#      loop ended before C served once). Every exporter is scraped about every
#      0.5 s. At the end host totals and the VMs' counts equal the hist
#      trigger's delta and the workloads exactly, no kvm_exits_total or
#      kvm_vm_exits_total series went down between two scrapes, and B and C
#      say they adopted the state, with A's counting_since.
#   2. a VM started in the second gap (restartgap: a burst, then idle) gets
#      its boot window figure from C, exactly its workload.
#   3. upgrade: C is replaced (SIGTERM) by the build with the next pinned
#      layout (kvmexit_exporter_next_layout, /bin/kvm_exit_exporter_next_layout),
#      which must start fresh, say why, and count from zero.
#   4. deliberate stop: the exporter stopped, `--state.release` removes the
#      pins: the directory is gone, kvm's refcnt is back to its value before
#      the phase, `rmmod` of the vendor's module and kvm succeeds; both are
#      loaded again for the phases after this one.
# The suite sets the sizes (RESTART_*) before calling it.

RESTART_STATE_DIR=/sys/fs/bpf/kvm_exit_exporter
NEXT_LAYOUT_EXPORTER=/bin/kvm_exit_exporter_next_layout # build_image.sh: NEXT_LAYOUT_EXPORTER
# Sizes; the AMD suite keeps these, the Intel suite (Bochs) sets its own.
: "${RESTART_STEADY_S:=60}"        # restartsteady's --io-seconds: a bound; SIGUSR2 ends it
: "${RESTART_IO_DELAY_US:=1000}"   # its IO handler's sleep: a steady rate, below 1000/s
: "${RESTART_RUN_S:=2}"            # each exporter is scraped this long before it is stopped
: "${RESTART_GAP_S:=1.5}"          # no exporter at all, besides its stop and start-up
: "${RESTART_BOOT_WINDOW_S:=8}"    # vms.boot_window
: "${RESTART_GAP_IO:=3000}"        # restartgap's burst
: "${RESTART_GAP_CPUID:=1000}"
: "${RESTART_UPGRADE_IO:=2000}"    # the next layout's VM
: "${RESTART_UPGRADE_CPUID:=500}"
RESTART_SCRAPE_PAUSE_S=0.3 # plus the scrape itself: about every 0.5 s
RESTART_RELEASE_LIMIT_S=10 # the programs are freed after an RCU grace period and a work item

# ---- Scrapes -----------------------------------------------------------------------------

# Every scrape of the phase's exporters A, B and C, in order, one file each:
# the list is $WORK/restart-scrapes; RS_LAST is the newest.
RS_N=0
RS_LAST=

# restart_scrape -> 0 when the exporter answered (into a new numbered file)
restart_scrape() {
  RS_N=$((RS_N + 1))
  RS_LAST="$WORK/restart-$RS_N.prom"
  scrape "$RS_LAST" || return 1
  echo "$RS_LAST" >>"$WORK/restart-scrapes"
}

# restart_scrape_for SECONDS: scrapes about every 0.5 s for SECONDS
restart_scrape_for() {
  local start
  start=$(now)
  while :; do
    restart_scrape || true
    [ -z "$(elapsed "$start" | awk -v s="$1" '$1 >= s')" ] || return 0
    sleep "$RESTART_SCRAPE_PAUSE_S"
  done
}

# restart_raw PROM METRIC -> the value of an unlabelled sample as written
# (metric rounds to 6 digits: too few for a unix time)
restart_raw() {
  awk -v m="$2" '$1 == m { print $2; exit }' "$1"
}

# restart_done NAME -> 0 when the VMM printed its DONE line
restart_done() {
  grep -q '^TEST_VMM DONE ' "$(vmm_out "$1")" 2>/dev/null
}

# restart_gap_closed PROM PID -> 0 when restartgap's boot window is closed
restart_gap_closed() {
  metric_is "$1" kvm_vm_boot_window_closed "vm=restartgap;pid=$2" 1
}

# ---- Checks ------------------------------------------------------------------------------

# restart_check_state NAME START WHY: the running exporter's log says how its
# BPF state began (START adopted: with WHY empty; fresh: for the reason WHY,
# a prefix when it ends with "*"), and it serves
# kvm_exit_exporter_bpf_state_info{start=START} 1 as its only such series.
restart_check_state() {
  local name=$1 start=$2 why=$3 line
  if [ "$start" = adopted ]; then
    line="BPF state: adopted the programs and counts kept in $RESTART_STATE_DIR; counting without a reset since "
  else
    line="BPF state: started fresh, kept in $RESTART_STATE_DIR (${why%\*}"
    [ "$why" != "${why%\*}" ] || line="$line)"
  fi
  if grep -qF "$line" "$EXPORTER_LOG"; then
    pass "${name}_log_$start"
    info "$name: $(grep -m1 -F 'BPF state:' "$EXPORTER_LOG" | sed 's/^.*BPF state/BPF state/; s/"$//')"
  else
    fail "${name}_log_$start" "no log line '$line...'; the exporter said: $(grep -F 'BPF state' "$EXPORTER_LOG" | tr '\n' ' ')"
  fi
  if [ "$(metric "$RS_LAST" kvm_exit_exporter_bpf_state_info "start=$start")" = 1 ] &&
    [ "$(metric_count "$RS_LAST" kvm_exit_exporter_bpf_state_info)" = 1 ]; then
    pass "${name}_state_$start"
  else
    fail "${name}_state_$start" "expected kvm_exit_exporter_bpf_state_info{start=\"$start\"} 1 and no other"
    show_series "$RS_LAST" '^kvm_exit_exporter_(bpf_state_info|counting_since)'
  fi
}

# restart_check_since NAME SINCE: kvm_exit_exporter_counting_since_timestamp_seconds
# is SINCE (A's), to the digit
restart_check_since() {
  expect_eq "${1}_counting_since_kept" "kvm_exit_exporter_counting_since_timestamp_seconds" \
    "$(restart_raw "$RS_LAST" kvm_exit_exporter_counting_since_timestamp_seconds)" "$2"
}

# restart_check_monotonic NAME FILE...: between each two consecutive scrapes
# no kvm_exits_total or kvm_vm_exits_total series went down or vanished
restart_check_monotonic() {
  local name=$1 out="$WORK/restart-monotonic"
  shift
  awk '
    function compare(   k) {
      for (k in prev) {
        pairs++
        if (!(k in cur)) { bad++; if (bad <= 5) printf "%s vanished in %s (was %s); ", k, file, prev[k] }
        else if (cur[k] + 0 < prev[k] + 0) { bad++; if (bad <= 5) printf "%s went from %s to %s in %s; ", k, prev[k], cur[k], file }
      }
    }
    function next_file(   k) {
      if (n >= 2) compare()
      for (k in prev) delete prev[k]
      for (k in cur) prev[k] = cur[k]
      for (k in prev) delete cur[k]
    }
    FNR == 1 { if (n >= 1) next_file(); n++; file = FILENAME }
    /^kvm_(vm_)?exits_total\{/ {
      # labels may hold spaces ("PF excp"): the value follows "} "
      at = index($0, "} ")
      split(substr($0, at + 2), v, " ")
      cur[substr($0, 1, at)] = v[1]
    }
    END { next_file(); printf "\n%d %d %d\n", n, pairs + 0, bad + 0 }' "$@" >"$out"
  # shellcheck disable=SC2046 # three numbers
  set -- $(tail -n 1 "$out")
  info "$name: $1 scrapes, $2 series comparisons between consecutive scrapes, $3 decreases"
  if [ "$1" -ge 2 ] && [ "$2" -gt 0 ] && [ "$3" = 0 ]; then
    pass "$name"
  else
    fail "$name" "$3 decreases in $2 comparisons over $1 scrapes: $(head -n 1 "$out")"
  fi
}

# ---- The phase ---------------------------------------------------------------------------

# restart_down HOW TAG: stops the exporter (TERM: exporter_stop; KILL:
# exporter_kill) and snapshots the hist trigger (hist-TAG-down); sets RS_DOWN_AT
restart_down() {
  if [ "$1" = KILL ]; then exporter_kill; else exporter_stop; fi
  RS_DOWN_AT=$(now)
  hist_snapshot "$WORK/hist-$2-down"
}

# restart_up NAME CONFIG TAG: starts the exporter after the gap and scrapes it
# once; figures of the gap in RS_GAP_INFO. Returns 1 when it did not start.
restart_up() {
  hist_snapshot "$WORK/hist-$3-up"
  exporter_start "$1" "$2" || return 1
  RS_UP_AT=$(now)
  RS_GAP_INFO="no exporter for $(awk -v d="$RS_DOWN_AT" -v u="$RS_UP_AT" 'BEGIN { printf "%.1f", u - d }') s (${RESTART_GAP_S} s gap + start-up), the kernel counted $(hist_delta "$WORK/hist-$3-down" "$WORK/hist-$3-up" "$CODE_IO") io exits in the gap"
  restart_scrape || true
}

phase_restarts() {
  local config refcnt0 since steady_pid gap_pid t_phase t_steady t_gap t_c io end up_term up_kill prom c
  t_phase=$(now)
  if ! awk '$2 == "/sys/fs/bpf" && $3 == "bpf" { found = 1 } END { exit !found }' /proc/mounts; then
    for c in restart_first restart_sigterm restart_sigkill restart_upgrade restart_release; do
      skip "$c" "no bpffs at /sys/fs/bpf (lib/init.sh mounts it)"
    done
    return 0
  fi
  config="kernel:
  state_path: $RESTART_STATE_DIR
vms:
  boot_window: ${RESTART_BOOT_WINDOW_S}s
rates:
  window: 4s
  sample_interval: 500ms"
  : >"$WORK/restart-scrapes"
  refcnt0=$(module_refcnt kvm)
  info "restarts: kvm $(module_state kvm) before the phase; state in $RESTART_STATE_DIR"

  # A: nothing pinned yet.
  exporter_start restart_first "$config" || return 0
  restart_scrape || true
  restart_check_state restart_first fresh "nothing kept in $RESTART_STATE_DIR"
  since=$(restart_raw "$RS_LAST" kvm_exit_exporter_counting_since_timestamp_seconds)
  if ! cross_snapshot restart0; then
    exporter_stop
    return 0
  fi
  echo "$WORK/prom-restart0" >>"$WORK/restart-scrapes"

  t_steady=$(now)
  vmm_start restartsteady --io-seconds "$RESTART_STEADY_S" --io-delay-us "$RESTART_IO_DELAY_US"
  steady_pid=$(vmm_pid restartsteady)
  restart_scrape_for "$RESTART_RUN_S"

  # SIGTERM, a gap, B.
  restart_down TERM sigterm
  sleep "$RESTART_GAP_S"
  if ! restart_up restart_sigterm "$config" sigterm; then
    vmm_kill restartsteady
    return 0
  fi
  up_term=$RS_GAP_INFO
  restart_check_state restart_sigterm adopted ""
  restart_check_since restart_sigterm "$since"
  restart_scrape_for "$RESTART_RUN_S"

  # SIGKILL, a gap in which restartgap starts and makes its burst, C.
  restart_down KILL sigkill
  t_gap=$(now)
  vmm_start restartgap --io "$RESTART_GAP_IO" --cpuid "$RESTART_GAP_CPUID"
  gap_pid=$(vmm_pid restartgap)
  sleep "$RESTART_GAP_S"
  if ! restart_up restart_sigkill "$config" sigkill; then
    vmm_kill restartsteady restartgap
    return 0
  fi
  t_c=$(now)
  up_kill=$RS_GAP_INFO
  restart_check_state restart_sigkill adopted ""
  restart_check_since restart_sigkill "$since"

  # restartgap's window, still open: its burst, exactly.
  if vmm_wait restart_gap_vmm restartgap; then
    settle
    restart_scrape || true
    if [ -n "$(elapsed "$t_gap" | awk -v w="$RESTART_BOOT_WINDOW_S" '$1 < w - 0.5')" ]; then
      check_boot_figures restart_gap_vm_boot_open "$RS_LAST" restartgap "$gap_pid" "$RESTART_GAP_IO" "$RESTART_GAP_CPUID" 0
    else
      skip restart_gap_vm_boot_open "restartgap's burst and C's start took $(elapsed "$t_gap") s, the window (${RESTART_BOOT_WINDOW_S} s) was about to close"
    fi
  else
    gap_pid=
  fi
  # C scraped while restartsteady still exits, as A and B were; then its
  # loop ends.
  restart_scrape_for "$RESTART_RUN_S"
  kill -USR2 "$steady_pid" 2>/dev/null || true
  # Scraped until restartsteady is done and restartgap's window has closed.
  end=$(awk -v s="$RESTART_STEADY_S" -v w="$RESTART_BOOT_WINDOW_S" 'BEGIN { print (s > w ? s : w) + 30 }')
  while :; do
    restart_scrape || true
    if restart_done restartsteady && { [ -z "$gap_pid" ] || restart_gap_closed "$RS_LAST" "$gap_pid"; }; then
      break
    fi
    if [ -n "$(elapsed "$t_steady" | awk -v e="$end" '$1 > e')" ]; then
      break
    fi
    sleep "$RESTART_SCRAPE_PAUSE_S"
  done
  if ! vmm_wait restart_steady_vmm restartsteady; then
    vmm_kill restartgap
    exporter_stop
    return 0
  fi
  settle
  if ! cross_snapshot restart1; then
    vmm_stop "" restartsteady restartgap
    exporter_stop
    return 0
  fi
  echo "$WORK/prom-restart1" >>"$WORK/restart-scrapes"
  prom="$WORK/prom-restart1"

  # 1. Counted through both restarts, exactly.
  io=$(vmm_field restartsteady io)
  info "restarts: restartsteady (pid $steady_pid) made $io io exits in $(vmm_field restartsteady seconds) s; SIGTERM: $up_term; SIGKILL: $up_kill"
  # It was still exiting once C served: both gaps were full of its exits.
  if awk -v s="$t_steady" -v d="$(vmm_field restartsteady seconds)" -v c="$t_c" 'BEGIN { exit !(s + d > c) }'; then
    pass restart_vm_ran_through_gaps
  else
    fail restart_vm_ran_through_gaps "restartsteady's loop ($(vmm_field restartsteady seconds) s from $t_steady s uptime) ended before C served at $t_c s: raise RESTART_STEADY_S"
  fi
  check_exits restart_host kvm_exits_total "$WORK/prom-restart0" "$prom" "" \
    "$((io + RESTART_GAP_IO))" "$RESTART_GAP_CPUID" 1
  expect_eq restart_kernel_io "hist io delta" "$(hist_delta "$WORK/hist-restart0" "$WORK/hist-restart1" "$CODE_IO")" "$((io + RESTART_GAP_IO))"
  expect_eq restart_kernel_cpuid "hist cpuid delta" "$(hist_delta "$WORK/hist-restart0" "$WORK/hist-restart1" "$CODE_CPUID")" "$RESTART_GAP_CPUID"
  expect_eq restart_kernel_hlt "hist hlt delta" "$(hist_delta "$WORK/hist-restart0" "$WORK/hist-restart1" "$CODE_HLT")" 1
  check_crosscheck restart_crosscheck restart0 restart1
  check_exits restart_vm_steady kvm_vm_exits_total "" "$prom" "vm=restartsteady;pid=$steady_pid" "$io" - -
  # shellcheck disable=SC2046 # one file a word
  restart_check_monotonic restart_no_counter_decreased $(cat "$WORK/restart-scrapes")

  # 2. The VM started while no exporter ran: its boot window, closed.
  if [ -n "$gap_pid" ]; then
    check_exits restart_vm_gap kvm_vm_exits_total "" "$prom" "vm=restartgap;pid=$gap_pid" \
      "$RESTART_GAP_IO" "$RESTART_GAP_CPUID" 1
    check_boot_figures restart_gap_vm_boot_closed "$prom" restartgap "$gap_pid" "$RESTART_GAP_IO" "$RESTART_GAP_CPUID" 1
    expect_eq restart_gap_vm_boot_all_exits "restartgap's boot-window exits (all reasons) against its kvm_vm_exits_total" \
      "$(metric "$prom" kvm_vm_boot_exits "vm=restartgap;pid=$gap_pid")" \
      "$(metric "$prom" kvm_vm_exits_total "vm=restartgap;pid=$gap_pid")"
  fi

  # 3. Upgrade: the next layout's build on the same configuration.
  exporter_stop
  if [ -x "$NEXT_LAYOUT_EXPORTER" ]; then
    restart_upgrade "$config" "$since"
  else
    for c in restart_upgrade_log_fresh restart_upgrade_state_fresh restart_upgrade_counts_from_zero; do
      skip "$c" "no $NEXT_LAYOUT_EXPORTER in the image (build_image.sh copies it when NEXT_LAYOUT_EXPORTER names the kvmexit_exporter_next_layout build)"
    done
  fi
  vmm_stop restart_vmm restartsteady
  [ -z "$gap_pid" ] || vmm_stop restart_vmm restartgap

  # 4. A deliberate stop.
  restart_release "$refcnt0"
  info "restarts: the phase took $(elapsed "$t_phase") s"
}

# restart_upgrade CONFIG SINCE: the next layout's exporter replaces the
# stopped one: a fresh start, said in the log and the metric, and counts from
# zero (its totals equal what the kernel counted since just before its start)
restart_upgrade() {
  local saved=$EXPORTER p0 p1="$WORK/prom-restart_upgrade1" since_next status=0
  hist_snapshot "$WORK/hist-restart_upgrade0"
  EXPORTER=$NEXT_LAYOUT_EXPORTER
  exporter_start restart_upgrade "$1" || status=1
  EXPORTER=$saved
  [ "$status" = 0 ] || return 0
  RS_LAST="$WORK/restart-upgrade0.prom"
  scrape "$RS_LAST" || { fail restart_upgrade "wget $METRICS_URL failed"; exporter_stop; return 0; }
  p0=$RS_LAST
  restart_check_state restart_upgrade fresh "the kept state has layout 1, this build 2"
  since_next=$(restart_raw "$p0" kvm_exit_exporter_counting_since_timestamp_seconds)
  if awk -v a="$2" -v b="$since_next" 'BEGIN { exit !(b > a) }'; then
    pass restart_upgrade_counting_since_new
  else
    fail restart_upgrade_counting_since_new "kvm_exit_exporter_counting_since_timestamp_seconds is '$since_next', the old state's was $2: expected a later time"
  fi
  expect_eq restart_upgrade_no_old_vm_series "kvm_vm_exits_total series of restartsteady (idle since before the upgrade)" \
    "$(metric_count "$p0" kvm_vm_exits_total "vm=restartsteady")" 0
  if vmm_run restart_upgrade_vmm restartupgrade --io "$RESTART_UPGRADE_IO" --cpuid "$RESTART_UPGRADE_CPUID"; then
    settle
    hist_snapshot "$WORK/hist-restart_upgrade1"
    if scrape "$p1"; then
      # Every total: what the kernel counted since before the start, no more.
      snapshot_delta "$WORK/hist-restart_upgrade0" "$WORK/hist-restart_upgrade1" >"$WORK/restart-upgrade-hist"
      exporter_snapshot "$p1" "$WORK/restart-upgrade-exp0"
      awk '$3 != 0' "$WORK/restart-upgrade-exp0" >"$WORK/restart-upgrade-exp"
      if cmp -s "$WORK/restart-upgrade-hist" "$WORK/restart-upgrade-exp"; then
        pass restart_upgrade_counts_from_zero
        info "restart_upgrade: totals (isa code count) $(tr '\n' ';' <"$WORK/restart-upgrade-exp"), as the kernel counted since the start"
      else
        fail restart_upgrade_counts_from_zero "kvm_exits_total values [$(tr '\n' ';' <"$WORK/restart-upgrade-exp")], the kernel counted [$(tr '\n' ';' <"$WORK/restart-upgrade-hist")] since just before the start"
      fi
      check_exits restart_upgrade_total kvm_exits_total "" "$p1" "" "$RESTART_UPGRADE_IO" "$RESTART_UPGRADE_CPUID" 1
      check_exits restart_upgrade_vm kvm_vm_exits_total "" "$p1" "vm=restartupgrade;pid=$(vmm_pid restartupgrade)" \
        "$RESTART_UPGRADE_IO" "$RESTART_UPGRADE_CPUID" 1
    else
      fail restart_upgrade "wget $METRICS_URL failed"
    fi
    vmm_stop restart_upgrade_vmm restartupgrade
  fi
  exporter_stop
}

# restart_release REFCNT0: no exporter runs; the pins still hold kvm (their
# programs count on): `--state.release` with the same configuration removes
# them, the programs detach, kvm's refcnt falls back to REFCNT0, and kvm
# unloads. Then it is loaded again, as it was.
restart_release() {
  local refcnt0=$1 binary=$EXPORTER config="$WORK/exporter-restart_first.yaml" held t0 status=0
  [ ! -x "$NEXT_LAYOUT_EXPORTER" ] || [ ! -f "$WORK/exporter-restart_upgrade.yaml" ] || binary=$NEXT_LAYOUT_EXPORTER
  held=$(module_refcnt kvm)
  expect_cmp restart_pinned_holds_kvm "$held" ">" "$refcnt0" "kvm refcnt with no exporter running but the state pinned (before the phase: $refcnt0)"
  "$binary" --state.release --config.file="$config" >"$WORK/restart-release.out" 2>&1 || status=$?
  info "restart_release: ${binary##*/} --state.release: exit $status: $(tr '\n' ' ' <"$WORK/restart-release.out")"
  if [ "$status" = 0 ] && grep -qF "released the BPF state in $RESTART_STATE_DIR" "$WORK/restart-release.out"; then
    pass restart_release_ran
  else
    fail restart_release_ran "--state.release exited $status: $(tr '\n' ' ' <"$WORK/restart-release.out")"
  fi
  if [ ! -e "$RESTART_STATE_DIR" ]; then
    pass restart_release_dir_gone
  else
    fail restart_release_dir_gone "$RESTART_STATE_DIR still holds: $(find "$RESTART_STATE_DIR" -mindepth 1 | tr '\n' ' ')"
  fi
  # The links' last reference goes with the pins' inodes (after an RCU grace
  # period): wait a little for kvm's refcnt.
  t0=$(now)
  while [ "$(module_refcnt kvm)" != "$refcnt0" ] &&
    [ -z "$(elapsed "$t0" | awk -v l="$RESTART_RELEASE_LIMIT_S" '$1 > l')" ]; do
    sleep 0.2
  done
  info "restart_release: kvm refcnt $refcnt0 before the phase, $held pinned with no exporter, $(module_refcnt kvm) $(elapsed "$t0") s after the release"
  expect_eq restart_release_kvm_refcnt "kvm refcnt after --state.release" "$(module_refcnt kvm)" "$refcnt0"
  if try_rmmod "$KVM_VENDOR_MODULE" && try_rmmod kvm; then
    pass restart_release_rmmod
  else
    fail restart_release_rmmod "rmmod $KVM_VENDOR_MODULE kvm after --state.release: $(cat "$WORK/rmmod-$KVM_VENDOR_MODULE.err" "$WORK/rmmod-kvm.err" 2>/dev/null | tr '\n' ' '); kvm $(module_state kvm)"
  fi
  # As it was for the phases after this one.
  if [ -d /sys/module/kvm ] || kvm_modules_load; then
    [ -d "/sys/module/$KVM_VENDOR_MODULE" ] || insmod "$KVM_MODULE_DIR/$KVM_VENDOR_KO" || true
  fi
  if [ -c /dev/kvm ] && [ -d "/sys/module/$KVM_VENDOR_MODULE" ]; then
    pass restart_release_kvm_reloaded
  else
    fail restart_release_kvm_reloaded "kvm $(module_state kvm), $KVM_VENDOR_MODULE $(module_state "$KVM_VENDOR_MODULE") after insmod"
  fi
}
