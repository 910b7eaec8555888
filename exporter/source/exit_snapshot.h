// SPDX-License-Identifier: Apache-2.0
// One consistent read of the BPF maps: the raw material every scrape starts from.
#pragma once

#include <array>
#include <cstdint>
#include <linux/types.h>
#include <map>
#include <tuple>
#include <vector>

#include "kvm_exit.h"

namespace kvmexit {

// (isa, exit reason code): the key of every host-level figure.
struct ReasonKey {
  std::uint32_t isa = 0;
  std::uint32_t code = 0;
  friend auto operator<=>(const ReasonKey&, const ReasonKey&) =
      default;  // NOLINT(modernize-use-nullptr): clang-tidy 14 false positive
};

struct VmExitCount {
  vm_exit_key key{};
  std::uint64_t count = 0;  // summed over CPUs
};

// A drill-down item of one kind: (kind, item) of drilldown_key without the VM.
struct DrilldownItem {
  std::uint32_t kind = 0;  // kvm_drilldown_kind
  std::uint64_t item = 0;
  friend auto operator<=>(const DrilldownItem&, const DrilldownItem&) =
      default;  // NOLINT(modernize-use-nullptr): clang-tidy 14 false positive
};

// A VM's events of one drill-down kind and item: one slot of a `drilldown`
// entry. 24 bytes, not the 40 of a DrilldownItem member: a scrape can hold
// 160,000 of these (1,000 VMs x 32 items x 5 kinds).
class DrilldownCount {
 public:
  DrilldownCount() = default;
  DrilldownCount(std::uint32_t tgid, DrilldownItem what, std::uint64_t count, bool in_other = false)
      : item_(what.item),
        count_(count),
        tgid_(tgid),
        kind_(static_cast<std::uint16_t>(what.kind)),
        in_other_(in_other) {}
  std::uint32_t tgid() const { return tgid_; }
  DrilldownItem what() const { return {kind_, item_}; }
  std::uint64_t count() const { return count_; }
  // Counted in the entry's `other` slots (the VM had more items than slots):
  // what() is then the item reduced to what "other" keeps (OtherItem).
  bool in_other() const { return in_other_; }

 private:
  std::uint64_t item_ = 0;
  std::uint64_t count_ = 0;
  std::uint32_t tgid_ = 0;
  std::uint16_t kind_ = 0;  // kvm_drilldown_kind
  bool in_other_ = false;
};

using ReasonCounts = std::map<ReasonKey, std::uint64_t>;

// Exit handling time of one (isa, reason), summed over CPUs: bucket i counts
// intervals <= 2^i us, the last one the rest (+Inf). Per bucket, not cumulative.
struct ExitTimeHistogram {
  std::array<std::uint64_t, KVM_EXIT_TIME_BUCKETS + 1> buckets{};
  std::uint64_t sum_ns = 0;
  std::uint64_t count = 0;
};

using ReasonHistograms = std::map<ReasonKey, ExitTimeHistogram>;

struct ExitSnapshot {
  std::vector<VmExitCount> vm_counts;  // one per live `vm_exits` entry
  ReasonCounts overflow;               // `host_overflow`: exits of VMs that found vm_exits full
  std::uint64_t lost = 0;              // exits stored nowhere (overflow table full too)
  ReasonCounts retired;                // `retired_counts`: final counts of VMs taken back
  // Exit handling time (collector.exit_handling_time); empty and 0 when it is off.
  bool timing = false;                  // the kvm_entry program is attached
  ReasonHistograms exit_time;           // `exit_time_hist`: every timed exit on the host
  std::vector<VmExitCount> vm_time_ns;  // `exit_time_ns`: ns per vm_exits key (count = ns)
  std::uint64_t timing_lost = 0;        // exits whose interval was not recorded
  std::uint32_t vm_map_capacity = 0;
  std::uint32_t overflow_capacity = 0;
  // Drill-down (collector.drilldown); empty and 0 when no kind is on.
  bool drilldown_on = false;
  // One per used slot of the `drilldown` entries, ascending tgid (BpfExitSource::Read orders them).
  std::vector<DrilldownCount> drilldown;
  std::array<std::uint64_t, KVM_DRILLDOWN_KIND_NR> drilldown_lost{};  // map full, per kind
};

inline ReasonKey ReasonOf(const vm_exit_key& key) { return {key.isa, key.exit_reason}; }

inline std::uint64_t Sum(const ReasonCounts& counts) {
  std::uint64_t total = 0;
  for (const auto& [reason, count] : counts) total += count;
  return total;
}

}  // namespace kvmexit
