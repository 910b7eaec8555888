// SPDX-License-Identifier: Apache-2.0
// The label values of each drill-down kind's items, and the rows they follow.
#include "render/drilldown_labels.h"

#include <gtest/gtest.h>

#include <linux/kvm.h>

#include <cerrno>
#include <sstream>

#include "source/drilldown_kind.h"
#include "source/exit_snapshot.h"

namespace kvmexit {
namespace {

DrilldownItem Out(std::uint16_t port) { return {KVM_DRILLDOWN_IO, port | KVM_DRILLDOWN_IO_WRITE}; }
DrilldownItem In(std::uint16_t port) { return {KVM_DRILLDOWN_IO, port}; }

std::size_t WordCount(std::string_view text) {
  std::istringstream words{std::string(text)};
  std::size_t count = 0;
  for (std::string word; words >> word;) ++count;
  return count;
}

TEST(DrilldownLabels, PortIsFourLowercaseHexDigits) {
  EXPECT_EQ(IoPortLabel(0x3f8), "0x03f8");
  EXPECT_EQ(IoPortLabel(0), "0x0000");
  EXPECT_EQ(IoPortLabel(0xffff), "0xffff");
  EXPECT_EQ(IoPortLabel(Out(0xCF8).item), "0x0cf8");  // the direction bit is not part of it
  EXPECT_STREQ(IoDirectionLabel(Out(0x60).item), "write");
  EXPECT_STREQ(IoDirectionLabel(In(0x60).item), "read");
}

TEST(DrilldownLabels, MsrIndexNameDirectionAndFault) {
  EXPECT_EQ(MsrIndexLabel(0x1b), "0x0000001b");
  EXPECT_EQ(MsrIndexLabel(0xc0000080U | KVM_DRILLDOWN_MSR_WRITE | KVM_DRILLDOWN_MSR_FAULT),
            "0xc0000080");
  EXPECT_EQ(MsrName(0x1b), "MSR_IA32_APICBASE");
  EXPECT_EQ(MsrName(0xc0000080U | KVM_DRILLDOWN_MSR_WRITE), "MSR_EFER");
  EXPECT_EQ(MsrName(0x830), "IA32_X2APIC_ICR");
  EXPECT_EQ(MsrName(0x4b564d01), "MSR_KVM_SYSTEM_TIME_NEW");  // derived from asm/kvm_para.h
  EXPECT_EQ(MsrName(0x4b564dff), "");
  EXPECT_STREQ(MsrDirectionLabel(0x8b | KVM_DRILLDOWN_MSR_WRITE), "write");
  EXPECT_STREQ(MsrDirectionLabel(0x8b), "read");
  EXPECT_STREQ(MsrFaultLabel(0x8b | KVM_DRILLDOWN_MSR_FAULT), "true");
  EXPECT_STREQ(MsrFaultLabel(0x8b | KVM_DRILLDOWN_MSR_WRITE), "false");
}

TEST(DrilldownLabels, MmioPageIsTheGuestPhysicalAddressOfThePage) {
  EXPECT_EQ(MmioPageLabel(0xfee00), "0xfee00000");
  EXPECT_EQ(MmioPageLabel(0x20 | KVM_DRILLDOWN_MMIO_WRITE), "0x20000");
  EXPECT_EQ(MmioPageLabel(0), "0x0");
  EXPECT_EQ(MmioPageLabel((std::uint64_t{1} << 40) - 1), "0xffffffffff000");
  EXPECT_STREQ(MmioDirectionLabel(0x20 | KVM_DRILLDOWN_MMIO_WRITE), "write");
  EXPECT_STREQ(MmioDirectionLabel(0x20), "read");
}

TEST(DrilldownLabels, HypercallAndUserspaceNamesComeFromTheUapiHeaders) {
  EXPECT_EQ(HypercallNumberLabel(5), "5");
  EXPECT_EQ(HypercallName(5), "KVM_HC_KICK_CPU");
  EXPECT_EQ(HypercallName(12), "KVM_HC_MAP_GPA_RANGE");
  EXPECT_EQ(HypercallName(0), "");
  EXPECT_EQ(HypercallName(std::uint64_t{1} << 32 | 5), "");  // not truncated into a known one
  EXPECT_EQ(UserspaceExitLabel(KVM_EXIT_IO), "KVM_EXIT_IO");
  EXPECT_EQ(UserspaceExitLabel(KVM_EXIT_MMIO), "KVM_EXIT_MMIO");
  EXPECT_EQ(UserspaceExitLabel(KVM_EXIT_HLT), "KVM_EXIT_HLT");
  EXPECT_EQ(UserspaceExitLabel(KVM_EXIT_X86_WRMSR), "KVM_EXIT_X86_WRMSR");
  EXPECT_EQ(UserspaceExitLabel(5000), "5000");
  EXPECT_EQ(UserspaceErrorLabel(KVM_EXIT_IO), "none");
  EXPECT_EQ(UserspaceErrorLabel(KVM_EXIT_INTR | std::uint64_t{EINTR} << 32), "EINTR");
  EXPECT_EQ(UserspaceErrorLabel(KVM_EXIT_IO | std::uint64_t{EFAULT} << 32), "EFAULT");
  EXPECT_EQ(UserspaceErrorLabel(std::uint64_t{4000} << 32), "4000");
}

// arm64: SMCCC function IDs named from linux/psci.h and the SMCCC calls KVM
// answers, the rest unnamed; the ID as 8 hex digits, whatever the upper half of x0.
TEST(DrilldownLabels, HvcFunctionIsNamedByPsciAndSmccc) {
  EXPECT_EQ(HvcFunctionLabel(0x84000008), "0x84000008");
  EXPECT_EQ(HvcName(0x84000008), "PSCI_0_2_FN_SYSTEM_OFF");
  EXPECT_EQ(HvcName(0x84000002), "PSCI_0_2_FN_CPU_OFF");
  EXPECT_EQ(HvcName(0xc4000004), "PSCI_0_2_FN64_AFFINITY_INFO");
  EXPECT_EQ(HvcName(0x8400000a), "PSCI_1_0_FN_PSCI_FEATURES");
  EXPECT_EQ(HvcName(0x80000000), "ARM_SMCCC_VERSION_FUNC_ID");
  EXPECT_EQ(HvcName(0x80008000), "ARM_SMCCC_ARCH_WORKAROUND_1");
  EXPECT_EQ(HvcName(0xc5000021), "ARM_SMCCC_HV_PV_TIME_ST");
  EXPECT_EQ(HvcName(0x82000000), "");  // a SiP call: the platform's, not named
  EXPECT_EQ(HvcName(std::uint64_t{1} << 32 | 0x84000008), "");  // not truncated into a known one
  EXPECT_EQ(HvcLabelValues(0x84000000),
            (DrilldownLabelValues{"0x84000000", "PSCI_0_2_FN_PSCI_VERSION"}));
}

// arm64: a system register in the generic S<op0>_<op1>_C<n>_C<m>_<op2>
// syntax, named when well known, with the access's direction.
TEST(DrilldownLabels, SysregIsItsEncodingNameAndDirection) {
  const std::uint64_t pfr0 = KVM_DRILLDOWN_SYSREG(3, 0, 0, 4, 0);
  EXPECT_EQ(SysregLabel(pfr0), "S3_0_C0_C4_0");
  EXPECT_EQ(SysregName(pfr0), "ID_AA64PFR0_EL1");
  EXPECT_STREQ(SysregDirectionLabel(pfr0), "read");
  const std::uint64_t sgi = KVM_DRILLDOWN_SYSREG(3, 0, 12, 11, 5) | KVM_DRILLDOWN_SYSREG_WRITE;
  EXPECT_EQ(SysregLabelValues(sgi),
            (DrilldownLabelValues{"S3_0_C12_C11_5", "ICC_SGI1R_EL1", "write"}));
  EXPECT_EQ(SysregLabelValues(KVM_DRILLDOWN_SYSREG(1, 0, 7, 6, 2) | KVM_DRILLDOWN_SYSREG_WRITE),
            (DrilldownLabelValues{"S1_0_C7_C6_2", "DC_ISW", "write"}));
  // Every field at its widest, and a register without a name.
  EXPECT_EQ(SysregLabel(KVM_DRILLDOWN_SYSREG(3, 7, 15, 15, 7)), "S3_7_C15_C15_7");
  EXPECT_EQ(SysregName(KVM_DRILLDOWN_SYSREG(3, 7, 15, 15, 7)), "");
  EXPECT_EQ(SysregLabel(0), "S0_0_C0_C0_0");
  // "other" keeps the direction only.
  EXPECT_STREQ(SysregDirectionLabel(KVM_DRILLDOWN_SYSREG_WRITE), "write");
}

// Every row names as many labels as its label function gives values, and
// keeps in "other" only labels it names (never the first, which reads "other").
TEST(DrilldownLabels, EachRowsLabelFunctionGivesOneValuePerLabel) {
  DrilldownLabelValues (*const values_of[])(std::uint64_t) = {
#define DRILLDOWN_KIND(ENUM, Name, ...) &Name##LabelValues,
#include "drilldown_kinds.def"
#undef DRILLDOWN_KIND
  };
  ASSERT_EQ(std::size(values_of), kDrilldownKinds.size());
  for (const DrilldownKindInfo& row : kDrilldownKinds) {
    SCOPED_TRACE(row.name);
    const auto values = values_of[static_cast<std::size_t>(row.kind)](0x1234);
    EXPECT_EQ(values.size(), WordCount(row.labels));
    std::istringstream names{std::string(row.labels)};
    std::string first;
    names >> first;
    std::istringstream kept{std::string(row.other_keeps)};
    for (std::string label; kept >> label;) {
      EXPECT_NE(label, first);
      EXPECT_NE(std::string(row.labels).find(label), std::string::npos) << label;
    }
  }
}

}  // namespace
}  // namespace kvmexit
