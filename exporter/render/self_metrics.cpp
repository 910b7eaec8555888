// SPDX-License-Identifier: Apache-2.0
#include "render/self_metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

#include "build_info.h"

namespace kvmexit {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Registry;

Family<Counter>& Counters(Registry& registry, const std::string& name, const std::string& help) {
  return BuildCounter().Name(name).Help(help).Register(registry);
}

Family<Gauge>& Gauges(Registry& registry, const std::string& name, const std::string& help) {
  return BuildGauge().Name(name).Help(help).Register(registry);
}

Counter& OneCounter(Registry& registry, const std::string& name, const std::string& help) {
  return Counters(registry, name, help).Add({});
}

Gauge& OneGauge(Registry& registry, const std::string& name, const std::string& help) {
  return Gauges(registry, name, help).Add({});
}

// A counter that follows one the kernel keeps: it starts at 0 as the kernel's
// does when the program is loaded, and takes each increase. Values up to 2^53
// are exact in the double a prometheus-cpp counter holds.
void Follow(Counter& counter, double kernel_value) {
  if (kernel_value > counter.Value()) counter.Increment(kernel_value - counter.Value());
}

void Follow(Counter& counter, std::uint64_t kernel_value) {
  Follow(counter, static_cast<double>(kernel_value));
}

}  // namespace

SelfMetrics::SelfMetrics()
    : errors_(Counters(registry_, "kvm_exit_exporter_errors_total",
                       "Errors by kind: attach (BPF load or attach failed), map_read, map_delete, "
                       "counter_reuse (BPF counters of ended VMs kept out of use, or no more "
                       "handed out), drilldown_switch (a drill-down kind that follows storms "
                       "could not be attached or kept).")),
      attach_errors_(errors_.Add({{"kind", "attach"}})),
      map_read_errors_(errors_.Add({{"kind", "map_read"}})),
      map_delete_errors_(errors_.Add({{"kind", "map_delete"}})),
      counter_reuse_errors_(errors_.Add({{"kind", "counter_reuse"}})),
      drilldown_switch_errors_(errors_.Add({{"kind", "drilldown_switch"}})),
      drilldown_attached_(Gauges(
          registry_, "kvm_exit_exporter_drilldown_attached",
          "1 while the BPF program of a drill-down kind is attached, else 0. mode=\"always\": "
          "collector.drilldown; mode=\"auto\": collector.drilldown_auto, attached while some "
          "VM's exits of the kind's reasons are above the threshold, and for the hold time "
          "after.")),
      drilldown_switches_(Counters(
          registry_, "kvm_exit_exporter_drilldown_switches_total",
          "Times a drill-down kind that follows storms (collector.drilldown_auto) was attached "
          "or detached.")),
      attached_(OneGauge(
          registry_, "kvm_exit_exporter_bpf_attached",
          "1 when the BPF program is attached to kvm:kvm_exit, else 0 (see the log for why).")),
      hook_info_(Gauges(registry_, "kvm_exit_exporter_bpf_hook_info",
                        "How the BPF program hooks kvm:kvm_exit (config kernel.hook): tp_btf, "
                        "raw_tp or tracepoint; always 1.")),
      reason_names_info_(Gauges(registry_, "kvm_exit_exporter_reason_names_info",
                                "Where exit reason names come from (kernel tracepoint format or "
                                "uapi headers); always 1.")),
      bpf_state_info_(Gauges(
          registry_, "kvm_exit_exporter_bpf_state_info",
          "How this process's counts began (config kernel.state_path): adopted (the pinned "
          "programs counted through the restart), fresh (pinned from now on; the log says why "
          "nothing was adopted) or unpinned (no state path: counts end with the process); "
          "always 1.")),
      counting_since_(OneGauge(
          registry_, "kvm_exit_exporter_counting_since_timestamp_seconds",
          "Unix time since which the BPF programs have counted without a reset: their attach "
          "time, kept across restarts that adopt the pinned state.")),
      map_entries_(Gauges(registry_, "kvm_exit_exporter_map_entries",
                          "Entries in each BPF map at the last scrape.")),
      vm_map_entries_(map_entries_.Add({{"map", "vm_exits"}})),
      overflow_map_entries_(map_entries_.Add({{"map", "host_overflow"}})),
      map_capacity_(
          Gauges(registry_, "kvm_exit_exporter_map_capacity", "Maximum entries of each BPF map.")),
      vm_map_capacity_(map_capacity_.Add({{"map", "vm_exits"}})),
      overflow_map_capacity_(map_capacity_.Add({{"map", "host_overflow"}})),
      overflow_exits_(OneCounter(registry_, "kvm_exit_overflow_exits_total",
                                 "Exits counted in the host overflow table because the per-VM map "
                                 "was full; they are in kvm_exits_total but in no per-VM series.")),
      lost_exits_(OneCounter(registry_, "kvm_exit_lost_exits_total",
                             "Exits in no counter: the overflow table was full as well, or "
                             "(tp_btf) the exit reason could not be read from the vCPU. Should "
                             "stay 0.")),
      prog_run_count_(
          OneCounter(registry_, "kvm_exit_exporter_bpf_prog_run_count_total",
                     "Times the BPF program ran (counted only while kernel.bpf_stats_enabled=1).")),
      prog_run_time_(OneCounter(
          registry_, "kvm_exit_exporter_bpf_prog_run_time_seconds_total",
          "Time spent in the BPF program (counted only while kernel.bpf_stats_enabled=1).")),
      prog_missed_(OneCounter(
          registry_, "kvm_exit_exporter_bpf_prog_missed_total",
          "kvm_exit events for which the kernel skipped the BPF program; those exits are in no "
          "counter. tracepoint: another BPF program or a BPF map syscall was active on that CPU "
          "(counted by kernels from 6.7 on); tp_btf: only a recursion of the program itself.")),
      config_reload_successful_(
          OneGauge(registry_, "kvm_exit_exporter_config_last_reload_successful",
                   "1 when the last configuration reload (SIGHUP) succeeded or none was tried, "
                   "0 when it failed and the previous configuration is still in use.")),
      config_reload_success_time_(OneGauge(
          registry_, "kvm_exit_exporter_config_last_reload_success_timestamp_seconds",
          "Unix time the running configuration was loaded: at start, then at each successful "
          "reload.")),
      tracked_vms_(
          OneGauge(registry_, "kvm_exit_exporter_vms",
                   "VMM processes currently tracked (live, or ended within vms.grace_period).")),
      folded_vms_(OneGauge(registry_, "kvm_exit_exporter_vms_folded",
                           "VMs beyond vms.max_vms whose exits are summed into vm=\"other\".")),
      boot_exits_(BuildHistogram()
                      .Name("kvm_vm_boot_exits_count")
                      .Help("Distribution of the total exits of each VM's boot window, observed "
                            "when the window closes.")
                      .Register(registry_)
                      .Add({}, BootExitsBuckets())),
      scrape_duration_(BuildHistogram()
                           .Name("kvm_exit_exporter_scrape_duration_seconds")
                           .Help("Time each scrape took to read the BPF maps and build the "
                                 "metrics (before serializing this registry).")
                           .Register(registry_)
                           .Add({}, ScrapeDurationBuckets())),
      // The scrape's buckets: a sample reads /proc for about as many
      // threads as a scrape writes VMs (milliseconds at 1,000 VMs).
      vcpu_time_sample_duration_(
          BuildHistogram()
              .Name("kvm_exit_exporter_vcpu_time_sample_duration_seconds")
              .Help("Time each collector.vcpu_time sample took to read the vCPU threads' /proc "
                    "files; the rate of its sum is the share of one core the sampler costs.")
              .Register(registry_)
              .Add({}, ScrapeDurationBuckets())) {
  Gauges(registry_, "kvm_exit_exporter_build_info",
         "Version and git revision of the exporter; always 1.")
      .Add({{"version", build_info::kVersion}, {"revision", build_info::kRevision}})
      .Set(1);
}

void SelfMetrics::Attached(std::string_view hook) {
  attached_.Set(1);
  hook_info_.Add({{"hook", std::string(hook)}}).Set(1);
}

void SelfMetrics::DrilldownKinds(
    const std::vector<std::pair<std::string, std::string>>& kinds_and_modes) {
  for (const auto& [kind, mode] : kinds_and_modes) {
    Gauge& attached = drilldown_attached_.Add({{"kind", kind}, {"mode", mode}});
    Counter* switches = mode == "auto" ? &drilldown_switches_.Add({{"kind", kind}}) : nullptr;
    drilldown_series_[kind] = {&attached, switches};
  }
}

void SelfMetrics::DrilldownAttached(std::string_view kind, bool attached, bool switched) {
  const auto it = drilldown_series_.find(kind);
  if (it == drilldown_series_.end()) return;
  it->second.first->Set(attached ? 1 : 0);
  if (switched && it->second.second != nullptr) it->second.second->Increment();
}

void SelfMetrics::BpfStateStarted(std::string_view start, double counting_since_seconds) {
  bpf_state_info_.Add({{"start", std::string(start)}}).Set(1);
  counting_since_.Set(counting_since_seconds);
}

void SelfMetrics::ReasonNamesFrom(std::string_view origin) {
  // One series: the origin replaces the previous one (uapi until kvm is loaded, then kernel).
  if (reason_names_origin_ != nullptr) reason_names_info_.Remove(reason_names_origin_);
  reason_names_origin_ = &reason_names_info_.Add({{"origin", std::string(origin)}});
  reason_names_origin_->Set(1);
}

void SelfMetrics::ConfigLoaded(bool successful) {
  config_reload_successful_.Set(successful ? 1 : 0);
  if (successful) config_reload_success_time_.SetToCurrentTime();
}

void SelfMetrics::Observe(const ExitSnapshot& snapshot) {
  vm_map_entries_.Set(static_cast<double>(snapshot.vm_counts.size()));
  overflow_map_entries_.Set(static_cast<double>(snapshot.overflow.size()));
  vm_map_capacity_.Set(snapshot.vm_map_capacity);
  overflow_map_capacity_.Set(snapshot.overflow_capacity);
  Follow(overflow_exits_, Sum(snapshot.overflow));
  Follow(lost_exits_, snapshot.lost);
}

void SelfMetrics::Observe(const BpfProgramStats& stats) {
  Follow(prog_run_count_, stats.run_count);
  Follow(prog_missed_, stats.missed);
  Follow(prog_run_time_, static_cast<double>(stats.run_time_ns) / 1e9);
}

void SelfMetrics::ObserveVms(std::uint64_t tracked, std::uint64_t folded) {
  tracked_vms_.Set(static_cast<double>(tracked));
  folded_vms_.Set(static_cast<double>(folded));
}

void SelfMetrics::AppendTo(std::string& text) const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_.Collect());
  text += out.str();
}

}  // namespace kvmexit
