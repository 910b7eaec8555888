#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The host suite's checks, run inside the booted Debian 12 image as root by
# host-test-control.service (tests/host/image_customize.sh) from the 9p share
# /mnt/host, which run_host.sh fills with this script, tests/e2e/lib/common.sh
# (metric parsing, reporting) and the two packages (install, upgrade).
# Prints `E2E PASS|FAIL|SKIP name[: why]` per check and `E2E DONE` at the end;
# `E2E PROMCHECK` asks the host to run Prometheus against the exporter through
# the port forward, and waits for /mnt/host/promcheck.done.
set -u
SHARE=/mnt/host
# shellcheck source-path=SCRIPTDIR source=../../e2e/lib/common.sh
. "$SHARE/lib.sh"
WORK=/tmp/host-test
mkdir -p "$WORK"
SCRAPE_ERRORS=$WORK/scrape-errors
: >"$SCRAPE_ERRORS"
UNIT=kvm_exit_exporter.service
PKG=kvm-exit-exporter
HIST_KEYS='common_pid,exit_reason'
LV_NAME=hostlv LV_UUID=6a0c2f4e-9d1b-4c39-8f2e-0000000000a1
QA_NAME=hostqa QA_UUID=6a0c2f4e-9d1b-4c39-8f2e-0000000000a2
QB_NAME=hostqb QB_UUID=6a0c2f4e-9d1b-4c39-8f2e-0000000000a3
ATTACHED=0
# run_host.sh's HOST_DEBUG_DROPIN_CAPS, for debugging the suite only
HOST_DEBUG_DROPIN_CAPS=
# shellcheck disable=SC1091
[[ ! -r $SHARE/env ]] || . "$SHARE/env"

section() { echo "== $*"; }
# Runs a command with its output indented into the log.
show() { "$@" 2>&1 | sed 's/^/  | /'; }

scrape_to() { curl -sf --max-time 10 -o "$1" "$METRICS_URL"; }

# wait_attached SECONDS -> 0 when the service serves kvm_exit_exporter_bpf_attached 1
wait_attached() {
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    if scrape_to "$WORK/attach.prom" && [[ $(metric "$WORK/attach.prom" kvm_exit_exporter_bpf_attached) == 1 ]]; then
      return 0
    fi
    sleep 1
  done
  return 1
}

main_pid() { systemctl show -p MainPID --value "$UNIT"; }

# capabilities HEX -> names of the set bits (the ones the unit is about, else the number)
capabilities() {
  local value=$((16#$1)) bit names=""
  local -A known=([0]=CAP_CHOWN [1]=CAP_DAC_OVERRIDE [2]=CAP_DAC_READ_SEARCH [12]=CAP_NET_ADMIN
    [19]=CAP_SYS_PTRACE [21]=CAP_SYS_ADMIN [24]=CAP_SYS_RESOURCE [38]=CAP_PERFMON [39]=CAP_BPF)
  for ((bit = 0; bit < 64; bit++)); do
    if (((value >> bit) & 1)); then names+="${known[$bit]:-cap$bit} "; fi
  done
  echo "${names:-none}"
}

# hist_by_pid OUT: "tid code count" lines of the hist trigger keyed by common_pid
hist_by_pid() {
  awk '/^\{/ {
         pid = $0; sub(/.*common_pid: */, "", pid); sub(/[^0-9].*/, "", pid)
         code = $0; sub(/.*exit_reason: */, "", code); sub(/[^0-9].*/, "", code)
         count = $0; sub(/.*hitcount: */, "", count); sub(/[^0-9].*/, "", count)
         print pid, code, count
       }' "$KVM_EXIT_EVENT/hist" | sort -n >"$1"
}

# threads PID -> the thread ids of PID, one a line
threads() { ls "/proc/$1/task" 2>/dev/null; }

# hist_for_pid HIST PID -> "code count" over the threads of PID, by code
hist_for_pid() {
  threads "$2" | awk 'FILENAME == "-" { t[$1] = 1; next } ($1 in t) { c[$2] += $3 } END { for (k in c) print k, c[k] }' - "$1" | sort -n
}

# exporter_by_code PROM METRIC FILTER -> "code count" of the matching samples, by code
exporter_by_code() {
  metric_values "$1" "$2" code "$3" | awk '{ c[$1] += $2 } END { for (k in c) printf "%s %.0f\n", k, c[k] }' | sort -n
}

# compare NAME WHAT EXPORTER_FILE HIST_FILE: PASS when both "code count" lists are equal
compare() {
  if [[ ! -s $4 ]]; then
    fail "$1" "the hist trigger saw no exit for $2"
  elif diff -u "$4" "$3" >"$WORK/$1.diff"; then
    pass "$1"
    info "$2: $(awk '{ s += $2; printf "%s%s=%s", (NR > 1 ? " " : ""), $1, $2 } END { printf " (total %d)", s }' "$3")"
  else
    fail "$1" "exporter differs from the hist trigger for $2 (- hist, + exporter): $(grep '^[-+][0-9]' "$WORK/$1.diff" | tr '\n' ' ')"
  fi
}

# ---- 0. The machine ----------------------------------------------------------------
section "machine"
info "kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { print $2 / 1024 " MiB" }' /proc/meminfo)"
info "kernel.perf_event_paranoid = $(cat /proc/sys/kernel/perf_event_paranoid)"
info "kernel.unprivileged_bpf_disabled = $(cat /proc/sys/kernel/unprivileged_bpf_disabled)"
# udev loads kvm_amd at boot; the control service may start first.
deadline=$((SECONDS + 60))
until [[ -c /dev/kvm ]] && grep -q '^kvm_amd .* Live ' /proc/modules || ((SECONDS >= deadline)); do
  udevadm settle --timeout=5 2>/dev/null || sleep 1
done
if [[ -c /dev/kvm ]] && grep -q '^kvm_amd .* Live ' /proc/modules; then
  pass kvm_amd_loaded
else
  fail kvm_amd_loaded "no /dev/kvm or no live kvm_amd 60 s after boot (/dev/kvm: $(ls -l /dev/kvm 2>&1); modules: $(grep '^kvm' /proc/modules | tr '\n' ' '))"
fi
if [[ ! -d $KVM_EXIT_EVENT ]]; then
  mount -t tracefs tracefs "$TRACEFS" 2>/dev/null || true
fi

# ---- 1. Install the package as a user does -----------------------------------------
section "install"
deb_old=$(ls "$SHARE"/pkg/old/*.deb) deb_new=$(ls "$SHARE"/pkg/new/*.deb)
cp "$deb_old" "$deb_new" "$WORK/"  # apt reads local packages as _apt: not from 9p
deb_old=$WORK/${deb_old##*/} deb_new=$WORK/${deb_new##*/}
chmod 0644 "$deb_old" "$deb_new"
if [[ -n $HOST_DEBUG_DROPIN_CAPS ]]; then
  # Not what users get: the no_dropin check fails on purpose.
  mkdir -p "/etc/systemd/system/$UNIT.d"
  printf '[Service]\nCapabilityBoundingSet=%s\nAmbientCapabilities=%s\n' "$HOST_DEBUG_DROPIN_CAPS" "$HOST_DEBUG_DROPIN_CAPS" \
    >"/etc/systemd/system/$UNIT.d/host-debug.conf"
  info "HOST_DEBUG_DROPIN_CAPS: drop-in adds $HOST_DEBUG_DROPIN_CAPS"
fi
started=$SECONDS
if DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y --no-install-recommends "$deb_old" >"$WORK/apt-install.log" 2>&1; then
  pass apt_install
  info "apt install ./${deb_old##*/}: $((SECONDS - started)) s"
else
  fail apt_install "apt-get install $deb_old failed"
  show tail -n 20 "$WORK/apt-install.log"
fi
dpkg -L "$PKG" >"$WORK/dpkg-L.txt" 2>/dev/null
cp "$WORK/dpkg-L.txt" "$SHARE/dpkg-L.txt"
info "the package installs $(wc -l <"$WORK/dpkg-L.txt") paths; unit enabled: $(systemctl is-enabled "$UNIT" 2>&1)"
systemctl cat "$UNIT" --no-pager 2>&1 | grep -E '^(ExecStart|CapabilityBoundingSet|AmbientCapabilities)=|^# /(lib|etc|usr)/' | sed 's/^/  unit: /'
if [[ -e /etc/systemd/system/$UNIT.d ]]; then
  fail no_dropin "drop-ins: $(find "/etc/systemd/system/$UNIT.d" -mindepth 1 -printf '%f ')"
else
  pass no_dropin
fi

# ---- 2. The service attaches at the defaults ---------------------------------------
section "service"
if wait_attached 40; then
  ATTACHED=1
  pass service_attached
else
  fail service_attached "kvm_exit_exporter_bpf_attached is '$(metric "$WORK/attach.prom" kvm_exit_exporter_bpf_attached 2>/dev/null)' 40 s after installation (service $(systemctl is-active "$UNIT"))"
  show journalctl -u "$UNIT" --no-pager -o cat -n 15
fi
hook=$(metric_values "$WORK/attach.prom" kvm_exit_exporter_bpf_hook_info hook | awk '$2 == 1 { print $1 }')
info "hook: ${hook:-none} ($(grep '^kvm_exit_exporter_bpf_hook_info' "$WORK/attach.prom" | tr '\n' ' '))"
pid=$(main_pid)
info "service: $(systemctl is-active "$UNIT"), MainPID $pid, user $(ps -o user= -p "$pid" 2>/dev/null)"
cap=$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
info "CapEff ${cap:-?}: $(capabilities "${cap:-0}")"
info "CapPrm $(awk '/^CapPrm:/ { print $2 }' "/proc/$pid/status" 2>/dev/null), CapBnd $(awk '/^CapBnd:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)"
systemd-analyze security --no-pager "$UNIT" >"$SHARE/systemd-analyze-security.txt" 2>&1
info "systemd-analyze security: $(grep -a 'Overall exposure level' "$SHARE/systemd-analyze-security.txt" | sed 's/^→ *//')"

# ---- 3. The hist trigger, then the VMs ---------------------------------------------
section "VMs"
echo "hist:keys=$HIST_KEYS:size=8192" >"$KVM_EXIT_EVENT/trigger" || fail hist_trigger "cannot set the hist trigger"
scrape_to "$WORK/before-vms.prom"
info "kvm_exits_total before the VMs: $(metric "$WORK/before-vms.prom" kvm_exits_total)"

cat >"$WORK/$LV_NAME.xml" <<XML
<domain type='kvm'>
  <name>$LV_NAME</name>
  <uuid>$LV_UUID</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_reboot>restart</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
XML
lv_pid='' qa_pid='' qb_pid=''
if timeout 60 virsh define "$WORK/$LV_NAME.xml" >"$WORK/virsh.log" 2>&1 &&
  timeout 90 virsh start "$LV_NAME" >>"$WORK/virsh.log" 2>&1; then
  lv_pid=$(cat "/run/libvirt/qemu/$LV_NAME.pid" 2>/dev/null)
  pass "libvirt_domain_started"
  info "libvirt domain $LV_NAME: QEMU pid $lv_pid, cgroup $(cat "/proc/$lv_pid/cgroup" 2>/dev/null)"
else
  fail libvirt_domain_started "virsh define/start $LV_NAME failed: $(tail -n 5 "$WORK/virsh.log" | tr '\n' ' ')"
  show tail -n 20 "/var/log/libvirt/qemu/$LV_NAME.log"
fi
# start_qemu NAME_ARG UUID LOG -> pid of a hand-started QEMU spinning in SeaBIOS
start_qemu() {
  qemu-system-x86_64 -enable-kvm -machine pc -name "$1" -uuid "$2" -m 64 -smp 1 \
    -display none -nodefaults -no-user-config -pidfile "$WORK/$3.pid" </dev/null >"$WORK/$3.log" 2>&1 &
  echo $!
}
qa_pid=$(start_qemu "$QA_NAME" "$QA_UUID" qa)
qb_pid=$(start_qemu "guest=$QB_NAME,debug-threads=on" "$QB_UUID" qb)
sleep 3
for v in "qa:$qa_pid" "qb:$qb_pid"; do
  if kill -0 "${v#*:}" 2>/dev/null; then
    pass "qemu_${v%%:*}_started"
    info "QEMU $(tr '\0' ' ' <"/proc/${v#*:}/cmdline"): pid ${v#*:}, cgroup $(cat "/proc/${v#*:}/cgroup")"
  else
    fail "qemu_${v%%:*}_started" "QEMU exited: $(tail -n 5 "$WORK/${v%%:*}.log" | tr '\n' ' ')"
  fi
done
vms_started=$SECONDS

# ---- 4. Identity: name, UUID, platform -----------------------------------------------
section "identity"
sleep 10
scrape_to "$WORK/vms.prom" || fail scrape_vms "no /metrics"
grep -E '^kvm_vm_info' "$WORK/vms.prom" | sed 's/^/  labels: /'
# check_identity CHECK PID NAME UUID PLATFORM
check_identity() {
  local line
  line=$(grep -E "^kvm_vm_info\\{.*pid=\"$2\"" "$WORK/vms.prom" | head -n 1)
  if [[ -z $2 ]]; then
    fail "$1" "no VMM process"
  elif [[ -z $line ]]; then
    fail "$1" "no kvm_vm_info series for pid $2"
  else
    local got_vm got_uuid got_platform
    got_vm=$(sed -n 's/.*[{,]vm="\([^"]*\)".*/\1/p' <<<"$line")
    got_uuid=$(sed -n 's/.*vm_uuid="\([^"]*\)".*/\1/p' <<<"$line")
    got_platform=$(sed -n 's/.*platform="\([^"]*\)".*/\1/p' <<<"$line")
    info "identity $1: vm=\"$got_vm\" vm_uuid=\"$got_uuid\" platform=\"$got_platform\""
    if [[ $got_vm == "$3" && $got_uuid == "$4" && $got_platform == "$5" ]]; then
      pass "$1"
    else
      fail "$1" "labels vm=\"$got_vm\" vm_uuid=\"$got_uuid\" platform=\"$got_platform\", expected vm=\"$3\" vm_uuid=\"$4\" platform=\"$5\""
    fi
  fi
}
check_identity identity_libvirt "$lv_pid" "$LV_NAME" "$LV_UUID" libvirt
check_identity identity_qemu_name "$qa_pid" "$QA_NAME" "$QA_UUID" qemu
# -name guest=NAME without libvirt's cgroup is a QEMU started by hand: main
# labelled it platform="libvirt" until c455d2d (vm identity: ... is qemu, not libvirt).
check_identity identity_qemu_guest_name "$qb_pid" "$QB_NAME" "$QB_UUID" qemu
for v in "lv:$lv_pid" "qa:$qa_pid" "qb:$qb_pid"; do
  n=$(metric_count "$WORK/vms.prom" kvm_vm_boot_exits "pid=${v#*:}")
  if [[ -n ${v#*:} && $n -gt 0 ]]; then
    pass "boot_window_${v%%:*}"
    info "boot window ${v%%:*}: $(metric "$WORK/vms.prom" kvm_vm_boot_exits "pid=${v#*:}") exits in $n series so far"
  else
    fail "boot_window_${v%%:*}" "no kvm_vm_boot_exits series for pid ${v#*:}"
  fi
done

# ---- 5. The host's Prometheus, through the port forward -------------------------------
section "Prometheus on the host"
# The boot windows (vms.boot_window: 120s) close first, so that the boot
# dashboard's histogram panels have data.
while ((SECONDS - vms_started < 130)); do sleep 2; done
scrape_to "$WORK/promcheck.prom"
info "boot windows closed: $(metric "$WORK/promcheck.prom" kvm_vm_boot_window_closed) of 3"
echo "E2E PROMCHECK"
deadline=$((SECONDS + 420))
while [[ ! -e $SHARE/promcheck.done ]] && ((SECONDS < deadline)); do sleep 1; done
[[ -e $SHARE/promcheck.done ]] || info "no answer from the host's Prometheus check within 420 s"
for v in "lv:$lv_pid" "qa:$qa_pid" "qb:$qb_pid"; do
  [[ -z ${v#*:} ]] || kill -0 "${v#*:}" 2>/dev/null || fail "vm_${v%%:*}_ran_throughout" "pid ${v#*:} ended"
done

# ---- 6. Exact counts: pause every VM, then exporter == hist trigger ------------------
section "counts"
resume_vms() {
  timeout 30 virsh resume "$LV_NAME" >>"$WORK/virsh.log" 2>&1 || info "virsh resume failed: $(tail -n 2 "$WORK/virsh.log" | tr '\n' ' ')"
  for p in "$qa_pid" "$qb_pid"; do [[ -z $p ]] || kill -CONT "$p"; done
}
pause_vms() {
  timeout 30 virsh suspend "$LV_NAME" >>"$WORK/virsh.log" 2>&1 || info "virsh suspend failed: $(tail -n 2 "$WORK/virsh.log" | tr '\n' ' ')"
  for p in "$qa_pid" "$qb_pid"; do [[ -z $p ]] || kill -STOP "$p"; done
}
# settle_hist OUT: waits until two hist snapshots a second apart are equal
# (at most 30 s), writes the last to OUT; 1 when it never settled
settle_hist() {
  hist_by_pid "$WORK/settle.a"
  for _ in $(seq 1 30); do
    sleep 1
    hist_by_pid "$WORK/settle.b"
    if cmp -s "$WORK/settle.a" "$WORK/settle.b"; then
      cp "$WORK/settle.b" "$1"
      return 0
    fi
    mv "$WORK/settle.b" "$WORK/settle.a"
  done
  cp "$WORK/settle.a" "$1"
  return 1
}
pause_vms
settle_hist "$WORK/hist.settled" || fail counts_settled "the hist trigger still counts 30 s after pausing every VM"
sleep 2
scrape_to "$WORK/paused.prom"
hist_by_pid "$WORK/hist.final"
info "hist trigger: $(grep -E '^ *(Hits|Entries|Dropped):' "$KVM_EXIT_EVENT/hist" | tr -s ' \n' ' ')"
[[ $(awk '/Dropped:/ { print $2 }' "$KVM_EXIT_EVENT/hist") == 0 ]] || fail hist_dropped "the hist trigger dropped entries"
if [[ $ATTACHED == 1 ]]; then
  for v in "lv:$lv_pid" "qa:$qa_pid" "qb:$qb_pid"; do
    [[ -n ${v#*:} ]] || { fail "counts_vm_${v%%:*}" "no VMM"; continue; }
    hist_for_pid "$WORK/hist.final" "${v#*:}" >"$WORK/hist-${v%%:*}.txt"
    exporter_by_code "$WORK/paused.prom" kvm_vm_exits_total "pid=${v#*:}" >"$WORK/exp-${v%%:*}.txt"
    compare "counts_vm_${v%%:*}" "VM ${v%%:*} (pid ${v#*:}, $(threads "${v#*:}" | wc -l) threads)" "$WORK/exp-${v%%:*}.txt" "$WORK/hist-${v%%:*}.txt"
  done
  awk '{ c[$2] += $3 } END { for (k in c) print k, c[k] }' "$WORK/hist.final" | sort -n >"$WORK/hist-host.txt"
  exporter_by_code "$WORK/paused.prom" kvm_exits_total "" >"$WORK/exp-host.txt"
  compare counts_host_total "the host" "$WORK/exp-host.txt" "$WORK/hist-host.txt"
else
  for c in counts_vm_lv counts_vm_qa counts_vm_qb counts_host_total; do fail "$c" "the exporter never attached"; done
fi

# ---- 6b. Restarts keep counting (issue 25) ----------------------------------------
# The VMs run again; the service is restarted by systemctl, then killed
# (Restart=on-failure starts it again after RestartSec=5s). Each new process
# must adopt the programs, maps and links systemd kept in its file descriptor
# store, so that exits made while no exporter ran are counted: with the VMs
# paused again, every VM's counts and the host totals equal the hist trigger
# (set before the VMs started) exactly, and no scrape ever saw a counter go
# back.
section "restarts"
# adopted NAME SINCE: PASS when the running service adopted the kept state
# and counts since SINCE (kvm_exit_exporter_counting_since_timestamp_seconds)
adopted() {
  if ! wait_attached 60; then
    fail "$1" "kvm_exit_exporter_bpf_attached is not 1 60 s after the restart"
    show journalctl -u "$UNIT" --no-pager -o cat -n 10
    return
  fi
  local start since
  start=$(metric_values "$WORK/attach.prom" kvm_exit_exporter_bpf_state_info start | awk '$2 == 1 { print $1 }')
  since=$(metric "$WORK/attach.prom" kvm_exit_exporter_counting_since_timestamp_seconds)
  info "$1: MainPID $(main_pid), state start=${start:-none}, counting since $since, fd store $(systemctl show -p NFileDescriptorStore --value "$UNIT")"
  if [[ $start == adopted && $since == "$2" ]]; then
    pass "$1"
  else
    fail "$1" "bpf_state_info start=\"${start:-none}\", counting since $since (expected adopted, since $2)"
    show journalctl -u "$UNIT" --no-pager -o cat -n 10
  fi
}
# Scrapes every half second while the service restarts, for the
# monotonicity check: "scrape MainPID series value" lines.
watch_counters() {
  local n=0 pid
  while [[ ! -e $WORK/watch.stop ]]; do
    pid=$(main_pid)
    if scrape_to "$WORK/watch.prom"; then
      n=$((n + 1))
      grep -E '^kvm_(vm_)?exits_total\{' "$WORK/watch.prom" | sed "s/^/$n $pid /" >>"$WORK/watch.txt"
    fi
    sleep 0.5
  done
}
# wait_scraped PID TIMEOUT_S: waits until watch_counters has scraped the
# exporter process PID at least twice (its scrapes take a second or more in
# the TCG guest while the VMs run, longer under load); 1 after TIMEOUT_S
wait_scraped() {
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    if (($(awk -v p="$1" '$2 == p && !seen[$1]++ { n++ } END { print n + 0 }' "$WORK/watch.txt") >= 2)); then
      return 0
    fi
    sleep 0.5
  done
  info "watch_counters scraped MainPID $1 fewer than twice in $2 s"
  return 1
}
restart_since=''
if [[ $ATTACHED == 1 ]]; then
  restart_since=$(metric "$WORK/paused.prom" kvm_exit_exporter_counting_since_timestamp_seconds)
  fdstore=$(systemctl show -p NFileDescriptorStore --value "$UNIT")
  info "before the restarts: counting since $restart_since, $fdstore descriptors in systemd's fd store"
  if [[ ${fdstore:-0} -gt 0 ]]; then pass fd_store_filled; else fail fd_store_filled "systemd holds no descriptor of the service (NFileDescriptorStore=${fdstore:-?})"; fi
  resume_vms
  : >"$WORK/watch.txt"
  rm -f "$WORK/watch.stop"
  watch_counters &
  watcher=$!
  # Two scrapes of each process at least, however long they take.
  wait_scraped "$(main_pid)" 60 || true
  systemctl restart "$UNIT"
  adopted restart_adopted "$restart_since"
  # The boot windows closed before the restart stay in the histogram.
  expect_eq restart_keeps_boot_histogram "kvm_vm_boot_exits_count_count after the restart" \
    "$(metric "$WORK/attach.prom" kvm_vm_boot_exits_count_count)" "$(metric "$WORK/paused.prom" kvm_vm_boot_exits_count_count)"
  wait_scraped "$(main_pid)" 60 || true
  old_pid=$(main_pid)
  systemctl kill -s KILL "$UNIT"
  info "killed MainPID $old_pid with SIGKILL"
  sleep 1
  adopted crash_adopted "$restart_since"
  wait_scraped "$(main_pid)" 60 || true
  touch "$WORK/watch.stop"
  wait "$watcher"
  pause_vms
  settle_hist "$WORK/hist.restarts" || info "the hist trigger still counts 30 s after pausing every VM"
  sleep 2
  scrape_to "$WORK/restarts.prom"
  for v in "lv:$lv_pid" "qa:$qa_pid" "qb:$qb_pid"; do
    [[ -n ${v#*:} ]] || { fail "restarts_counts_vm_${v%%:*}" "no VMM"; continue; }
    hist_for_pid "$WORK/hist.restarts" "${v#*:}" >"$WORK/hist-r-${v%%:*}.txt"
    exporter_by_code "$WORK/restarts.prom" kvm_vm_exits_total "pid=${v#*:}" >"$WORK/exp-r-${v%%:*}.txt"
    compare "restarts_counts_vm_${v%%:*}" "VM ${v%%:*} across two restarts" "$WORK/exp-r-${v%%:*}.txt" "$WORK/hist-r-${v%%:*}.txt"
  done
  awk '{ c[$2] += $3 } END { for (k in c) print k, c[k] }' "$WORK/hist.restarts" | sort -n >"$WORK/hist-r-host.txt"
  exporter_by_code "$WORK/restarts.prom" kvm_exits_total "" >"$WORK/exp-r-host.txt"
  compare restarts_counts_host_total "the host across two restarts" "$WORK/exp-r-host.txt" "$WORK/hist-r-host.txt"
  info "exits while restarting: $(awk '{ s += $2 } END { print s }' "$WORK/exp-r-host.txt") now, $(awk '{ s += $2 } END { print s }' "$WORK/exp-host.txt") before"
  # Per series, in scrape order: a value below the one before is a reset.
  decreased=$(awk '{ v = $NF; key = $0; sub(/^[0-9]+ [0-9]+ /, "", key); sub(/ [^ ]*$/, "", key)
                     if ((key in last) && v + 0 < last[key] + 0) printf "%s: %s -> %s; ", key, last[key], v
                     last[key] = v }' "$WORK/watch.txt")
  # Scrapes per exporter process: the one before the restart, the restarted
  # one and the one started after the kill must each have been seen twice.
  per_process=$(awk '!seen[$1]++ { n[$2]++ } END { for (p in n) if (n[p] >= 2) k++; print k + 0 }' "$WORK/watch.txt")
  scrapes=$(awk 'END { print $1 }' "$WORK/watch.txt")
  if [[ -z $decreased && $per_process -ge 3 ]]; then
    pass restarts_no_counter_decreased
    info "$scrapes scrapes of $per_process exporter processes during the restarts, $(awk '{ print $3 }' "$WORK/watch.txt" | sort -u | wc -l) series, none decreased"
  else
    fail restarts_no_counter_decreased "${decreased:-only $per_process processes scraped twice or more (scrapes by MainPID: $(awk '!seen[$1]++ { n[$2]++ } END { for (p in n) printf "%s:%d ", p, n[p] }' "$WORK/watch.txt"))}"
  fi
else
  for c in fd_store_filled restart_adopted crash_adopted restarts_counts_host_total restarts_no_counter_decreased; do
    fail "$c" "the exporter never attached"
  done
fi

# ---- 7. Upgrade over the running service ---------------------------------------------
section "upgrade"
old_pid=$(main_pid) old_version=$(dpkg-query -W -f '${Version}' "$PKG" 2>/dev/null)
if DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y --no-install-recommends "$deb_new" >"$WORK/apt-upgrade.log" 2>&1; then
  new_version=$(dpkg-query -W -f '${Version}' "$PKG")
  info "upgraded $old_version -> $new_version"
  if [[ $new_version != "$old_version" ]]; then pass upgrade_installed; else fail upgrade_installed "version still $new_version"; fi
else
  fail upgrade_installed "apt-get install $deb_new failed"
  show tail -n 20 "$WORK/apt-upgrade.log"
fi
new_pid=$(main_pid)
if [[ $(systemctl is-active "$UNIT") == active && $new_pid != 0 && $new_pid != "$old_pid" ]]; then
  pass upgrade_restarted
  info "MainPID $old_pid -> $new_pid"
else
  fail upgrade_restarted "service $(systemctl is-active "$UNIT"), MainPID $old_pid -> $new_pid"
fi
if wait_attached 40; then pass upgrade_attached; else fail upgrade_attached "kvm_exit_exporter_bpf_attached is not 1 40 s after the upgrade"; fi
# The upgrade's restart keeps the BPF state of the same layout: adopted.
adopted upgrade_adopted "$restart_since"

# ---- 7b. A crash loop (issue 25) ---------------------------------------------------------
# The shipped unit starts a crashed exporter again 5 s later, and systemd's
# default start limit (5 starts in 10 s) is out of reach at that pace: a crash
# loop goes on restarting. Each process is killed half a second after it
# appears, during its start-up, three times; the next one must still adopt.
# A unit that fails for good must leave nothing attached. A drop-in lowers
# the start limit (2 starts in 300 s, 1 s apart), as an admin's might; at the
# limit systemd releases the fd store, the programs detach (kvm's refcnt
# falls), and the next start counts afresh.
section "crash loop"
# new_main_pid OLD SECONDS -> the service's MainPID once it is neither 0 nor
# OLD; 1 after SECONDS or when the unit failed
new_main_pid() {
  local deadline=$((SECONDS + $2)) pid
  while ((SECONDS < deadline)) && [[ $(systemctl is-failed "$UNIT") != failed ]]; do
    pid=$(main_pid)
    if [[ $pid != 0 && $pid != "$1" ]]; then
      echo "$pid"
      return 0
    fi
    sleep 0.2
  done
  return 1
}
# kill_starts MAX: SIGKILLs the service's process, then each next one half a
# second after it appears, MAX times, or fewer when no next one comes (30 s)
# or the unit failed; sets KILLS
kill_starts() {
  local pid
  pid=$(main_pid) KILLS=0
  while [[ $pid != 0 ]] && ((KILLS < $1)); do
    kill -KILL "$pid" 2>/dev/null && KILLS=$((KILLS + 1))
    pid=$(new_main_pid "$pid" 30) || break
    sleep 0.5
  done
}
crash_loop_window=''
if [[ $ATTACHED == 1 ]]; then
  kill_starts 3
  info "crash loop: $KILLS SIGKILLs, each half a second after its process appeared"
  adopted crash_loop_adopted "$restart_since"
  refs_attached=$(cat /sys/module/kvm/refcnt)
  dropin=/run/systemd/system/$UNIT.d
  mkdir -p "$dropin"
  printf '[Unit]\nStartLimitIntervalSec=300\nStartLimitBurst=2\n[Service]\nRestartSec=1s\n' >"$dropin/start-limit.conf"
  systemctl daemon-reload
  loop_start=$(date +%s)
  kill_starts 6
  # Closing the last descriptor of a link detaches it; let that settle.
  sleep 2
  # Result names the last process's end (signal); the journal says why
  # systemd gave up.
  limit_logged=$(journalctl -u "$UNIT" --no-pager -q -o cat --since "@$loop_start" | grep -c 'Start request repeated too quickly')
  fdstore=$(systemctl show -p NFileDescriptorStore --value "$UNIT")
  refs_failed=$(cat /sys/module/kvm/refcnt)
  info "start limit: $(systemctl is-failed "$UNIT") after $KILLS SIGKILLs (Result=$(systemctl show -p Result --value "$UNIT"), 'Start request repeated too quickly' logged $limit_logged times), fd store ${fdstore:-?}, kvm refcnt $refs_attached attached, $refs_failed after"
  if [[ $(systemctl is-failed "$UNIT") == failed ]] && ((limit_logged > 0)); then
    pass crash_loop_start_limit_hit
  else
    fail crash_loop_start_limit_hit "after $KILLS SIGKILLs the unit is $(systemctl is-failed "$UNIT"), the start limit logged $limit_logged times"
  fi
  if [[ $fdstore == 0 ]] && ((refs_failed < refs_attached)); then
    pass crash_loop_failed_detaches
  else
    fail crash_loop_failed_detaches "failed unit: fd store ${fdstore:-?}, kvm refcnt $refs_attached -> $refs_failed"
  fi
  rm -rf "$dropin"
  systemctl daemon-reload
  systemctl reset-failed "$UNIT"
  crash_loop_window="$loop_start $(date +%s)"
  systemctl start "$UNIT"
  if wait_attached 60; then
    start=$(metric_values "$WORK/attach.prom" kvm_exit_exporter_bpf_state_info start | awk '$2 == 1 { print $1 }')
    refs_again=$(cat /sys/module/kvm/refcnt)
    info "started again: state start=${start:-none}, kvm refcnt $refs_again"
    if [[ $start == fresh ]] && ((refs_again > refs_failed)); then
      pass crash_loop_then_fresh
    else
      fail crash_loop_then_fresh "state start=${start:-none} (expected fresh), kvm refcnt $refs_failed -> $refs_again"
    fi
  else
    fail crash_loop_then_fresh "kvm_exit_exporter_bpf_attached is not 1 60 s after the start"
  fi
else
  for c in crash_loop_adopted crash_loop_start_limit_hit crash_loop_failed_detaches crash_loop_then_fresh; do
    fail "$c" "the exporter never attached"
  done
fi

# ---- 8. Remove, purge, journal ---------------------------------------------------------
section "remove and purge"
DEBIAN_FRONTEND=noninteractive timeout 300 apt-get remove -y "$PKG" >"$WORK/apt-remove.log" 2>&1 || fail apt_remove "apt-get remove failed"
if [[ $(systemctl is-active "$UNIT") != active && ! -e /usr/bin/kvm_exit_exporter && -e /etc/kvm_exit_exporter/config.yml ]]; then
  pass apt_remove
else
  fail apt_remove "after remove: service $(systemctl is-active "$UNIT"), binary $(ls /usr/bin/kvm_exit_exporter 2>&1), conffile $(ls /etc/kvm_exit_exporter/config.yml 2>&1)"
fi
# A deliberate stop detaches everything: systemd closed its fd store, so no
# program holds kvm any more. With the VMs and the hist trigger gone, kvm
# unloads.
timeout 30 virsh destroy "$LV_NAME" >/dev/null 2>&1
for p in "$qa_pid" "$qb_pid"; do [[ -z $p ]] || kill -KILL "$p" 2>/dev/null; done
echo "!hist:keys=$HIST_KEYS:size=8192" >"$KVM_EXIT_EVENT/trigger" 2>/dev/null
sleep 2
fdstore=$(systemctl show -p NFileDescriptorStore --value "$UNIT" 2>/dev/null)
kvm_refs="refcnt $(cat /sys/module/kvm/refcnt 2>/dev/null), holders $(find /sys/module/kvm/holders -mindepth 1 -printf '%f ' 2>/dev/null)"
if modprobe -r kvm_amd kvm 2>"$WORK/modprobe.log" && ! grep -q '^kvm ' /proc/modules; then
  pass stop_unloads_kvm
  info "after the stop: fd store ${fdstore:-0}, kvm had $kvm_refs; kvm_amd and kvm unloaded"
  modprobe kvm_amd 2>/dev/null || true
else
  fail stop_unloads_kvm "modprobe -r kvm_amd kvm: $(tr '\n' ' ' <"$WORK/modprobe.log") (kvm $kvm_refs, fd store ${fdstore:-?})"
fi
# bpffs's own maps.debug and progs.debug are the kernel's, not pins.
pins=$(find /sys/fs/bpf -mindepth 1 ! -name maps.debug ! -name progs.debug -printf '%P ' 2>/dev/null)
if [[ -z $pins ]]; then
  pass stop_leaves_no_pin
else
  fail stop_leaves_no_pin "in /sys/fs/bpf: $pins"
fi
DEBIAN_FRONTEND=noninteractive timeout 300 apt-get purge -y "$PKG" >"$WORK/apt-purge.log" 2>&1 || fail apt_purge "apt-get purge failed"
left=()
while read -r path; do
  [[ -e $path && ! -d $path ]] && left+=("$path")
  # Directories of the package's own (not shared with other packages).
  [[ -d $path ]] && [[ $path == *kvm_exit_exporter* || $path == *kvm-exit-exporter* ]] && left+=("$path/")
done <"$WORK/dpkg-L.txt"
for path in /etc/kvm_exit_exporter /etc/systemd/system/multi-user.target.wants/$UNIT /var/lib/systemd/deb-systemd-helper-enabled/$UNIT; do
  [[ -e $path ]] && left+=("$path")
done
if dpkg-query -W -f '${db:Status-Status}' "$PKG" 2>/dev/null | grep -qv not-installed; then
  left+=("dpkg status: $(dpkg-query -W -f '${db:Status-Status}' "$PKG")")
fi
if ((${#left[@]} == 0)); then
  pass apt_purge_leaves_nothing
else
  fail apt_purge_leaves_nothing "left after purge: ${left[*]}"
fi
# The crash loop's start limit is an error of systemd's own ("Failed to
# start"): that window's lines are shown, not counted.
if [[ -n $crash_loop_window ]]; then
  read -r loop_start loop_end <<<"$crash_loop_window"
  { journalctl -u "$UNIT" -p err --no-pager -q -o short-monotonic --until "@$((loop_start - 1))"
    journalctl -u "$UNIT" -p err --no-pager -q -o short-monotonic --since "@$((loop_end + 1))"; } >"$SHARE/journal-errors.txt" 2>&1
  info "errors in the crash loop's window: $(journalctl -u "$UNIT" -p err --no-pager -q -o cat --since "@$loop_start" --until "@$loop_end" | tr '\n' '|')"
else
  journalctl -u "$UNIT" -p err --no-pager -q -o short-monotonic >"$SHARE/journal-errors.txt" 2>&1
fi
journalctl -u "$UNIT" --no-pager -q -o short-monotonic >"$SHARE/journal.txt" 2>&1
if [[ -s $SHARE/journal-errors.txt ]]; then
  fail journal_no_errors "$(wc -l <"$SHARE/journal-errors.txt") lines at priority err or worse"
  show cat "$SHARE/journal-errors.txt"
else
  pass journal_no_errors
fi

# ---- 9. End ---------------------------------------------------------------------------
timeout 30 virsh destroy "$LV_NAME" >/dev/null 2>&1
for p in "$qa_pid" "$qb_pid"; do [[ -z $p ]] || kill -KILL "$p" 2>/dev/null; done
echo "E2E DONE"
