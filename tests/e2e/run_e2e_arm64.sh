#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the arm64 nested end-to-end suite: qemu-system-aarch64 (TCG, -M
# virt,virtualization=on -cpu max) boots Debian's arm64 kernel, whose KVM is
# built in, with an initramfs whose /init (lib/init.sh) runs arm64/checks.sh
# against real kvm:kvm_exit events made by arm64_vmm.c; then a second, short
# boot without virtualization=on (no /dev/kvm) runs the no-KVM checks. The
# boots are arm64/boot.sh's, the rest lib/host.sh's.
#
# usage: run_e2e_arm64.sh EXPORTER_BINARY|'' VMM_BINARY|'' OUT_DIR
#   EXPORTER_BINARY  an aarch64 kvm_exit_exporter (scripts/build_arm64.sh's);
#                    empty or missing: only the kernel checks (exporter
#                    checks SKIP)
#   VMM_BINARY       a static aarch64 build of arm64_vmm.c; empty: built by
#                    build_image.sh with aarch64-linux-gnu-gcc
# Environment: E2E_TIMEOUT (seconds of the KVM boot, default 600),
# E2E_NOKVM_TIMEOUT (the boot without KVM, default 180), E2E_HOST_PORT (host
# port forwarded to the exporter, default: a free one), E2E_QEMU_SMP
# (default 2).
# Output: every check, then `N passed, N failed[, N skipped]` alone on a line.
# Exit status: 0 only when every check passed and both boots printed E2E DONE
# before QEMU exited on its own.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/host.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/host.sh"
e2e_run arm64 run_e2e_arm64 "$@"
