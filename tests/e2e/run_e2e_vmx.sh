#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the Intel (VMX) end-to-end suite: Bochs, which emulates VMX with EPT,
# boots Debian's kernel from an ISOLINUX ISO; its /init (lib/init.sh) loads
# kvm_intel and runs vmx/checks.sh against real VMX exits, then powers off.
# The results are read from the serial log. The boot is vmx/boot.sh's, the
# rest lib/host.sh's.
#
# usage: run_e2e_vmx.sh EXPORTER_BINARY|'' VMM_BINARY|'' OUT_DIR
#   An empty VMM_BINARY builds tests/e2e/test_vmm.c with cc; an empty or
#   missing EXPORTER_BINARY runs only the kernel checks (exporter checks SKIP).
# Environment: E2E_VMX_TIMEOUT (seconds, default 1800), E2E_VMX_CPU (Bochs CPU
# model, default corei7_haswell_4770). For bench/exit_cost's VMX runner (all
# empty by default, and then unused): E2E_VMX_CHECKS (a script installed as
# /e2e/checks.sh instead of vmx/checks.sh), E2E_VMX_EXTRA_INITRD (an archive
# appended to the initramfs), E2E_VMX_APPEND (words added to the kernel
# command line), E2E_POSSIBLE_CPUS (possible_cpus=N for the guest kernel: a
# host N wide).
# Output: every check, then `N passed, N failed[, N skipped]` alone on a line.
# Exit status: 0 only when every check passed and the guest printed E2E DONE.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/host.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/host.sh"
e2e_run vmx run_e2e_vmx "$@"
