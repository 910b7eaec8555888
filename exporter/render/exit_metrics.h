// SPDX-License-Identifier: Apache-2.0
// Writes the exit metric families as exposition text straight from a VM view:
// no registry, no per-series objects, nothing kept between scrapes.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "model/vm_tracker.h"
#include "render/exposition_writer.h"
#include "render/reason_names.h"
#include "source/drilldown_kind.h"

namespace kvmexit {

struct RateView {
  bool ready = false;  // false until two samples span some time
  std::map<ReasonKey, double> per_reason;
  double total = 0.0;
};

// The finite `le` bounds kvm_exit_handling_seconds exposes: BPF buckets
// first..last (bound 2^i us each), then +Inf. The BPF buckets below `first`
// are in the first exposed one and those above `last` in +Inf only: a
// cumulative bucket is the count of exits <= its bound, whatever lies below it.
struct ExitBucketRange {
  std::size_t first = 0;
  std::size_t last = KVM_EXIT_TIME_BUCKETS - 1;
  friend bool operator==(const ExitBucketRange&, const ExitBucketRange&) = default;
};

// collector.exit_handling_buckets as BPF bucket indices: `min` rounds down to
// a 2^k us bound, `max` rounds up to one, so the exposed bounds cover
// [min, max] with the BPF program's factor-2 resolution. Both are clamped to
// the BPF bounds (1 us .. 2^20 us); the config refuses anything outside them.
ExitBucketRange SelectExitBuckets(std::chrono::microseconds min, std::chrono::microseconds max);

struct FamilyOptions {
  bool per_vm = true;
  bool per_vcpu = false;
  bool exit_handling_time = false;  // the handling-time families (collector.exit_handling_time)
  ExitBucketRange exit_buckets;     // collector.exit_handling_buckets
  std::vector<DrilldownKind> drilldown;   // the drill-down families (collector.drilldown)
  std::uint32_t drilldown_max_keys = 32;  // for the help text
};

// True for the reasons whose handling time includes the time the guest chose
// to wait (SVM `hlt`, VMX `HLT`, arm64 `WFx`): label idle="true", never mixed into overhead.
bool IsIdleReason(const ReasonKey& reason);

// The upper bound of handling-time bucket `index` in seconds: 2^index us.
double ExitTimeBucketBound(std::size_t index);

// The exit families, in this order: kvm_exits_total; with exit_handling_time
// the handling-time histogram and kvm_exit_timing_lost_total; with per_vm the
// per-VM (and its handling time), per-vCPU (with per_vcpu), one drill-down
// family per kind in `drilldown`, identity, start time and boot-window
// families; with any drill-down kind the drill-down overflow; the rates. (The boot-exits histogram
// is one of the self metrics: self_metrics.h.)
void WriteExitFamilies(const VmView& view, const RateView& rates, const ReasonNames& names,
                       const FamilyOptions& options, ExpositionWriter& out);

}  // namespace kvmexit
