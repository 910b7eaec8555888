// SPDX-License-Identifier: Apache-2.0
#include "source/map_values.h"

#include <algorithm>

namespace kvmexit {

ExitTimeHistogram SumHistograms(const exit_time_hist* per_cpu, int cpus) {
  ExitTimeHistogram total;
  for (int cpu = 0; cpu < cpus; ++cpu) {
    const exit_time_hist& hist = per_cpu[cpu];
    for (std::size_t i = 0; i < total.buckets.size(); ++i) total.buckets[i] += hist.buckets[i];
    total.sum_ns += hist.sum_ns;
    total.count += hist.count;
  }
  return total;
}

void AppendDrilldownSlots(const drilldown_key& key, const drilldown_items& items,
                          std::vector<DrilldownCount>& into) {
  const auto append = [&](const auto& slots, bool in_other) {
    for (const drilldown_slot& slot : slots) {
      // A slot is claimed before its first count is added: skip it until then.
      if (slot.slot == 0 || slot.count == 0) continue;
      into.emplace_back(key.tgid, DrilldownItem{key.kind, slot.slot - 1}, slot.count, in_other);
    }
  };
  append(items.items, false);
  append(items.other, true);
}

void OrderByTgid(std::vector<DrilldownBlock>& blocks, std::vector<DrilldownCount>& counts) {
  const auto by_tgid = [](const DrilldownBlock& a, const DrilldownBlock& b) {
    return a.tgid < b.tgid;
  };
  if (std::is_sorted(blocks.begin(), blocks.end(), by_tgid)) return;
  std::stable_sort(blocks.begin(), blocks.end(), by_tgid);
  std::vector<DrilldownCount> ordered;
  ordered.reserve(counts.size());
  for (const DrilldownBlock& block : blocks) {
    ordered.insert(ordered.end(), counts.begin() + static_cast<std::ptrdiff_t>(block.first),
                   counts.begin() + static_cast<std::ptrdiff_t>(block.last));
  }
  counts.swap(ordered);
}

}  // namespace kvmexit
