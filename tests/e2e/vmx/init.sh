#!/bin/busybox sh
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# PID 1 of the Intel (VMX) test guest under Bochs: mounts the kernel file
# systems, loads kvm_intel, runs /e2e/vmx/checks.sh and powers off. Results go
# to the serial console as `E2E PASS|FAIL|SKIP <name>` lines and a final
# `E2E DONE`; Bochs exits with status 1 on poweroff whatever happened, so the
# host reads only these markers.
set -eu
export PATH=/bin

/bin/busybox --install -s /bin
# shellcheck disable=SC3040 # busybox sh has pipefail
set -o pipefail

# Never return: PID 1 exiting panics the kernel. Whatever happens, power off,
# after a pause: Bochs drops the last serial lines on an immediate poweroff.
finish() {
  sync
  sleep 2
  poweroff -f
  sleep 3600
}
trap finish EXIT

mount_filesystems() {
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  mount -t tmpfs tmpfs /tmp
  mount -t tracefs tracefs /sys/kernel/tracing
  mount -t bpf bpf /sys/fs/bpf
}

load_modules() {
  local m
  while read -r m; do
    insmod "/lib/modules/e2e/$m" || { echo "E2E FAIL insmod_$m: insmod /lib/modules/e2e/$m failed"; return 1; }
  done </lib/modules/e2e/order
  [ -c /dev/kvm ] || { echo "E2E FAIL dev_kvm: /dev/kvm missing after loading kvm_intel"; return 1; }
  echo "e2e: kvm_intel ept=$(cat /sys/module/kvm_intel/parameters/ept) unrestricted_guest=$(cat /sys/module/kvm_intel/parameters/unrestricted_guest)"
}

main() {
  local status=0
  mount_filesystems
  dmesg -n 3 # keep kernel chatter from splitting marker lines
  echo 1 >/proc/sys/kernel/bpf_stats_enabled
  echo "e2e: guest kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { print $2 " kB" }' /proc/meminfo), up $(awk '{ print $1 }' /proc/uptime) s"
  if load_modules; then
    ip link set lo up
    /bin/sh /e2e/vmx/checks.sh || status=$?
    [ "$status" = 0 ] || echo "E2E FAIL checks_script: /e2e/vmx/checks.sh exited with status $status"
  fi
  echo "E2E DONE"
}

main
