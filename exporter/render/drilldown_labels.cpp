// SPDX-License-Identifier: Apache-2.0
#include "render/drilldown_labels.h"

#include <algorithm>
#include <cstring>
#include <linux/psci.h>   // PSCI_* function IDs, named in kvm_uapi_names.inc
#include <linux/types.h>  // kvm_exit.h's __u32, __u64
#include <iterator>

#include "kvm_exit.h"

namespace kvmexit {
namespace {

struct UapiName {
  std::uint32_t code;
  const char* name;
};

// kUapiKvmExitNames (linux/kvm.h), kUapiHypercallNames (linux/kvm_para.h),
// kUapiKvmMsrNames (asm/kvm_para.h), kUapiPsciNames (linux/psci.h): derived
// at build time by cmake/kvm_uapi_names.cmake.
#include "kvm_uapi_names.inc"

// The MSRs a KVM guest commonly exits on, by the names of the kernel's
// arch/x86/include/asm/msr-index.h (Linux 6.1); x2APIC registers (0x800 +
// xAPIC offset / 16) by the names of the Intel SDM, vol. 3A, "x2APIC Register
// Address Space". Sorted by index. KVM's own MSRs come from asm/kvm_para.h.
constexpr UapiName kWellKnownMsrs[] = {
    {0x00000010U, "MSR_IA32_TSC"},
    {0x0000001bU, "MSR_IA32_APICBASE"},
    {0x0000003aU, "MSR_IA32_FEAT_CTL"},
    {0x0000003bU, "MSR_IA32_TSC_ADJUST"},
    {0x00000048U, "MSR_IA32_SPEC_CTRL"},
    {0x00000049U, "MSR_IA32_PRED_CMD"},
    {0x0000008bU, "MSR_IA32_UCODE_REV"},
    {0x000000c1U, "MSR_IA32_PERFCTR0"},
    {0x000000c2U, "MSR_IA32_PERFCTR1"},
    {0x000000ceU, "MSR_PLATFORM_INFO"},
    {0x000000e7U, "MSR_IA32_MPERF"},
    {0x000000e8U, "MSR_IA32_APERF"},
    {0x0000010aU, "MSR_IA32_ARCH_CAPABILITIES"},
    {0x00000140U, "MSR_MISC_FEATURES_ENABLES"},
    {0x00000174U, "MSR_IA32_SYSENTER_CS"},
    {0x00000175U, "MSR_IA32_SYSENTER_ESP"},
    {0x00000176U, "MSR_IA32_SYSENTER_EIP"},
    {0x00000179U, "MSR_IA32_MCG_CAP"},
    {0x0000017aU, "MSR_IA32_MCG_STATUS"},
    {0x00000186U, "MSR_ARCH_PERFMON_EVENTSEL0"},
    {0x00000187U, "MSR_ARCH_PERFMON_EVENTSEL1"},
    {0x000001a0U, "MSR_IA32_MISC_ENABLE"},
    {0x000001d9U, "MSR_IA32_DEBUGCTLMSR"},
    {0x00000277U, "MSR_IA32_CR_PAT"},
    {0x0000038dU, "MSR_CORE_PERF_FIXED_CTR_CTRL"},
    {0x0000038eU, "MSR_CORE_PERF_GLOBAL_STATUS"},
    {0x0000038fU, "MSR_CORE_PERF_GLOBAL_CTRL"},
    {0x00000390U, "MSR_CORE_PERF_GLOBAL_OVF_CTRL"},
    {0x000006e0U, "MSR_IA32_TSC_DEADLINE"},
    {0x00000802U, "IA32_X2APIC_APICID"},
    {0x00000803U, "IA32_X2APIC_VERSION"},
    {0x00000808U, "IA32_X2APIC_TPR"},
    {0x0000080bU, "IA32_X2APIC_EOI"},
    {0x0000080dU, "IA32_X2APIC_LDR"},
    {0x0000080fU, "IA32_X2APIC_SIVR"},
    {0x00000828U, "IA32_X2APIC_ESR"},
    {0x00000830U, "IA32_X2APIC_ICR"},
    {0x00000832U, "IA32_X2APIC_LVT_TIMER"},
    {0x00000835U, "IA32_X2APIC_LVT_LINT0"},
    {0x00000836U, "IA32_X2APIC_LVT_LINT1"},
    {0x00000837U, "IA32_X2APIC_LVT_ERROR"},
    {0x00000838U, "IA32_X2APIC_INIT_COUNT"},
    {0x00000839U, "IA32_X2APIC_CUR_COUNT"},
    {0x0000083eU, "IA32_X2APIC_DIV_CONF"},
    {0x0000083fU, "IA32_X2APIC_SELF_IPI"},
    {0x00000da0U, "MSR_IA32_XSS"},
    {0xc0000080U, "MSR_EFER"},
    {0xc0000081U, "MSR_STAR"},
    {0xc0000082U, "MSR_LSTAR"},
    {0xc0000083U, "MSR_CSTAR"},
    {0xc0000084U, "MSR_SYSCALL_MASK"},
    {0xc0000100U, "MSR_FS_BASE"},
    {0xc0000101U, "MSR_GS_BASE"},
    {0xc0000102U, "MSR_KERNEL_GS_BASE"},
    {0xc0000103U, "MSR_TSC_AUX"},
    {0xc0000104U, "MSR_AMD64_TSC_RATIO"},
    {0xc0010000U, "MSR_K7_EVNTSEL0"},
    {0xc0010004U, "MSR_K7_PERFCTR0"},
    {0xc0010010U, "MSR_AMD64_SYSCFG"},
    {0xc0010015U, "MSR_K7_HWCR"},
    {0xc0010114U, "MSR_VM_CR"},
    {0xc0010117U, "MSR_VM_HSAVE_PA"},
    {0xc001011fU, "MSR_AMD64_VIRT_SPEC_CTRL"},
    {0xc0010140U, "MSR_AMD64_OSVW_ID_LENGTH"},
    {0xc0010141U, "MSR_AMD64_OSVW_STATUS"},
    {0xc0011029U, "MSR_F10H_DECFG"},
};

// The SMCCC calls KVM answers besides PSCI, by the names of the kernel's
// include/linux/arm-smccc.h (Linux 6.1): the architecture calls, TRNG, the
// paravirtual time of the standard hypervisor service and KVM's vendor calls.
// Not in a uapi header. Sorted by function ID.
constexpr UapiName kSmcccNames[] = {
    {0x80000000U, "ARM_SMCCC_VERSION_FUNC_ID"},
    {0x80000001U, "ARM_SMCCC_ARCH_FEATURES_FUNC_ID"},
    {0x80000002U, "ARM_SMCCC_ARCH_SOC_ID"},
    {0x80003fffU, "ARM_SMCCC_ARCH_WORKAROUND_3"},
    {0x80007fffU, "ARM_SMCCC_ARCH_WORKAROUND_2"},
    {0x80008000U, "ARM_SMCCC_ARCH_WORKAROUND_1"},
    {0x84000050U, "ARM_SMCCC_TRNG_VERSION"},
    {0x84000051U, "ARM_SMCCC_TRNG_FEATURES"},
    {0x84000052U, "ARM_SMCCC_TRNG_GET_UUID"},
    {0x84000053U, "ARM_SMCCC_TRNG_RND32"},
    {0x86000000U, "ARM_SMCCC_VENDOR_HYP_KVM_FEATURES_FUNC_ID"},
    {0x86000001U, "ARM_SMCCC_VENDOR_HYP_KVM_PTP_FUNC_ID"},
    {0x8600ff01U, "ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID"},
    {0xc4000053U, "ARM_SMCCC_TRNG_RND64"},
    {0xc5000020U, "ARM_SMCCC_HV_PV_TIME_FEATURES"},
    {0xc5000021U, "ARM_SMCCC_HV_PV_TIME_ST"},
};

#define SYSREG(op0, op1, crn, crm, op2) \
  static_cast<std::uint32_t>(KVM_DRILLDOWN_SYSREG(op0, op1, crn, crm, op2))
// The system registers and instructions KVM commonly traps and emulates
// (kvm:kvm_sys_access), by the names of the Arm ARM (DDI 0487) and the
// kernel's sys_regs.c: ID and cache ID registers (HCR_EL2.TID3, TID2), the
// registers trapped while the guest's MMU is being set up (TVM), set/way
// cache maintenance (TSW), the GIC's SGI registers (IPIs), the physical timer,
// the PMU and the debug registers. Sorted by encoding.
constexpr UapiName kWellKnownSysregs[] = {
    {SYSREG(1, 0, 7, 6, 2), "DC_ISW"},
    {SYSREG(1, 0, 7, 10, 2), "DC_CSW"},
    {SYSREG(1, 0, 7, 14, 2), "DC_CISW"},
    {SYSREG(2, 0, 0, 2, 2), "MDSCR_EL1"},
    {SYSREG(2, 0, 1, 0, 4), "OSLAR_EL1"},
    {SYSREG(2, 0, 1, 1, 4), "OSLSR_EL1"},
    {SYSREG(2, 0, 1, 3, 4), "OSDLR_EL1"},
    {SYSREG(2, 0, 1, 4, 4), "DBGPRCR_EL1"},
    {SYSREG(2, 0, 7, 8, 6), "DBGCLAIMSET_EL1"},
    {SYSREG(2, 0, 7, 9, 6), "DBGCLAIMCLR_EL1"},
    {SYSREG(2, 0, 7, 14, 6), "DBGAUTHSTATUS_EL1"},
    {SYSREG(2, 3, 0, 1, 0), "MDCCSR_EL0"},
    {SYSREG(3, 0, 0, 0, 0), "MIDR_EL1"},
    {SYSREG(3, 0, 0, 0, 5), "MPIDR_EL1"},
    {SYSREG(3, 0, 0, 0, 6), "REVIDR_EL1"},
    {SYSREG(3, 0, 0, 1, 0), "ID_PFR0_EL1"},
    {SYSREG(3, 0, 0, 1, 1), "ID_PFR1_EL1"},
    {SYSREG(3, 0, 0, 1, 2), "ID_DFR0_EL1"},
    {SYSREG(3, 0, 0, 1, 3), "ID_AFR0_EL1"},
    {SYSREG(3, 0, 0, 1, 4), "ID_MMFR0_EL1"},
    {SYSREG(3, 0, 0, 1, 5), "ID_MMFR1_EL1"},
    {SYSREG(3, 0, 0, 1, 6), "ID_MMFR2_EL1"},
    {SYSREG(3, 0, 0, 1, 7), "ID_MMFR3_EL1"},
    {SYSREG(3, 0, 0, 2, 0), "ID_ISAR0_EL1"},
    {SYSREG(3, 0, 0, 2, 1), "ID_ISAR1_EL1"},
    {SYSREG(3, 0, 0, 2, 2), "ID_ISAR2_EL1"},
    {SYSREG(3, 0, 0, 2, 3), "ID_ISAR3_EL1"},
    {SYSREG(3, 0, 0, 2, 4), "ID_ISAR4_EL1"},
    {SYSREG(3, 0, 0, 2, 5), "ID_ISAR5_EL1"},
    {SYSREG(3, 0, 0, 2, 6), "ID_MMFR4_EL1"},
    {SYSREG(3, 0, 0, 2, 7), "ID_ISAR6_EL1"},
    {SYSREG(3, 0, 0, 3, 0), "MVFR0_EL1"},
    {SYSREG(3, 0, 0, 3, 1), "MVFR1_EL1"},
    {SYSREG(3, 0, 0, 3, 2), "MVFR2_EL1"},
    {SYSREG(3, 0, 0, 3, 4), "ID_PFR2_EL1"},
    {SYSREG(3, 0, 0, 3, 5), "ID_DFR1_EL1"},
    {SYSREG(3, 0, 0, 3, 6), "ID_MMFR5_EL1"},
    {SYSREG(3, 0, 0, 4, 0), "ID_AA64PFR0_EL1"},
    {SYSREG(3, 0, 0, 4, 1), "ID_AA64PFR1_EL1"},
    {SYSREG(3, 0, 0, 4, 4), "ID_AA64ZFR0_EL1"},
    {SYSREG(3, 0, 0, 4, 5), "ID_AA64SMFR0_EL1"},
    {SYSREG(3, 0, 0, 5, 0), "ID_AA64DFR0_EL1"},
    {SYSREG(3, 0, 0, 5, 1), "ID_AA64DFR1_EL1"},
    {SYSREG(3, 0, 0, 5, 4), "ID_AA64AFR0_EL1"},
    {SYSREG(3, 0, 0, 5, 5), "ID_AA64AFR1_EL1"},
    {SYSREG(3, 0, 0, 6, 0), "ID_AA64ISAR0_EL1"},
    {SYSREG(3, 0, 0, 6, 1), "ID_AA64ISAR1_EL1"},
    {SYSREG(3, 0, 0, 6, 2), "ID_AA64ISAR2_EL1"},
    {SYSREG(3, 0, 0, 7, 0), "ID_AA64MMFR0_EL1"},
    {SYSREG(3, 0, 0, 7, 1), "ID_AA64MMFR1_EL1"},
    {SYSREG(3, 0, 0, 7, 2), "ID_AA64MMFR2_EL1"},
    {SYSREG(3, 0, 1, 0, 0), "SCTLR_EL1"},
    {SYSREG(3, 0, 1, 0, 1), "ACTLR_EL1"},
    {SYSREG(3, 0, 2, 0, 0), "TTBR0_EL1"},
    {SYSREG(3, 0, 2, 0, 1), "TTBR1_EL1"},
    {SYSREG(3, 0, 2, 0, 2), "TCR_EL1"},
    {SYSREG(3, 0, 5, 1, 0), "AFSR0_EL1"},
    {SYSREG(3, 0, 5, 1, 1), "AFSR1_EL1"},
    {SYSREG(3, 0, 5, 2, 0), "ESR_EL1"},
    {SYSREG(3, 0, 6, 0, 0), "FAR_EL1"},
    {SYSREG(3, 0, 9, 14, 1), "PMINTENSET_EL1"},
    {SYSREG(3, 0, 9, 14, 2), "PMINTENCLR_EL1"},
    {SYSREG(3, 0, 10, 2, 0), "MAIR_EL1"},
    {SYSREG(3, 0, 10, 3, 0), "AMAIR_EL1"},
    {SYSREG(3, 0, 12, 11, 5), "ICC_SGI1R_EL1"},
    {SYSREG(3, 0, 12, 11, 6), "ICC_ASGI1R_EL1"},
    {SYSREG(3, 0, 12, 11, 7), "ICC_SGI0R_EL1"},
    {SYSREG(3, 0, 12, 12, 5), "ICC_SRE_EL1"},
    {SYSREG(3, 0, 13, 0, 1), "CONTEXTIDR_EL1"},
    {SYSREG(3, 1, 0, 0, 0), "CCSIDR_EL1"},
    {SYSREG(3, 1, 0, 0, 1), "CLIDR_EL1"},
    {SYSREG(3, 2, 0, 0, 0), "CSSELR_EL1"},
    {SYSREG(3, 3, 0, 0, 1), "CTR_EL0"},
    {SYSREG(3, 3, 9, 12, 0), "PMCR_EL0"},
    {SYSREG(3, 3, 9, 12, 1), "PMCNTENSET_EL0"},
    {SYSREG(3, 3, 9, 12, 2), "PMCNTENCLR_EL0"},
    {SYSREG(3, 3, 9, 12, 3), "PMOVSCLR_EL0"},
    {SYSREG(3, 3, 9, 12, 4), "PMSWINC_EL0"},
    {SYSREG(3, 3, 9, 12, 5), "PMSELR_EL0"},
    {SYSREG(3, 3, 9, 12, 6), "PMCEID0_EL0"},
    {SYSREG(3, 3, 9, 12, 7), "PMCEID1_EL0"},
    {SYSREG(3, 3, 9, 13, 0), "PMCCNTR_EL0"},
    {SYSREG(3, 3, 9, 13, 1), "PMXEVTYPER_EL0"},
    {SYSREG(3, 3, 9, 13, 2), "PMXEVCNTR_EL0"},
    {SYSREG(3, 3, 9, 14, 0), "PMUSERENR_EL0"},
    {SYSREG(3, 3, 9, 14, 3), "PMOVSSET_EL0"},
    {SYSREG(3, 3, 14, 0, 1), "CNTPCT_EL0"},
    {SYSREG(3, 3, 14, 2, 0), "CNTP_TVAL_EL0"},
    {SYSREG(3, 3, 14, 2, 1), "CNTP_CTL_EL0"},
    {SYSREG(3, 3, 14, 2, 2), "CNTP_CVAL_EL0"},
    {SYSREG(3, 3, 14, 15, 7), "PMCCFILTR_EL0"},
};
#undef SYSREG

constexpr bool SortedByCode(const UapiName* begin, const UapiName* end) {
  for (const UapiName* it = begin; it + 1 < end; ++it) {
    if (it->code >= (it + 1)->code) return false;
  }
  return true;
}
static_assert(SortedByCode(std::begin(kWellKnownMsrs), std::end(kWellKnownMsrs)),
              "kWellKnownMsrs must be sorted by index for the binary search");
static_assert(SortedByCode(std::begin(kSmcccNames), std::end(kSmcccNames)),
              "kSmcccNames must be sorted by function ID for the binary search");
static_assert(SortedByCode(std::begin(kWellKnownSysregs), std::end(kWellKnownSysregs)),
              "kWellKnownSysregs must be sorted by encoding for the binary search");

// The name of `code` in a table sorted by code, nullptr when it has none.
template <std::size_t N>
const char* FindSorted(const UapiName (&table)[N], std::uint32_t code) {
  const auto* at = std::lower_bound(
      std::begin(table), std::end(table), code,
      [](const UapiName& entry, std::uint32_t wanted) { return entry.code < wanted; });
  return at != std::end(table) && at->code == code ? at->name : nullptr;
}

// The name of `code` in a table (the uapi ones are short: a linear scan).
template <std::size_t N>
const char* Find(const UapiName (&table)[N], std::uint64_t code) {
  for (const UapiName& entry : table) {
    if (entry.code == code) return entry.name;
  }
  return nullptr;
}

constexpr char kHex[] = "0123456789abcdef";

// "0x" and the low `digits` hex digits of `value`, zero-padded.
std::string Hex(std::uint64_t value, int digits) {
  std::string text(static_cast<std::size_t>(digits) + 2, '0');
  text[1] = 'x';
  for (int i = digits + 1; i >= 2; --i, value >>= 4)
    text[static_cast<std::size_t>(i)] = kHex[value & 0xfU];
  return text;
}

}  // namespace

std::string IoPortLabel(std::uint64_t item) {
  // By hand, not snprintf: snprintf was 29% of a scrape's instructions at
  // 1,000 VMs x 32 ports (callgrind, docs/benchmarks.md "Port IO drill-down cost").
  return Hex(item & 0xffffU, 4);
}

const char* IoDirectionLabel(std::uint64_t item) {
  return (item & KVM_DRILLDOWN_IO_WRITE) != 0 ? "write" : "read";
}

std::string MsrIndexLabel(std::uint64_t item) { return Hex(item & 0xffffffffU, 8); }

std::string_view MsrName(std::uint64_t item) {
  const auto index = static_cast<std::uint32_t>(item & 0xffffffffU);
  if (const char* well_known = FindSorted(kWellKnownMsrs, index)) return well_known;
  const char* kvm = Find(kUapiKvmMsrNames, index);
  return kvm != nullptr ? kvm : "";
}

const char* MsrDirectionLabel(std::uint64_t item) {
  return (item & KVM_DRILLDOWN_MSR_WRITE) != 0 ? "write" : "read";
}

const char* MsrFaultLabel(std::uint64_t item) {
  return (item & KVM_DRILLDOWN_MSR_FAULT) != 0 ? "true" : "false";
}

std::string MmioPageLabel(std::uint64_t item) {
  std::uint64_t address = (item & ~KVM_DRILLDOWN_MMIO_WRITE) << 12;
  int digits = 1;
  while (digits < 16 && (address >> (4 * digits)) != 0) ++digits;
  return Hex(address, digits);
}

const char* MmioDirectionLabel(std::uint64_t item) {
  return (item & KVM_DRILLDOWN_MMIO_WRITE) != 0 ? "write" : "read";
}

std::string HypercallNumberLabel(std::uint64_t item) { return std::to_string(item); }

std::string_view HypercallName(std::uint64_t item) {
  const char* name = Find(kUapiHypercallNames, item);
  return name != nullptr ? name : "";
}

std::string UserspaceExitLabel(std::uint64_t item) {
  const auto reason = static_cast<std::uint32_t>(item & 0xffffffffU);
  const char* name = Find(kUapiKvmExitNames, reason);
  return name != nullptr ? name : std::to_string(reason);
}

std::string UserspaceErrorLabel(std::uint64_t item) {
  const auto error = static_cast<int>(item >> KVM_DRILLDOWN_USERSPACE_ERRNO_SHIFT);
  if (error == 0) return "none";
  const char* name = strerrorname_np(error);
  return name != nullptr ? name : std::to_string(error);
}

std::string HvcFunctionLabel(std::uint64_t item) { return Hex(item & 0xffffffffU, 8); }

std::string_view HvcName(std::uint64_t item) {
  if (item > 0xffffffffU) return "";
  const auto function = static_cast<std::uint32_t>(item);
  if (const char* psci = Find(kUapiPsciNames, function)) return psci;
  const char* smccc = FindSorted(kSmcccNames, function);
  return smccc != nullptr ? smccc : "";
}

std::string SysregLabel(std::uint64_t item) {
  // S<op0>_<op1>_C<n>_C<m>_<op2>, the name assemblers accept for any register.
  const auto field = [item](int shift, std::uint64_t mask) {
    return std::to_string((item >> shift) & mask);
  };
  return "S" + field(14, 3) + "_" + field(11, 7) + "_C" + field(7, 15) + "_C" + field(3, 15) + "_" +
         field(0, 7);
}

std::string_view SysregName(std::uint64_t item) {
  const char* name = FindSorted(kWellKnownSysregs, static_cast<std::uint32_t>(item & 0xffffU));
  return name != nullptr ? name : "";
}

const char* SysregDirectionLabel(std::uint64_t item) {
  return (item & KVM_DRILLDOWN_SYSREG_WRITE) != 0 ? "write" : "read";
}

DrilldownLabelValues IoLabelValues(std::uint64_t item) {
  return {IoPortLabel(item), IoDirectionLabel(item)};
}

DrilldownLabelValues MsrLabelValues(std::uint64_t item) {
  return {MsrIndexLabel(item), std::string(MsrName(item)), MsrDirectionLabel(item),
          MsrFaultLabel(item)};
}

DrilldownLabelValues MmioLabelValues(std::uint64_t item) {
  return {MmioPageLabel(item), MmioDirectionLabel(item)};
}

DrilldownLabelValues HypercallLabelValues(std::uint64_t item) {
  return {HypercallNumberLabel(item), std::string(HypercallName(item))};
}

DrilldownLabelValues UserspaceLabelValues(std::uint64_t item) {
  return {UserspaceExitLabel(item), UserspaceErrorLabel(item)};
}

DrilldownLabelValues HvcLabelValues(std::uint64_t item) {
  return {HvcFunctionLabel(item), std::string(HvcName(item))};
}

DrilldownLabelValues SysregLabelValues(std::uint64_t item) {
  return {SysregLabel(item), std::string(SysregName(item)), SysregDirectionLabel(item)};
}

}  // namespace kvmexit
