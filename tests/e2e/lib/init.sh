#!/bin/busybox sh
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# PID 1 of both suites' guests (initramfs /init): mounts the kernel file
# systems, loads the vendor's kvm modules (/lib/modules/e2e/order, from
# svm/modules or vmx/modules), runs the vendor's vendor_boot (/e2e/vendor.sh:
# the NIC under QEMU, a report of kvm_intel's parameters under Bochs), runs
# /e2e/checks.sh and powers off. Results go to the serial console as
# `E2E PASS|FAIL|SKIP <name>` lines and a final `E2E DONE`; the emulator's
# exit status on poweroff says nothing (QEMU 0, Bochs 1), so the host reads
# only these markers.
set -eu
export PATH=/bin

/bin/busybox --install -s /bin
# shellcheck disable=SC3040 # busybox sh has pipefail
set -o pipefail

# User networking, for every vendor_boot: QEMU's `-nic user` (svm, arm64)
# and Bochs's slirp (vmx) give the guest 10.0.2.0/24; it is 10.0.2.15, and
# the host reaches the exporter through hostfwd on its own loopback only.
user_network() {
  if ip link show eth0 >/dev/null 2>&1; then
    ip addr add 10.0.2.15/24 dev eth0
    ip link set eth0 up
  else
    echo "e2e: no eth0: the host cannot scrape the exporter"
  fi
}

# shellcheck source=../svm/vendor.sh
. /e2e/vendor.sh

# Never return: PID 1 exiting panics the kernel. Whatever happens, power off
# (after the vendor's pause: Bochs drops the last serial lines otherwise).
finish() {
  sync
  sleep "$POWEROFF_PAUSE_S"
  poweroff -f
  sleep 3600
}
trap finish EXIT

mount_filesystems() {
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  mkdir -p /dev/pts /dev/shm
  mount -t tmpfs tmpfs /tmp
  mount -t tracefs tracefs /sys/kernel/tracing
  mount -t debugfs debugfs /sys/kernel/debug
  mount -t bpf bpf /sys/fs/bpf
}

# e2e.nokvm=1 on the kernel command line: a boot without KVM on purpose (the
# arm64 suite's second boot, without virtualization=on): no /dev/kvm is
# expected, /e2e/checks.sh runs its no-KVM checks only.
no_kvm_boot() {
  case " $(cat /proc/cmdline) " in *" e2e.nokvm=1 "*) return 0 ;; esac
  return 1
}

load_modules() {
  local m
  while read -r m; do
    insmod "/lib/modules/e2e/$m" || { echo "E2E FAIL insmod_$m: insmod /lib/modules/e2e/$m failed"; return 1; }
  done </lib/modules/e2e/order
  [ -c /dev/kvm ] || no_kvm_boot || { echo "E2E FAIL dev_kvm: /dev/kvm missing after loading $KVM_VENDOR_MODULE"; return 1; }
}

main() {
  local status=0
  mount_filesystems
  dmesg -n 3 # keep kernel chatter from splitting marker lines
  # BPF run counts (kvm_exit_exporter_bpf_prog_run_count_total) tell a
  # skipped BPF run from an exporter bug when a cross-check fails.
  echo 1 >/proc/sys/kernel/bpf_stats_enabled
  echo "e2e: guest kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { print $2 " kB" }' /proc/meminfo), up $(awk '{ print $1 }' /proc/uptime) s"
  if load_modules; then
    ip link set lo up
    vendor_boot
    /bin/sh /e2e/checks.sh || status=$?
    [ "$status" = 0 ] || echo "E2E FAIL checks_script: /e2e/checks.sh exited with status $status"
  fi
  echo "E2E DONE"
}

main
