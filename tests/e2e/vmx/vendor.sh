# shellcheck shell=dash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC2034 # read by lib/init.sh and the checks
# What the Intel (VMX) suite's guest differs in, as /e2e/vendor.sh: sourced by
# /init (lib/init.sh) and by vmx/checks.sh. Bochs (VMX with EPT, one CPU,
# about 75 MIPS) runs the guest, so its workloads are smaller and its time
# limits longer than the QEMU suite's.

ISA=vmx   # the isa label
ISA_NUM=1 # the tracepoint's isa value
KVM_VENDOR_MODULE=kvm_intel KVM_VENDOR_KO=kvm-intel.ko VENDOR_SHORT=intel
# VMX basic exit reasons (arch/x86/include/uapi/asm/vmx.h)
CODE_CPUID=10 CODE_HLT=12 CODE_IO=30
CODE_MSR="31 32"  # msr_read, msr_write
CODE_HYPERCALL=18 # vmcall
CODE_PAGE="48 49" # ept_violation, ept_misconfig: the exits behind an MMIO access

VMM_TIMEOUT_S=300 # one scenario, from start to TEST_VMM DONE, at Bochs speed
SETTLE_S=2        # the exporter's reads after the VMMs went idle see every exit
EXIT_TIME_IO=200 EXIT_TIME_CPUID=200 # check_exit_time_vmm's workload
# One emulated CPU and one BPF program: the kernel never skips the program
# here, so any gap against the hist trigger fails.
TRACEPOINT_RUNS_SKIPPED=0
POWEROFF_PAUSE_S=2 # Bochs drops the last serial lines on an immediate poweroff

# vendor_boot: after the modules, before the checks
vendor_boot() {
  user_network
  echo "e2e: kvm_intel ept=$(cat /sys/module/kvm_intel/parameters/ept) unrestricted_guest=$(cat /sys/module/kvm_intel/parameters/unrestricted_guest)"
}
