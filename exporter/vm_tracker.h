// SPDX-License-Identifier: Apache-2.0
// Turns the tgids found in the BPF map into VMs: who they are, when they
// started, when they ended, their boot-window exits, and which ones get their
// own series (the rest are folded into vm="other").
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "exit_snapshot.h"
#include "unique_fd.h"
#include "vm_identity.h"

namespace kvmexit {

// What the tracker needs to know about a VMM process, resolved once per process.
struct VmProcess {
  VmIdentity identity;              // who the VM is: a new VM label goes there, not here
  std::uint64_t start_ticks = 0;    // /proc/PID/stat starttime: tells a reused pid apart
  double start_time_seconds = 0.0;  // unix time
};

// Returns nullopt when the process no longer exists.
using ProcessResolver = std::function<std::optional<VmProcess>(std::uint32_t pid)>;
// Reads the current start ticks of `pid`, nullopt when it does not exist.
using StartTicksReader = std::function<std::optional<std::uint64_t>(std::uint32_t pid)>;

struct VmTrackerOptions {
  std::uint32_t max_vms = 1000;
  std::chrono::milliseconds grace_period{300'000};
  std::chrono::milliseconds boot_window{120'000};
  // Per VM and drill-down kind, the items with their own series (collector.drilldown_max_keys).
  std::uint32_t drilldown_max_keys = 32;
  // Called once per VM when its boot window closes, with the window's total
  // exits: the boot-exits histogram is kept by whoever listens.
  std::function<void(std::uint64_t boot_exits)> on_boot_window_closed;
};

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

// One snapshot's counts summed per VM, computed once per scrape: Observe needs
// them for boot windows and View turns them into series.
struct SnapshotByVm {
  struct Vm {
    std::uint32_t tgid = 0;
    SortedReasonCounts counts;   // summed over vCPUs
    SortedVcpuCounts per_vcpu;   // entries counted per vCPU; empty when per-vCPU counting is off
    SortedReasonCounts time_ns;  // exit handling time per reason, summed over vCPUs
    SortedDrilldownCounts drilldown;        // collector.drilldown events by (kind, item)
    SortedDrilldownCounts drilldown_other;  // counted in BPF's "other" slots, by OtherItem
  };

  explicit SnapshotByVm(const ExitSnapshot& snapshot);

  std::vector<Vm> vms;            // ascending tgid
  ReasonCounts totals;            // every live entry plus the overflow table
  ReasonHistograms exit_time;     // host-level handling time (never deleted: already exact)
  std::uint64_t timing_lost = 0;  // exits whose handling time was not recorded
  std::array<std::uint64_t, KVM_DRILLDOWN_KIND_NR> drilldown_lost{};
};

// Exit counts of one VM (or of the "other" bucket), ready for labelling.
struct VmSeries {
  std::string vm;
  std::string pid;                     // "" for the folded bucket
  const VmProcess* process = nullptr;  // null for the folded bucket
  SortedReasonCounts counts;
  SortedVcpuCounts per_vcpu;   // empty when per-vCPU counting is off
  SortedReasonCounts time_ns;  // ns handling exits per reason; empty when timing is off
  FoldedDrilldown drilldown;   // empty when no drill-down kind is on
};

struct BootWindowFigures {
  std::string vm;
  std::string pid;
  SortedReasonCounts counts;
  bool closed = false;
};

// Everything per-VM a scrape needs, plus the exact host totals.
struct VmView {
  ReasonCounts host_totals;       // live entries + overflow + retired VMs: exact and monotonic
  ReasonHistograms exit_time;     // handling time by reason, all VMs (timing on)
  std::uint64_t timing_lost = 0;  // exits whose handling time was not recorded
  std::array<std::uint64_t, KVM_DRILLDOWN_KIND_NR> drilldown_lost{};  // drilldown map full
  std::vector<VmSeries> vms;
  std::vector<BootWindowFigures> boots;
  std::size_t tracked_vms = 0;
  std::size_t folded_vms = 0;
};

class VmTracker {
 public:
  using WallClock = std::chrono::system_clock;

  VmTracker(VmTrackerOptions options, ProcessResolver resolve, StartTicksReader start_ticks);

  // Learns new VMs from the snapshot, notices ended ones and updates boot windows.
  // `attach_time` is when counting began: only VMs started after it have a complete boot window.
  void Observe(const SnapshotByVm& snapshot, WallClock::time_point now,
               WallClock::time_point attach_time);
  void Observe(const ExitSnapshot& snapshot, WallClock::time_point now,
               WallClock::time_point attach_time) {
    Observe(SnapshotByVm(snapshot), now, attach_time);
  }

  // The map keys of VMs that ended more than grace_period ago (and of VMs whose
  // pid was reused); the caller deletes them and hands back what they held.
  // Those of them with drill-down counts go to `drilldown_tgids` when it is given.
  std::vector<vm_exit_key> ExpiredKeys(const ExitSnapshot& snapshot, WallClock::time_point now,
                                       std::vector<std::uint32_t>* drilldown_tgids = nullptr);
  void Retire(const std::vector<VmExitCount>& removed);

  // The series of this scrape. Takes the grouped snapshot by value: its
  // per-VM counts move into the view instead of being copied.
  VmView View(SnapshotByVm snapshot) const;
  VmView View(const ExitSnapshot& snapshot) const { return View(SnapshotByVm(snapshot)); }

  // Exact host totals (live entries + overflow + retired VMs) without building series.
  ReasonCounts HostTotals(const SnapshotByVm& snapshot) const;

  // A reloaded configuration's limits, from the next Observe/View on: a boot
  // window still open closes at the new length, an ended VM is retired at the
  // new grace period. The boot-window listener of the constructor is kept.
  void SetLimits(std::uint32_t max_vms, std::chrono::milliseconds grace_period,
                 std::chrono::milliseconds boot_window);

  // A reloaded configuration's naming: `resolve` names new VMs, and every VM
  // still running as the process first seen is named again with it, so a
  // corrected naming rule shows on the VMs it was written for. Ended VMs keep
  // their name (their process is gone); start times and boot windows are kept.
  void Reidentify(ProcessResolver resolve);

 private:
  struct TrackedVm {
    VmProcess process;
    std::uint64_t order = 0;  // first-seen order: the first max_vms get their own series
    UniqueFd pidfd;           // readable once the process exits
    std::optional<WallClock::time_point> ended_at;
    bool replaced = false;  // pid now belongs to another process
    bool boot_tracked = false;
    bool boot_closed = false;
    SortedReasonCounts boot_counts;
    std::vector<DrilldownItem> drilldown_own;  // sorted: items with their own series
  };

  TrackedVm& Track(std::uint32_t tgid, WallClock::time_point now,
                   WallClock::time_point attach_time);
  // Sets ended_at = now on each of `vms` (the VMs of `tgids`, same index) whose process ended.
  void MarkEnded(const std::vector<std::uint32_t>& tgids, const std::vector<TrackedVm*>& vms,
                 WallClock::time_point now) const;
  void UpdateBootWindow(TrackedVm& vm, const SortedReasonCounts& counts, WallClock::time_point now);
  // Freezes the VM's boot figure and reports its total.
  void CloseBootWindow(TrackedVm& vm);
  VmSeries OwnSeries(std::uint32_t tgid, SnapshotByVm::Vm&& counts) const;
  std::vector<BootWindowFigures> Boots(const std::vector<std::uint32_t>& own_series) const;

  VmTrackerOptions options_;
  ProcessResolver resolve_;
  StartTicksReader start_ticks_;
  std::map<std::uint32_t, TrackedVm> vms_;  // by tgid
  std::uint64_t next_order_ = 0;
  ReasonCounts retired_;
};

}  // namespace kvmexit
