# shellcheck shell=dash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC2034 # read by lib/init.sh and the checks
# What the arm64 suite's guest differs in, as /e2e/vendor.sh: sourced by
# /init (lib/init.sh) and by arm64/checks.sh (after lib/common.sh, whose
# hist trigger hooks it sets). qemu-system-aarch64 (TCG, -M
# virt,virtualization=on -cpu max, two CPUs) runs Debian's arm64 kernel, whose
# KVM is built in; run_e2e_arm64.sh reaches the guest through a port forward.

ISA=arm64 # the isa label
# The first column of the hist trigger's and the exporter's snapshots
# (lib/common.sh's "isa code count" lines): arm64's kvm_exit has no isa
# field, so one constant.
ISA_NUM=0
KVM_VENDOR_MODULE=kvm # built in (CONFIG_KVM=y): arm64/modules loads only the NIC
# Exit codes, as the exporter labels them: the exception class (ESR_EL2.EC)
# of a trap (kvm_exit ret 2), 256 + ret for the others (arch/arm64/include/
# asm/esr.h, kvm_asm.h)
EC_WFX=1        # 0x01 WFx
EC_HVC64=22     # 0x16 HVC64: arm64_vmm's --hvc and PSCI calls
EC_SYS64=24     # 0x18 SYS64: arm64_vmm's --sysreg (ID_AA64PFR0_EL1, HCR_EL2.TID3)
EC_IABT_LOW=32  # 0x20 IABT_LOW: the first fetch from a VM's RAM page (varies)
EC_DABT_LOW=36  # 0x24 DABT_LOW: arm64_vmm's --mmio stores
CODE_IRQ=256    # ret 0 (ARM_EXCEPTION_IRQ): host interrupts, vary
ARM64_TRAP_RET=2 # ret of a trap (ARM_EXCEPTION_TRAP): esr_ec is recorded only for it

# The hist trigger (lib/common.sh's hist_enable, hist_snapshot): keyed by
# ret and esr_ec, read as "ISA_NUM code hitcount" lines with the exporter's
# codes, so hist_delta, snapshot_delta and check_crosscheck work unchanged.
HIST_KEYS=ret,esr_ec
hist_parse() {
  awk -v isa="$ISA_NUM" -v trap="$ARM64_TRAP_RET" '/^\{ *ret:/ {
         line = $0; gsub(/[{}:,]/, " ", line); split(line, f, " ")
         # f: ret N esr_ec N hitcount N
         code = (f[2] == trap) ? f[4] : 256 + f[2]
         c[code] += f[6]
       }
       END { for (k in c) print isa, k, c[k] }'
}

VMM_TIMEOUT_S=120 # one scenario, from start to TEST_VMM DONE
# exporter_start's tries (0.2 s apart, but a scrape and its parsing take about
# 0.5 s more under TCG: about 30 s in all)
EXPORTER_START_TRIES=40
SETTLE_S=1        # >= 2 of the exporter's sample intervals: scrapes after it see every exit
# Two CPUs: on the classic tracepoint the kernel may skip the program on an
# exit (bpf_prog_active busy on that CPU); check_crosscheck then says so (a
# SKIP) when the exporter counted every run it had.
TRACEPOINT_RUNS_SKIPPED=1
POWEROFF_PAUSE_S=0

# vendor_boot: after the modules, before the checks (lib/init.sh): QEMU user
# networking, e1000 on the virt machine's PCIe.
vendor_boot() {
  user_network
}
