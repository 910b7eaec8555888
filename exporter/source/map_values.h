// SPDX-License-Identifier: Apache-2.0
// The programs' map values (bpf/kvm_exit.h) turned into ExitSnapshot's
// types: exit time histograms summed over the CPUs, drill-down entries
// spread into one count per used slot and ordered by tgid.
#pragma once

#include <linux/types.h>  // kvm_exit.h's __u32, __u64

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvm_exit.h"
#include "source/exit_snapshot.h"

namespace kvmexit {

// Sums the histogram of each CPU into one.
ExitTimeHistogram SumHistograms(const exit_time_hist* per_cpu, int cpus);

// Appends the used slots of one `drilldown` entry (a VM's items of one kind).
void AppendDrilldownSlots(const drilldown_key& key, const drilldown_items& items,
                          std::vector<DrilldownCount>& into);

// One `drilldown` entry's slots among a snapshot's drill-down counts: [first, last).
struct DrilldownBlock {
  std::uint32_t tgid;
  std::size_t first;
  std::size_t last;
};

// The map hands entries over in hash order; ExitSnapshot keeps drill-down
// counts by tgid. Moves whole entries: thousands of them, not every count.
void OrderByTgid(std::vector<DrilldownBlock>& blocks, std::vector<DrilldownCount>& counts);

}  // namespace kvmexit
