# shellcheck shell=dash
# SPDX-License-Identifier: Apache-2.0
# Loading and unloading kvm around the exporter (issue 11), sourced by
# svm/checks.sh and run after every other phase, so that they all keep the
# vendor's module (KVM_VENDOR_MODULE, kvm_amd there) loaded from boot: the
# exporter's attach retry when kvm comes later, what holds the kvm module
# while the BPF program is attached, and exact counts after unloading and
# loading kvm again. The checks that name the vendor's module say
# VENDOR_SHORT (kvm_module_amd_*).

KVM_MODULE_DIR=/lib/modules/e2e
KVM_ATTACH_RETRY_MS=500
# From insmod to attached: the modules' own load, one retry interval and the
# BPF program's load and verification (2-3 s in all under TCG), with room for
# a busy host. With the default interval (10 s) the next attempt comes at
# least 9 s after the insmod, so the check fails if the configured one is
# ignored.
KVM_ATTACH_LIMIT_S=7

# kvm_modules_load: kvm, then the vendor's (what `modprobe kvm_amd` does; the
# guest has no modules.dep). irqbypass (and ccp) stay loaded from boot.
kvm_modules_load() {
  insmod "$KVM_MODULE_DIR/kvm.ko" && insmod "$KVM_MODULE_DIR/$KVM_VENDOR_KO"
}

# try_rmmod MODULE: rmmod's status; its message is in $WORK/rmmod-MODULE.err
try_rmmod() {
  local status=0
  rmmod "$1" >"$WORK/rmmod-$1.err" 2>&1 || status=$?
  return "$status"
}

# module_refcnt MODULE -> /sys/module/MODULE/refcnt
module_refcnt() { cat "/sys/module/$1/refcnt"; }

# module_holders MODULE -> the modules that depend on MODULE, space-separated
module_holders() {
  local holder
  for holder in "/sys/module/$1/holders"/*; do
    [ -e "$holder" ] && printf '%s ' "${holder##*/}"
  done
  return 0 # no holders is no error
}

# module_state MODULE -> "refcnt=N holders=[...]" from /sys/module, or "not loaded"
module_state() {
  if [ -d "/sys/module/$1" ]; then
    echo "refcnt=$(module_refcnt "$1") holders=[$(module_holders "$1")]"
  else
    echo "not loaded"
  fi
}

# The exporter of the earlier phases has stopped: both modules unload.
check_unload_exporter_stopped() {
  local name=$1
  if try_rmmod "$KVM_VENDOR_MODULE" && try_rmmod kvm; then
    if [ ! -d /sys/module/kvm ] && [ ! -e /dev/kvm ]; then
      pass "$name"
      return 0
    fi
    fail "$name" "rmmod succeeded but kvm is $(module_state kvm), /dev/kvm $([ -e /dev/kvm ] && echo present || echo absent)"
  else
    fail "$name" "the exporter has stopped, yet rmmod said '$(cat "$WORK"/rmmod-*.err | tr '\n' ' ')'; $KVM_VENDOR_MODULE $(module_state "$KVM_VENDOR_MODULE"), kvm $(module_state kvm)"
  fi
  return 1
}

# check_counts_exact PREFIX NAME: a VMM's io, cpuid and hlt exits are counted exactly
check_counts_exact() {
  vmm_measure "$1" "$2" "$2-0" "$2-1" --io 5000 --cpuid 1000 || return 0
  check_exits "$1" kvm_exits_total "$WORK/prom-$2-0" "$WORK/prom-$2-1" "" 5000 1000 1
}

# Started with no kvm loaded, the exporter serves unattached; once the vendor's module is
# loaded it attaches within its retry interval and counts exactly.
check_exporter_before_kvm() {
  local prom="$WORK/kvm-absent.prom" start took
  exporter_start kvm_absent "kernel:
  attach_retry_interval: ${KVM_ATTACH_RETRY_MS}ms
$TIMING_CONFIG
$RATES_CONFIG" 0 || return 1
  scrape "$prom" || { fail kvm_module_absent_unattached "wget $METRICS_URL failed"; return 1; }
  if [ "$(metric "$prom" kvm_exit_exporter_bpf_attached)" = 0 ] &&
    grep -q 'kvm module is not loaded' "$EXPORTER_LOG"; then
    pass kvm_module_absent_unattached
  else
    fail kvm_module_absent_unattached "expected kvm_exit_exporter_bpf_attached 0 and a log line saying kvm is not loaded"
    show_series "$prom" '^kvm_exit_exporter_bpf_attached'
    show_file exporter "$EXPORTER_LOG" 10
  fi

  start=$(now)
  kvm_modules_load || { fail kvm_module_load "insmod kvm, $KVM_VENDOR_KO failed"; return 1; }
  scrape_until "$KVM_ATTACH_LIMIT_S" "$prom" metric_is kvm_exit_exporter_bpf_attached "" 1 || true
  took=$(elapsed "$start")
  if metric_is "$prom" kvm_exit_exporter_bpf_attached "" 1; then
    pass kvm_module_attach_after_load
    info "kvm modules: attached $took s after insmod (attach_retry_interval ${KVM_ATTACH_RETRY_MS}ms), hook: $(metric_values "$prom" kvm_exit_exporter_bpf_hook_info hook | awk '$2 == 1 { print $1 }')"
    # It dropped CAP_SYS_ADMIN after its first attempt: auto's later attach is
    # raw_tp, unless it came between the insmod of kvm and of the vendor's.
    if [ "$(metric "$prom" kvm_exit_exporter_bpf_hook_info "hook=tracepoint")" = 1 ] &&
      grep -q 'neither kvm_amd nor kvm_intel is loaded' "$EXPORTER_LOG"; then
      skip kvm_module_late_attach_hook_raw_tp "attached between insmod kvm and insmod $KVM_VENDOR_KO: tracepoint"
    else
      check_hook kvm_module_late_attach_hook_raw_tp "$prom" raw_tp
    fi
  else
    fail kvm_module_attach_after_load "kvm_exit_exporter_bpf_attached still $(metric "$prom" kvm_exit_exporter_bpf_attached) $took s after insmod $KVM_VENDOR_KO (attach_retry_interval ${KVM_ATTACH_RETRY_MS}ms)"
    show_file exporter "$EXPORTER_LOG" 10
    return 1
  fi
  check_counts_exact kvm_module_late_load late
}

# The exporter's BPF link is on kvm:kvm_exit, which lives in kvm, not in the
# vendor's module: that one (nothing holds it while no VM runs) unloads; kvm
# is refused as in use, with a reference that no dependent module accounts for.
check_unload_while_attached() {
  local m=$KVM_VENDOR_MODULE v=kvm_module_$VENDOR_SHORT
  if try_rmmod "$m"; then
    pass "${v}_unloads_while_attached"
  else
    fail "${v}_unloads_while_attached" "rmmod $m: $(cat "$WORK/rmmod-$m.err"); $m $(module_state "$m")"
    return 1
  fi
  if try_rmmod kvm; then
    fail kvm_module_unload_refused_while_attached "rmmod kvm succeeded while the exporter's BPF program was attached"
    kvm_modules_load || true
    return 1
  fi
  if grep -q 'Resource temporarily unavailable' "$WORK/rmmod-kvm.err" &&
    [ "$(module_refcnt kvm)" -ge 1 ] && [ -z "$(module_holders kvm)" ]; then
    pass kvm_module_unload_refused_while_attached
  else
    fail kvm_module_unload_refused_while_attached "rmmod kvm: '$(cat "$WORK/rmmod-kvm.err")', kvm $(module_state kvm); expected EAGAIN (in use) with refcnt >= 1 and no holders"
  fi
  info "kvm modules after rmmod $m, kvm while attached: kvm $(module_state kvm) ($(tr '\n' ' ' <"$WORK/rmmod-kvm.err"))"
  # The vendor's module back under the same exporter: its link on kvm was never cut.
  insmod "$KVM_MODULE_DIR/$KVM_VENDOR_KO" || { fail "${v}_reload" "insmod $KVM_VENDOR_KO failed"; return 1; }
  check_counts_exact "${v}_reloaded" "${VENDOR_SHORT}reload"
}

# check_stop_releases_kvm NAME LINKS: stops the exporter; kvm's refcount falls
# by exactly the references its attached BPF programs held, LINKS (plus the
# drill-down kinds attached then): 2 with
# collector.exit_handling_time on (the kvm_absent exporter), one link on
# kvm:kvm_exit and one on kvm:kvm_entry, both defined in kvm; 1 with it off
# (the default, the kvm_reloaded exporter).
# Each drill-down kind attached at the stop (collector.drilldown_auto attaches
# them during the phases' bursts) holds kvm by one link more.
check_stop_releases_kvm() {
  local attached stopped drill=0
  if scrape "$WORK/kvm-stop.prom"; then
    drill=$(metric "$WORK/kvm-stop.prom" kvm_exit_exporter_drilldown_attached)
  fi
  attached=$(module_refcnt kvm)
  exporter_stop
  stopped=$(module_refcnt kvm)
  info "kvm refcnt with the exporter attached: $attached, stopped: $stopped (holders: $(module_holders kvm)); drill-down kinds attached: $drill"
  expect_eq "$1" "kvm refcnt attached - stopped ($2 programs and $drill drill-down kinds)" \
    "$((attached - stopped))" "$(($2 + drill))"
}

phase_kvm_modules() {
  info "kvm modules at the start: $KVM_VENDOR_MODULE $(module_state "$KVM_VENDOR_MODULE"), kvm $(module_state kvm)"
  check_unload_exporter_stopped kvm_module_unload_exporter_stopped || return 0
  if check_exporter_before_kvm && check_unload_while_attached; then
    check_stop_releases_kvm kvm_module_stop_releases_kvm 2
  fi
  exporter_stop
  [ -d "/sys/module/$KVM_VENDOR_MODULE" ] || return 0 # a failure above left kvm half-loaded

  # Stopped: unload, load, restart; tp_btf now, as the vendor's module is there at start.
  check_unload_exporter_stopped kvm_module_unload_after_stop || return 0
  kvm_modules_load || { fail kvm_module_reload "insmod kvm, $KVM_VENDOR_KO failed"; return 0; }
  exporter_start kvm_reloaded "$RATES_CONFIG" || return 0
  scrape "$WORK/kvm-reloaded.prom" || { fail kvm_module_reload "wget $METRICS_URL failed"; exporter_stop; return 0; }
  check_hook kvm_module_reload_hook_tp_btf "$WORK/kvm-reloaded.prom" tp_btf
  check_counts_exact kvm_module_reload reload
  check_stop_releases_kvm kvm_module_tp_btf_stop_releases_kvm 1
  exporter_stop
}
