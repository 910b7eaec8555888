// SPDX-License-Identifier: Apache-2.0
#include "model/drilldown_follower.h"

#include <algorithm>
#include <utility>

namespace kvmexit {

DrilldownFollower::DrilldownFollower(const std::vector<DrilldownTrigger>& triggers,
                                     double threshold, std::chrono::milliseconds hold)
    : threshold_(threshold), hold_(hold) {
  for (const DrilldownTrigger& trigger : triggers) {
    if (Find(trigger.kind) == nullptr) kinds_.push_back({.kind = trigger.kind});
    const std::uint32_t bit = 1U << static_cast<std::uint32_t>(trigger.kind);
    for (const ReasonKey& reason : trigger.reasons) {
      const auto it =
          std::find_if(reason_kinds_.begin(), reason_kinds_.end(),
                       [&](const ReasonKinds& entry) { return entry.reason == reason; });
      if (it != reason_kinds_.end()) {
        it->kinds |= bit;
      } else {
        reason_kinds_.push_back({reason, bit});
      }
    }
  }
}

const DrilldownFollower::KindState* DrilldownFollower::Find(DrilldownKind kind) const {
  const auto it = std::find_if(kinds_.begin(), kinds_.end(),
                               [kind](const KindState& state) { return state.kind == kind; });
  return it == kinds_.end() ? nullptr : &*it;
}

DrilldownFollower::KindState* DrilldownFollower::Find(DrilldownKind kind) {
  return const_cast<KindState*>(std::as_const(*this).Find(kind));
}

std::uint32_t DrilldownFollower::KindsOf(std::uint32_t isa, std::uint32_t reason) const {
  // A handful of entries: a scan beats hashing.
  for (const ReasonKinds& entry : reason_kinds_) {
    if (entry.reason.isa == isa && entry.reason.code == reason) return entry.kinds;
  }
  return 0;
}

std::vector<DrilldownFollower::Switch> DrilldownFollower::Sample(
    const std::vector<VmExitCount>& counts, Clock::time_point now) {
  std::vector<Switch> switches;
  if (kinds_.empty()) return switches;
  std::unordered_map<std::uint32_t, KindCounts> current;
  current.reserve(previous_.size() + 16);
  for (const VmExitCount& count : counts) {
    std::uint32_t kinds = KindsOf(count.key.isa, count.key.exit_reason);
    if (kinds == 0) continue;
    KindCounts& sums = current[count.key.tgid];
    for (std::uint32_t kind = 0; kinds != 0; ++kind, kinds >>= 1) {
      if ((kinds & 1U) != 0) sums[kind] += count.count;
    }
  }
  // The highest VM rate of each kind's reasons since the previous sample. A
  // VM first seen now counts from zero: its counters began at its first exit.
  KindCounts zero{};
  std::array<double, KVM_DRILLDOWN_KIND_NR> highest{};
  const bool have_interval = previous_time_.has_value() && now > *previous_time_;
  if (have_interval) {
    const double seconds = std::chrono::duration<double>(now - *previous_time_).count();
    for (const auto& [tgid, sums] : current) {
      const auto before = previous_.find(tgid);
      const KindCounts& earlier = before == previous_.end() ? zero : before->second;
      for (std::size_t kind = 0; kind < sums.size(); ++kind) {
        // A count below the previous one: the VM's counters were taken back
        // and its tgid reused; the new counters began at zero.
        const std::uint64_t grown =
            sums[kind] >= earlier[kind] ? sums[kind] - earlier[kind] : sums[kind];
        highest[kind] = std::max(highest[kind], static_cast<double>(grown) / seconds);
      }
    }
  }
  previous_ = std::move(current);
  previous_time_ = now;
  if (!have_interval) return switches;
  for (KindState& state : kinds_) {
    const double rate = highest[static_cast<std::size_t>(state.kind)];
    if (rate > threshold_) {
      state.last_over = now;
      if (!state.attached) switches.push_back({state.kind, true, rate});
    } else if (state.attached && now - state.last_over >= hold_) {
      switches.push_back({state.kind, false, rate});
    }
  }
  return switches;
}

void DrilldownFollower::Confirm(DrilldownKind kind, bool attached, Clock::time_point now) {
  KindState* state = Find(kind);
  if (state == nullptr) return;
  // Attached without a storm seen yet (adopted): the hold runs from now.
  if (attached && !state->attached) state->last_over = now;
  state->attached = attached;
}

}  // namespace kvmexit
