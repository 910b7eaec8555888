// SPDX-License-Identifier: Apache-2.0
// The drill-down kinds (config collector.drilldown): which of KVM's own
// tracepoints are counted per VM and item. A header of its own, like
// kernel_hook.h, so the configuration can name a kind without depending on
// the BPF source or the metrics.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvmexit {

// One per kvm_drilldown_kind of bpf/kvm_exit.h, same order and values.
enum class DrilldownKind {
  kIo,         // kvm:kvm_pio: port and direction
  kMsr,        // kvm:kvm_msr: MSR index, direction, fault
  kMmio,       // kvm:kvm_mmio: guest-physical page and direction
  kHypercall,  // kvm:kvm_hypercall: hypercall number
  kUserspace,  // kvm:kvm_userspace_exit: KVM_EXIT_* reason and errno
};

// Bound of collector.drilldown_max_keys: the BPF program keeps this many items
// per VM and kind apart (KVM_DRILLDOWN_ITEM_SLOTS), the rest only as "other".
inline constexpr std::uint32_t kMaxDrilldownKeys = 64;

inline constexpr std::array<DrilldownKind, 5> kAllDrilldownKinds = {
    DrilldownKind::kIo, DrilldownKind::kMsr, DrilldownKind::kMmio, DrilldownKind::kHypercall,
    DrilldownKind::kUserspace};

// The config name and the kind="..." label of each kind.
inline constexpr std::string_view DrilldownKindName(DrilldownKind kind) {
  switch (kind) {
    case DrilldownKind::kIo:
      return "io";
    case DrilldownKind::kMsr:
      return "msr";
    case DrilldownKind::kMmio:
      return "mmio";
    case DrilldownKind::kHypercall:
      return "hypercall";
    case DrilldownKind::kUserspace:
      return "userspace";
  }
  return "unknown";
}

// For messages: the names config accepts, "io, msr, ...".
inline std::string DrilldownKindList() {
  std::string list;
  for (DrilldownKind kind : kAllDrilldownKinds) {
    if (!list.empty()) list += ", ";
    list += DrilldownKindName(kind);
  }
  return list;
}

inline std::optional<DrilldownKind> ParseDrilldownKind(std::string_view name) {
  for (DrilldownKind kind : kAllDrilldownKinds) {
    if (DrilldownKindName(kind) == name) return kind;
  }
  return std::nullopt;
}

}  // namespace kvmexit
