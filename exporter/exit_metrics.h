// Writes the exit metric families as exposition text straight from a VM view:
// no registry, no per-series objects, nothing kept between scrapes.
#pragma once

#include <map>
#include <string>

#include "exposition_writer.h"
#include "reason_names.h"
#include "vm_tracker.h"

namespace kvmexit {

struct RateView {
  bool ready = false;  // false until two samples span some time
  std::map<ReasonKey, double> per_reason;
  double total = 0.0;
};

struct FamilyOptions {
  bool per_vm = true;
  bool per_vcpu = false;
  bool exit_handling_time = false;  // the handling-time families (collector.exit_handling_time)
  bool drilldown_io = false;        // the io port drill-down families (collector.drilldown: [io])
  std::uint32_t drilldown_max_keys = 32;  // for the help text
};

// True for the reasons whose handling time includes the time the guest chose
// to wait (SVM `hlt`, VMX `HLT`): label idle="true", never mixed into overhead.
bool IsIdleReason(const ReasonKey& reason);

// The upper bound of handling-time bucket `index` in seconds: 2^index us.
double ExitTimeBucketBound(std::size_t index);

// The exit families, in this order: kvm_exits_total; with exit_handling_time
// the handling-time histogram and kvm_exit_timing_lost_total; with per_vm the
// per-VM (and its handling time), per-vCPU (with per_vcpu), io port
// drill-down (with drilldown_io), identity, start time and boot-window
// families; with drilldown_io the drill-down overflow; the rates. (The boot-exits histogram is one
// of the self metrics: self_metrics.h.)
void WriteExitFamilies(const VmView& view, const RateView& rates, const ReasonNames& names,
                       const FamilyOptions& options, ExpositionWriter& out);

}  // namespace kvmexit
