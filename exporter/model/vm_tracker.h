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

#include "identity/vm_identity.h"
#include "model/sorted_counts.h"
#include "model/vcpu_time.h"
#include "source/exit_snapshot.h"
#include "util/unique_fd.h"

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
  ReasonCounts totals;            // every live entry, the overflow table and retired VMs
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
  // pid was reused); the caller deletes them, and the source keeps what they
  // held in its retired counts (ExitSnapshot::retired).
  // Those of them with drill-down counts go to `drilldown_tgids` when it is given.
  std::vector<vm_exit_key> ExpiredKeys(const ExitSnapshot& snapshot, WallClock::time_point now,
                                       std::vector<std::uint32_t>* drilldown_tgids = nullptr);

  // The series of this scrape. Takes the grouped snapshot by value: its
  // per-VM counts move into the view instead of being copied.
  VmView View(SnapshotByVm snapshot) const;
  VmView View(const ExitSnapshot& snapshot) const { return View(SnapshotByVm(snapshot)); }

  // The processes of the first max_vms VMs in first-seen order (those that get
  // their own series, as View orders them), ascending by tgid, for the vCPU
  // time sampler: ended ones are marked, so their accounts are kept unread.
  std::vector<VcpuTimeProcess> OwnSeriesProcesses() const;

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
};

}  // namespace kvmexit
