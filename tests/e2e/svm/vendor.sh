# shellcheck shell=dash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC2034 # read by lib/init.sh and the checks
# What the AMD (SVM) suite's guest differs in, as /e2e/vendor.sh: sourced by
# /init (lib/init.sh) and by svm/checks.sh. QEMU (TCG, -cpu qemu64,+svm, two
# CPUs) runs the guest; run_e2e.sh reaches it through a port forward.

ISA=svm   # the isa label
ISA_NUM=2 # the tracepoint's isa value
KVM_VENDOR_MODULE=kvm_amd KVM_VENDOR_KO=kvm-amd.ko VENDOR_SHORT=amd
# SVM exit codes (arch/x86/include/uapi/asm/svm.h)
CODE_CPUID=114 CODE_HLT=120 CODE_IO=123
CODE_MSR=124       # msr 0x7c
CODE_HYPERCALL=129 # vmmcall 0x81
# The exits behind an MMIO access: npf 0x400 and "PF excp" 0x4e (QEMU's SVM
# has no NPT, so KVM shadows the guest's paging and MMIO faults are #PF
# intercepts)
CODE_PAGE="1024 78"

VMM_TIMEOUT_S=120 # one scenario, from start to TEST_VMM DONE
SETTLE_S=1        # >= 2 of the exporter's sample intervals: scrapes after it see every exit
EXIT_TIME_IO=500 EXIT_TIME_CPUID=2000 # check_exit_time_vmm's workload
# Two CPUs: on the classic tracepoint the kernel may skip the program on an
# exit (bpf_prog_active busy on that CPU); check_crosscheck then says so (a
# SKIP) when the exporter counted every run it had.
TRACEPOINT_RUNS_SKIPPED=1
POWEROFF_PAUSE_S=0

# vendor_boot: after the modules, before the checks (lib/init.sh).
vendor_boot() {
  user_network
}
