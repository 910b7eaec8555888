// SPDX-License-Identifier: Apache-2.0
#include "render/drilldown_labels.h"

#include <algorithm>
#include <cstring>
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
// kUapiKvmMsrNames (asm/kvm_para.h): derived at build time by
// cmake/kvm_uapi_names.cmake.
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

constexpr bool SortedByCode(const UapiName* begin, const UapiName* end) {
  for (const UapiName* it = begin; it + 1 < end; ++it) {
    if (it->code >= (it + 1)->code) return false;
  }
  return true;
}
static_assert(SortedByCode(std::begin(kWellKnownMsrs), std::end(kWellKnownMsrs)),
              "kWellKnownMsrs must be sorted by index for the binary search");

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
  const auto* well_known =
      std::lower_bound(std::begin(kWellKnownMsrs), std::end(kWellKnownMsrs), index,
                       [](const UapiName& entry, std::uint32_t code) { return entry.code < code; });
  if (well_known != std::end(kWellKnownMsrs) && well_known->code == index) return well_known->name;
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

}  // namespace kvmexit
