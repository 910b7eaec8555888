// SPDX-License-Identifier: Apache-2.0
// The label values of the drill-down items (bpf/kvm_exit.h encodes them per
// kind): ports, MSR indices and names, MMIO pages, hypercall numbers and
// names, KVM_EXIT_* reasons and errno names; on arm64 SMCCC function IDs and
// system registers. Each kind's <Name>LabelValues
// gives an item's values in the order of its row's labels
// (bpf/drilldown_kinds.def); the family writer pairs them with the names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvmexit {

// io: the port as 4 lowercase hex digits ("0x03f8"), and "write" (OUT) or "read" (IN).
std::string IoPortLabel(std::uint64_t item);
const char* IoDirectionLabel(std::uint64_t item);

// msr: the index as 8 lowercase hex digits ("0xc0000080"); the kernel's name
// of a well-known MSR ("MSR_EFER"), "" for others; "write"/"read"; whether
// KVM injected a fault ("true"/"false").
std::string MsrIndexLabel(std::uint64_t item);
std::string_view MsrName(std::uint64_t item);
const char* MsrDirectionLabel(std::uint64_t item);
const char* MsrFaultLabel(std::uint64_t item);

// mmio: the guest-physical address of the 4 KiB page in lowercase hex
// ("0xfee00000"), and "write"/"read".
std::string MmioPageLabel(std::uint64_t item);
const char* MmioDirectionLabel(std::uint64_t item);

// hypercall: the number in decimal, and its KVM_HC_* name ("" when unknown).
std::string HypercallNumberLabel(std::uint64_t item);
std::string_view HypercallName(std::uint64_t item);

// userspace: the KVM_EXIT_* name of the reason (its number when unknown),
// and "none" when KVM_RUN returned 0, else the errno's name ("EINTR").
std::string UserspaceExitLabel(std::uint64_t item);
std::string UserspaceErrorLabel(std::uint64_t item);

// hvc (arm64): the SMCCC function ID as 8 lowercase hex digits
// ("0x84000008"), and its name: linux/psci.h's ("PSCI_0_2_FN_SYSTEM_OFF"),
// the SMCCC architecture and KVM vendor calls', "" for others.
std::string HvcFunctionLabel(std::uint64_t item);
std::string_view HvcName(std::uint64_t item);

// sysreg (arm64): the register in the architecture's generic syntax
// ("S3_0_C0_C4_0"), its name when well known ("ID_AA64PFR0_EL1"), "" for
// others, and "write" (MSR) or "read" (MRS).
std::string SysregLabel(std::uint64_t item);
std::string_view SysregName(std::uint64_t item);
const char* SysregDirectionLabel(std::uint64_t item);

// An item's label values, in the order of its kind's row's `labels`.
using DrilldownLabelValues = std::vector<std::string>;

// One per row of drilldown_kinds.def: IoLabelValues, MsrLabelValues, ...
#define DRILLDOWN_KIND(ENUM, Name, ...) DrilldownLabelValues Name##LabelValues(std::uint64_t item);
#include "drilldown_kinds.def"
#undef DRILLDOWN_KIND

}  // namespace kvmexit
