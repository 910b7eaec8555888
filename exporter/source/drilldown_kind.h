// SPDX-License-Identifier: Apache-2.0
// The drill-down kinds (config collector.drilldown): which of KVM's own
// tracepoints are counted per VM and item. Every kind is one row of
// bpf/drilldown_kinds.def; this header expands the rows into the exporter's
// table, so the configuration, the loader and the renderer each read the
// column they need and no per-kind list is written twice.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <linux/types.h>  // kvm_exit.h's __u32, __u64

#include "kvm_exit.h"

namespace kvmexit {

// One per kvm_drilldown_kind of bpf/kvm_exit.h, same order and values.
enum class DrilldownKind : std::uint32_t {
#define DRILLDOWN_KIND(ENUM, Name, ...) k##Name = KVM_DRILLDOWN_##ENUM,
#include "drilldown_kinds.def"
#undef DRILLDOWN_KIND
};

// A kind's row, as user space reads it.
struct DrilldownKindInfo {
  DrilldownKind kind;
  std::string_view name;         // config name and the kind="..." label
  std::string_view tracepoint;   // kvm:<tracepoint>
  std::string_view family;       // the per-VM metric family
  std::string_view labels;       // the item's label names, space-separated; the first reads "other"
  std::string_view other_keeps;  // the labels an "other" series keeps, space-separated
  std::string_view help;         // the first sentence of the family's help
};

inline constexpr std::array<DrilldownKindInfo, KVM_DRILLDOWN_KIND_NR> kDrilldownKinds = {{
#define DRILLDOWN_KIND(ENUM, Name, config_name, tracepoint, other_keeps_bits, family, labels, \
                       other_keeps, help)                                                     \
  {DrilldownKind::k##Name, config_name, #tracepoint, family, labels, other_keeps, help},
#include "drilldown_kinds.def"
#undef DRILLDOWN_KIND
}};

inline constexpr std::array<DrilldownKind, KVM_DRILLDOWN_KIND_NR> kAllDrilldownKinds = {{
#define DRILLDOWN_KIND(ENUM, Name, ...) DrilldownKind::k##Name,
#include "drilldown_kinds.def"
#undef DRILLDOWN_KIND
}};

// Row i is kind i: DrilldownKindRow indexes by the kind's value.
constexpr bool RowsInKindOrder() {
  for (std::size_t i = 0; i < kDrilldownKinds.size(); ++i) {
    if (static_cast<std::size_t>(kDrilldownKinds[i].kind) != i) return false;
  }
  return true;
}
static_assert(RowsInKindOrder(), "drilldown_kinds.def: rows out of the enum's order");

// Bound of collector.drilldown_max_keys: the BPF program keeps this many items
// per VM and kind apart (KVM_DRILLDOWN_ITEM_SLOTS), the rest only as "other".
inline constexpr std::uint32_t kMaxDrilldownKeys = KVM_DRILLDOWN_ITEM_SLOTS;

inline constexpr const DrilldownKindInfo& DrilldownKindRow(DrilldownKind kind) {
  return kDrilldownKinds[static_cast<std::size_t>(kind)];
}

// The config name and the kind="..." label of each kind.
inline constexpr std::string_view DrilldownKindName(DrilldownKind kind) {
  return DrilldownKindRow(kind).name;
}

// For messages: the names config accepts, "io, msr, ...".
inline std::string DrilldownKindList() {
  std::string list;
  for (const DrilldownKindInfo& row : kDrilldownKinds) {
    if (!list.empty()) list += ", ";
    list += row.name;
  }
  return list;
}

inline std::optional<DrilldownKind> ParseDrilldownKind(std::string_view name) {
  for (const DrilldownKindInfo& row : kDrilldownKinds) {
    if (row.name == name) return row.kind;
  }
  return std::nullopt;
}

}  // namespace kvmexit
