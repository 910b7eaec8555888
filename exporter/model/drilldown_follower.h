// SPDX-License-Identifier: Apache-2.0
// Drill-down that follows storms (collector.drilldown_auto): from each
// sample of the per-VM counts, which drill-down kinds to attach because some
// VM's exits of the kind's reasons went over the threshold rate, and which
// to detach because none has been over it for the hold time. Decides only;
// the sampler attaches and detaches (BpfExitSource) and confirms.
#pragma once

#include <linux/types.h>  // kvm_exit.h's __u32, __u64

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "kvm_exit.h"
#include "source/drilldown_kind.h"
#include "source/exit_snapshot.h"

namespace kvmexit {

// A kind that follows storms and the exits that lead to its tracepoint.
struct DrilldownTrigger {
  DrilldownKind kind = DrilldownKind::kIo;
  std::vector<ReasonKey> reasons;
};

class DrilldownFollower {
 public:
  using Clock = std::chrono::steady_clock;

  DrilldownFollower() = default;
  // `threshold`: exits per second of one VM; `hold`: how long the rate must
  // stay below it before the kind is detached.
  DrilldownFollower(const std::vector<DrilldownTrigger>& triggers, double threshold,
                    std::chrono::milliseconds hold);

  struct Switch {
    DrilldownKind kind = DrilldownKind::kIo;
    bool attach = false;
    double rate = 0;  // the highest VM's rate of the kind's reasons, exits per second
  };
  // One sample of every VM's counts, taken at `now`. The rate of each VM is
  // its count's growth since the previous sample, so a storm is seen at the
  // first full sample interval after it starts. Returns the switches to make;
  // Confirm each with what was done.
  std::vector<Switch> Sample(const std::vector<VmExitCount>& counts, Clock::time_point now);
  // The kind is now attached or not (after a switch, or adopted attached).
  void Confirm(DrilldownKind kind, bool attached, Clock::time_point now);

  bool follows(DrilldownKind kind) const { return Find(kind) != nullptr; }
  bool attached(DrilldownKind kind) const {
    const KindState* state = Find(kind);
    return state != nullptr && state->attached;
  }

 private:
  struct KindState {
    DrilldownKind kind = DrilldownKind::kIo;
    bool attached = false;
    Clock::time_point last_over{};  // the last sample at which some VM was over the threshold
  };
  using KindCounts = std::array<std::uint64_t, KVM_DRILLDOWN_KIND_NR>;

  const KindState* Find(DrilldownKind kind) const;
  KindState* Find(DrilldownKind kind);
  // The kinds (bit per kind) whose trigger lists (isa, reason).
  std::uint32_t KindsOf(std::uint32_t isa, std::uint32_t reason) const;

  struct ReasonKinds {
    ReasonKey reason;
    std::uint32_t kinds = 0;  // bit per DrilldownKind
  };
  std::vector<ReasonKinds> reason_kinds_;
  std::vector<KindState> kinds_;
  double threshold_ = 0;
  std::chrono::milliseconds hold_{0};
  // Each VM's counts of each kind's reasons at the previous sample.
  std::unordered_map<std::uint32_t, KindCounts> previous_;
  std::optional<Clock::time_point> previous_time_;
};

}  // namespace kvmexit
