// SPDX-License-Identifier: Apache-2.0
// Counts by key in ascending key order (SortedCounts), the shape every
// per-scrape figure takes between the snapshot and the renderer, and the
// drill-down counts folded for a VM. Its own header so that drilldown.h and
// vm_tracker.h both use it without including each other.
#pragma once

#include <algorithm>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "source/exit_snapshot.h"

namespace kvmexit {

// A vCPU's exits of one reason; ordered by vCPU, then reason (the series order).
struct VcpuReason {
  std::uint32_t vcpu = 0;
  ReasonKey reason;
  friend auto operator<=>(const VcpuReason&, const VcpuReason&) =
      default;  // NOLINT(modernize-use-nullptr): clang-tidy 14 false positive
};

// Counts by key in ascending key order, in one flat vector. Built once per
// scrape and walked in the order series are written, without the per-key node
// allocations of a std::map (a scrape at 1,000 VMs has ~20,000 of them).
template <typename Key>
class SortedCounts {
 public:
  struct Item {
    Key key;
    std::uint64_t count = 0;
    friend bool operator==(const Item&, const Item&) = default;
  };
  using const_iterator = typename std::vector<Item>::const_iterator;

  // Adds `count` under `key`, which must not sort before the last key appended.
  void Append(const Key& key, std::uint64_t count) {
    if (!items_.empty() && items_.back().key == key) {
      items_.back().count += count;
    } else {
      items_.push_back({key, count});
    }
  }
  // Adds every count of `other`: one merge of two sorted lists.
  void Add(const SortedCounts& other) {
    std::vector<Item> merged;
    merged.reserve(items_.size() + other.items_.size());
    auto mine = items_.begin();
    auto theirs = other.items_.begin();
    while (mine != items_.end() || theirs != other.items_.end()) {
      if (theirs == other.items_.end() || (mine != items_.end() && mine->key < theirs->key)) {
        merged.push_back(*mine++);
      } else if (mine == items_.end() || theirs->key < mine->key) {
        merged.push_back(*theirs++);
      } else {
        merged.push_back({mine->key, mine->count + theirs->count});
        ++mine;
        ++theirs;
      }
    }
    items_ = std::move(merged);
  }
  // The count under `key`; throws std::out_of_range when there is none, like std::map::at.
  std::uint64_t at(const Key& key) const {
    const auto it = std::lower_bound(items_.begin(), items_.end(), key,
                                     [](const Item& item, const Key& k) { return item.key < k; });
    if (it == items_.end() || it->key != key) throw std::out_of_range("SortedCounts::at");
    return it->count;
  }
  std::uint64_t Total() const {
    std::uint64_t total = 0;
    for (const Item& item : items_) total += item.count;
    return total;
  }
  void reserve(std::size_t n) { items_.reserve(n); }
  std::size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  const_iterator begin() const { return items_.begin(); }
  const_iterator end() const { return items_.end(); }
  friend bool operator==(const SortedCounts&, const SortedCounts&) = default;

 private:
  std::vector<Item> items_;
};

using SortedReasonCounts = SortedCounts<ReasonKey>;
using SortedVcpuCounts = SortedCounts<VcpuReason>;
using SortedDrilldownCounts = SortedCounts<DrilldownItem>;

// A VM's drill-down counts (drilldown.h): the items with a series of their
// own, and the exact sum of every other item's ("other"), keyed by the item
// reduced to the labels "other" keeps (io: the direction bit).
struct FoldedDrilldown {
  SortedDrilldownCounts own;
  SortedDrilldownCounts other;
};

}  // namespace kvmexit
