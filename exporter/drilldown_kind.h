// The drill-down kinds (config collector.drilldown): which of KVM's own
// tracepoints are counted per VM and item. A header of its own, like
// kernel_hook.h, so the configuration can name a kind without depending on
// the BPF source or the metrics.
#pragma once

#include <optional>
#include <string_view>

namespace kvmexit {

// One per kvm_drilldown_kind of bpf/kvm_exit.h, same order.
enum class DrilldownKind {
  kIo,  // kvm:kvm_pio: port and direction
};

// The kinds config accepts today, for messages. Issue 14 plans msr, mmio,
// hypercall and userspace; they are refused until they are built.
inline constexpr std::string_view kDrilldownKindNames = "io";

inline std::optional<DrilldownKind> ParseDrilldownKind(std::string_view name) {
  if (name == "io") return DrilldownKind::kIo;
  return std::nullopt;
}

inline std::string_view DrilldownKindName(DrilldownKind kind) {
  switch (kind) {
    case DrilldownKind::kIo:
      return "io";
  }
  return "unknown";
}

}  // namespace kvmexit
