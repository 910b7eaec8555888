// SPDX-License-Identifier: Apache-2.0
// The exporter's own instrumentation, on a prometheus-cpp registry: its
// health, its errors, its cost, and the boot-exits histogram. Each figure is
// updated where its event happens (an attach failure is counted where the
// attach fails, a boot window's total when the window closes); figures the
// kernel keeps (map fill, program run time) are brought up to date once per
// scrape from the same snapshot as the exit families.
//
// The exit families themselves are streamed by exit_metrics.h instead: at
// 1,000 VMs a registry of ~20,000 series costs about 5x the CPU per scrape
// (docs/benchmarks.md). These ~25 series are what a client library is for.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

#include "source/exit_snapshot.h"
#include "source/program_stats.h"

namespace kvmexit {

// Upper bounds of kvm_vm_boot_exits_count (exits per VM boot); with +Inf
// they are the KVM_EXIT_BOOT_EXITS_BUCKETS kept with the BPF state.
inline const prometheus::Histogram::BucketBoundaries& BootExitsBuckets() {
  static const prometheus::Histogram::BucketBoundaries bounds = {1e3, 3e3, 1e4, 3e4, 1e5,
                                                                 3e5, 1e6, 3e6, 1e7};
  return bounds;
}

// The bucket of BootExitsBuckets() (its size: +Inf) that counts `exits`.
inline std::size_t BootExitsBucket(std::uint64_t exits) {
  const auto& bounds = BootExitsBuckets();
  std::size_t bucket = 0;
  while (bucket < bounds.size() && static_cast<double>(exits) > bounds[bucket]) ++bucket;
  return bucket;
}

// Upper bounds of kvm_exit_exporter_scrape_duration_seconds: a scrape takes
// about 1 ms at 10 VMs and 13 ms at 1,000 (docs/benchmarks.md); seconds mean trouble.
inline const prometheus::Histogram::BucketBoundaries& ScrapeDurationBuckets() {
  static const prometheus::Histogram::BucketBoundaries bounds = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return bounds;
}

class SelfMetrics {
 public:
  SelfMetrics();
  SelfMetrics(const SelfMetrics&) = delete;
  SelfMetrics& operator=(const SelfMetrics&) = delete;

  // Events, counted where they happen.
  void AttachFailed() { attach_errors_.Increment(); }
  void MapReadFailed() { map_read_errors_.Increment(); }
  void MapDeleteFailed() { map_delete_errors_.Increment(); }
  // An ended VM's counters could not be made reusable, or free ones handed out.
  void CounterReuseFailed() { counter_reuse_errors_.Increment(); }
  void DrilldownSwitchFailed() { drilldown_switch_errors_.Increment(); }
  // The drill-down kinds loaded, each with how it is attached: "always"
  // (collector.drilldown) or "auto" (collector.drilldown_auto); each starts detached.
  void DrilldownKinds(const std::vector<std::pair<std::string, std::string>>& kinds_and_modes);
  // Kind `kind` is attached now, or not; `switched` counts a switch of a kind that follows storms.
  void DrilldownAttached(std::string_view kind, bool attached, bool switched);
  void Attached(std::string_view hook);
  // How the attached programs' counts began (StateStartName: adopted, fresh,
  // unpinned) and since when (unix seconds) they run without a reset.
  void BpfStateStarted(std::string_view start, double counting_since_seconds);
  void ReasonNamesFrom(std::string_view origin);  // "kernel" or "uapi"
  void BootWindowClosed(std::uint64_t boot_exits) {
    boot_exits_.Observe(static_cast<double>(boot_exits));
  }
  // kvm_vm_boot_exits_count's figures kept by an earlier process (per
  // bucket of BootExitsBuckets() and +Inf, not cumulative; their sum),
  // added once when this one adopts them.
  void BootWindowsBefore(const std::vector<double>& buckets, double sum) {
    boot_exits_.ObserveMultiple(buckets, sum);
  }
  void ScrapeTook(double seconds) { scrape_duration_.Observe(seconds); }
  // One collector.vcpu_time sample (the /proc reads of every vCPU thread)
  // took `seconds`: its sum's rate is the share of a core the sampler costs.
  void VcpuTimeSampleTook(double seconds) { vcpu_time_sample_duration_.Observe(seconds); }
  // The configuration was loaded now (at start, or by a SIGHUP reload), or a
  // reload failed: then the exporter keeps its old configuration, and the
  // timestamp stays that of its last success.
  void ConfigLoaded(bool successful);

  // Figures of the snapshot a scrape is built from.
  void Observe(const ExitSnapshot& snapshot);
  void Observe(const BpfProgramStats& stats);
  void ObserveVms(std::uint64_t tracked, std::uint64_t folded);

  // Appends every family in the text exposition format.
  void AppendTo(std::string& text) const;

 private:
  prometheus::Registry registry_;

  prometheus::Family<prometheus::Counter>& errors_;
  prometheus::Counter& attach_errors_;
  prometheus::Counter& map_read_errors_;
  prometheus::Counter& map_delete_errors_;
  prometheus::Counter& counter_reuse_errors_;
  prometheus::Counter& drilldown_switch_errors_;
  prometheus::Family<prometheus::Gauge>& drilldown_attached_;
  prometheus::Family<prometheus::Counter>& drilldown_switches_;
  // kind -> its series of the two families above
  std::map<std::string, std::pair<prometheus::Gauge*, prometheus::Counter*>, std::less<>>
      drilldown_series_;

  prometheus::Gauge& attached_;
  prometheus::Family<prometheus::Gauge>& hook_info_;
  prometheus::Family<prometheus::Gauge>& reason_names_info_;
  prometheus::Gauge* reason_names_origin_ = nullptr;  // the one series of reason_names_info_
  prometheus::Family<prometheus::Gauge>& bpf_state_info_;
  prometheus::Gauge& counting_since_;

  prometheus::Family<prometheus::Gauge>& map_entries_;
  prometheus::Gauge& vm_map_entries_;
  prometheus::Gauge& overflow_map_entries_;
  prometheus::Family<prometheus::Gauge>& map_capacity_;
  prometheus::Gauge& vm_map_capacity_;
  prometheus::Gauge& overflow_map_capacity_;
  prometheus::Counter& overflow_exits_;
  prometheus::Counter& lost_exits_;

  prometheus::Counter& prog_run_count_;
  prometheus::Counter& prog_run_time_;
  prometheus::Counter& prog_missed_;

  prometheus::Gauge& config_reload_successful_;
  prometheus::Gauge& config_reload_success_time_;

  prometheus::Gauge& tracked_vms_;
  prometheus::Gauge& folded_vms_;

  prometheus::Histogram& boot_exits_;
  prometheus::Histogram& scrape_duration_;
  prometheus::Histogram& vcpu_time_sample_duration_;
};

}  // namespace kvmexit
