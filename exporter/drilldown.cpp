#include "drilldown.h"

#include <algorithm>

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
  if (item.kind == KVM_DRILLDOWN_IO) return {item.kind, item.item & KVM_DRILLDOWN_IO_WRITE};
  return {item.kind, 0};
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

FoldedDrilldown FoldDrilldown(const SortedDrilldownCounts& counts,
                              const std::vector<DrilldownItem>& own) {
  FoldedDrilldown folded;
  folded.own.reserve(std::min(counts.size(), own.size()));
  std::vector<SortedDrilldownCounts::Item> other;
  auto mine = own.begin();
  for (const auto& [item, count] : counts) {
    while (mine != own.end() && *mine < item) ++mine;
    if (mine != own.end() && *mine == item) {
      folded.own.Append(item, count);
    } else {
      AddOther(other, item, count);
    }
  }
  folded.other = Sorted(std::move(other));
  return folded;
}

void FoldAllDrilldown(const SortedDrilldownCounts& counts, FoldedDrilldown& into) {
  std::vector<SortedDrilldownCounts::Item> other(into.other.begin(), into.other.end());
  for (const auto& [item, count] : counts) AddOther(other, item, count);
  into.other = Sorted(std::move(other));
}

std::string IoPortLabel(std::uint64_t item) {
  // By hand: snprintf was 29% of a scrape's instructions at 1,000 VMs x 32
  // ports (callgrind, docs/benchmarks.md "Port IO drill-down cost").
  static constexpr char kHex[] = "0123456789abcdef";
  const auto port = static_cast<unsigned>(item & 0xffffU);
  return std::string{'0',
                     'x',
                     kHex[(port >> 12) & 0xfU],
                     kHex[(port >> 8) & 0xfU],
                     kHex[(port >> 4) & 0xfU],
                     kHex[port & 0xfU]};
}

const char* IoDirectionLabel(std::uint64_t item) {
  return (item & KVM_DRILLDOWN_IO_WRITE) != 0 ? "write" : "read";
}

}  // namespace kvmexit
