// SPDX-License-Identifier: Apache-2.0
// Drill-down series (collector.drilldown): which items of a VM's exits (ports,
// MSRs, ...) get a series of their own, and how the rest fold into "other", exactly.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "model/sorted_counts.h"
#include "source/exit_snapshot.h"

namespace kvmexit {

// The rule that keeps series from flapping: an item keeps its series once it
// has one, for as long as the VM lives. Items without one are admitted while
// the VM has fewer than `max_keys` of their kind, largest count first (ties:
// lowest item). `own` is sorted and stays sorted.
void AdmitDrilldownItems(const SortedDrilldownCounts& counts, std::uint32_t max_keys,
                         std::vector<DrilldownItem>& own);

// A VM's drill-down counts split by `own` (sorted): see FoldedDrilldown. The
// counts BPF already folded (items beyond the VM's slots) go to "other" too.
FoldedDrilldown FoldDrilldown(SortedDrilldownCounts counts,
                              const SortedDrilldownCounts& folded_in_bpf,
                              const std::vector<DrilldownItem>& own);

// The part of an item that its kind's "other" series keeps as labels: the
// direction (io, msr, mmio), the fault (msr), the errno (userspace).
DrilldownItem OtherItem(const DrilldownItem& item);

// Everything into "other": the VMs beyond vms.max_vms.
void FoldAllDrilldown(const SortedDrilldownCounts& counts, FoldedDrilldown& into);

}  // namespace kvmexit
