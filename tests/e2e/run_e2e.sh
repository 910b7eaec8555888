#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the AMD (SVM) nested end-to-end suite: QEMU (TCG, AMD SVM) boots
# Debian's kernel with an initramfs whose /init (lib/init.sh) loads kvm_amd
# and runs svm/checks.sh against real kvm:kvm_exit events, then reads the
# results from the serial console log. The boot is svm/boot.sh's, the rest
# lib/host.sh's.
#
# usage: run_e2e.sh EXPORTER_BINARY|'' VMM_BINARY|'' OUT_DIR
#   An empty VMM_BINARY builds tests/e2e/test_vmm.c with cc; an empty or
#   missing EXPORTER_BINARY runs only the kernel checks (exporter checks SKIP).
# Environment: E2E_TIMEOUT (seconds, default 900), E2E_HOST_PORT (host port
# forwarded to the exporter, default: a free one), E2E_QEMU_SMP (default 2),
# E2E_PROM_SECONDS (default 15: how long Prometheus scrapes before its
# queries), E2E_KERNEL (build_image.sh: the kernel line, e.g. 6.12),
# E2E_POSSIBLE_CPUS (possible_cpus=N for the guest kernel: a host N wide).
# Output: every check, then `N passed, N failed[, N skipped]` alone on a line.
# Exit status: 0 only when every check passed and the guest printed E2E DONE
# before QEMU exited on its own.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/host.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/host.sh"
e2e_run svm run_e2e "$@"
