// Turns the tgids found in the BPF map into VMs: who they are, when they
// started, when they ended, their boot-window exits, and which ones get their
// own series (the rest are folded into vm="other").
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "exit_snapshot.h"
#include "unique_fd.h"

namespace kvmexit {

// What the tracker needs to know about a VMM process, resolved once per process.
struct VmProcess {
  std::string name;
  std::string uuid;
  std::string platform;
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
};

// Exit counts of one VM (or of the "other" bucket), ready for labelling.
struct VmSeries {
  std::string vm;
  std::string pid;                     // "" for the folded bucket
  const VmProcess* process = nullptr;  // null for the folded bucket
  ReasonCounts counts;
  std::map<std::uint32_t, ReasonCounts> per_vcpu;  // empty when per-vCPU counting is off
};

struct BootWindowFigures {
  std::string vm;
  std::string pid;
  ReasonCounts counts;
  bool closed = false;
};

// Everything per-VM a scrape needs, plus the exact host totals.
struct VmView {
  ReasonCounts host_totals;  // live entries + overflow + retired VMs: exact and monotonic
  std::vector<VmSeries> vms;
  std::vector<BootWindowFigures> boots;
  std::size_t tracked_vms = 0;
  std::size_t folded_vms = 0;
};

// Upper bounds of the boot-exit histogram (exits per VM boot).
inline const std::vector<double>& BootHistogramBounds() {
  static const std::vector<double> bounds = {1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7};
  return bounds;
}

struct BootHistogram {
  std::vector<std::uint64_t> bucket_counts =
      std::vector<std::uint64_t>(BootHistogramBounds().size());
  std::uint64_t count = 0;
  double sum = 0.0;
};

class VmTracker {
 public:
  using WallClock = std::chrono::system_clock;

  VmTracker(VmTrackerOptions options, ProcessResolver resolve, StartTicksReader start_ticks);

  // Learns new VMs from the snapshot, notices ended ones and updates boot windows.
  // `attach_time` is when counting began: only VMs started after it have a complete boot window.
  void Observe(const ExitSnapshot& snapshot, WallClock::time_point now,
               WallClock::time_point attach_time);

  // The map keys of VMs that ended more than grace_period ago (and of VMs whose
  // pid was reused); the caller deletes them and hands back what they held.
  std::vector<vm_exit_key> ExpiredKeys(const ExitSnapshot& snapshot, WallClock::time_point now);
  void Retire(const std::vector<VmExitCount>& removed);

  VmView View(const ExitSnapshot& snapshot) const;
  const BootHistogram& boot_histogram() const { return boot_histogram_; }

 private:
  struct TrackedVm {
    VmProcess process;
    std::uint64_t order = 0;  // first-seen order: the first max_vms get their own series
    UniqueFd pidfd;           // readable once the process exits
    std::optional<WallClock::time_point> ended_at;
    bool replaced = false;  // pid now belongs to another process
    bool boot_tracked = false;
    bool boot_closed = false;
    ReasonCounts boot_counts;
  };

  bool HasEnded(TrackedVm& vm, std::uint32_t pid) const;
  void UpdateBootWindow(TrackedVm& vm, const ReasonCounts& counts, WallClock::time_point now);

  VmTrackerOptions options_;
  ProcessResolver resolve_;
  StartTicksReader start_ticks_;
  std::map<std::uint32_t, TrackedVm> vms_;  // by tgid
  std::uint64_t next_order_ = 0;
  ReasonCounts retired_;
  BootHistogram boot_histogram_;
};

}  // namespace kvmexit
