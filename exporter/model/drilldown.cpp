// SPDX-License-Identifier: Apache-2.0
#include "model/drilldown.h"

#include <algorithm>

#include "source/drilldown_kind.h"

namespace kvmexit {

void AdmitDrilldownItems(const SortedDrilldownCounts& counts, std::uint32_t max_keys,
                         std::vector<DrilldownItem>& own) {
  std::array<std::uint32_t, KVM_DRILLDOWN_KIND_NR> have{};
  for (const DrilldownItem& item : own) {
    if (item.kind < have.size()) ++have[item.kind];
  }
  std::vector<SortedDrilldownCounts::Item> candidates;
  for (const auto& entry : counts) {
    if (entry.key.kind >= have.size() || have[entry.key.kind] >= max_keys) continue;
    if (std::binary_search(own.begin(), own.end(), entry.key)) continue;
    candidates.push_back(entry);
  }
  if (candidates.empty()) return;
  // Largest count first; equal counts by item, so the choice is reproducible.
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const auto& a, const auto& b) { return a.count > b.count; });
  for (const auto& candidate : candidates) {
    std::uint32_t& kind_have = have[candidate.key.kind];
    if (kind_have >= max_keys) continue;
    ++kind_have;
    own.insert(std::lower_bound(own.begin(), own.end(), candidate.key), candidate.key);
  }
}

DrilldownItem OtherItem(const DrilldownItem& item) {
  // The BPF program folds by the same rule when a VM runs out of slots.
  return {item.kind, kvm_drilldown_other_item(item.kind, item.item)};
}

namespace {

// Adds counts under OtherItem keys; those are few (two for io), so a sort at the end is cheap.
void AddOther(std::vector<SortedDrilldownCounts::Item>& other, const DrilldownItem& item,
              std::uint64_t count) {
  const DrilldownItem key = OtherItem(item);
  for (auto& entry : other) {
    if (entry.key == key) {
      entry.count += count;
      return;
    }
  }
  other.push_back({key, count});
}

SortedDrilldownCounts Sorted(std::vector<SortedDrilldownCounts::Item> items) {
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  SortedDrilldownCounts sorted;
  for (const auto& [key, count] : items) sorted.Append(key, count);
  return sorted;
}

}  // namespace

FoldedDrilldown FoldDrilldown(SortedDrilldownCounts counts,
                              const SortedDrilldownCounts& folded_in_bpf,
                              const std::vector<DrilldownItem>& own) {
  FoldedDrilldown folded;
  // Every item has its series (the common case): nothing to fold, nothing to copy.
  bool all_own = folded_in_bpf.empty() && counts.size() <= own.size();
  auto mine = own.begin();
  for (auto entry = counts.begin(); all_own && entry != counts.end(); ++entry) {
    while (mine != own.end() && *mine < entry->key) ++mine;
    all_own = mine != own.end() && *mine == entry->key;
  }
  if (all_own) {
    folded.own = std::move(counts);
    return folded;
  }
  folded.own.reserve(std::min(counts.size(), own.size()));
  std::vector<SortedDrilldownCounts::Item> other;
  mine = own.begin();
  for (const auto& [item, count] : counts) {
    while (mine != own.end() && *mine < item) ++mine;
    if (mine != own.end() && *mine == item) {
      folded.own.Append(item, count);
    } else {
      AddOther(other, item, count);
    }
  }
  for (const auto& [item, count] : folded_in_bpf) AddOther(other, item, count);
  folded.other = Sorted(std::move(other));
  return folded;
}

void FoldAllDrilldown(const SortedDrilldownCounts& counts, FoldedDrilldown& into) {
  std::vector<SortedDrilldownCounts::Item> other(into.other.begin(), into.other.end());
  for (const auto& [item, count] : counts) AddOther(other, item, count);
  into.other = Sorted(std::move(other));
}

}  // namespace kvmexit
