// SPDX-License-Identifier: Apache-2.0
// What BpfExitSource loads and how it sizes the maps (from the configuration).
// A header of its own so that the loader reads the options without
// including BpfExitSource.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "source/drilldown_kind.h"
#include "source/kernel_hook.h"

namespace kvmexit {

struct BpfSourceOptions {
  // Every drill-down kind whose program is loaded: drilldown and drilldown_follow.
  std::vector<DrilldownKind> DrilldownLoaded() const {
    std::vector<DrilldownKind> kinds = drilldown;
    kinds.insert(kinds.end(), drilldown_follow.begin(), drilldown_follow.end());
    return kinds;
  }

  std::string tracefs_root = "/sys/kernel/tracing";
  std::uint32_t vm_map_capacity = 16384;
  bool per_vcpu = false;
  bool exit_handling_time = true;  // load and attach the kvm_entry program that times exits
  KernelHook hook = KernelHook::kAuto;
  // Drill-down kinds whose programs are loaded and attached (none: none is).
  std::vector<DrilldownKind> drilldown{};
  // Drill-down kinds whose programs are loaded but attached only on demand
  // (SetDrilldownAttached), when they follow storms; none of `drilldown`.
  std::vector<DrilldownKind> drilldown_follow{};
  std::string sys_root = "/sys";  // where to look for the kvm_amd / kvm_intel module and its BTF
  // bpffs directory where the maps and links are pinned, so that counting
  // outlives the process (kernel.state_path); "" pins nothing.
  std::string state_path{};
};

}  // namespace kvmexit
