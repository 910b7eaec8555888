#include "exit_metrics.h"

#include <limits>

#include "build_info.h"

namespace kvmexit {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// Reason label triples are shared by many series: build each once per scrape.
class ReasonLabels {
 public:
  explicit ReasonLabels(const ReasonNames& names) : names_(names) {}

  const Labels& For(const ReasonKey& reason) {
    auto [it, inserted] = cache_.try_emplace(reason);
    if (inserted) {
      it->second = {{"isa", IsaLabel(reason.isa)},
                    {"reason", names_.Name(reason.isa, reason.code)},
                    {"code", std::to_string(reason.code)}};
    }
    return it->second;
  }

 private:
  const ReasonNames& names_;
  std::map<ReasonKey, Labels> cache_;
};

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

Labels Concat(Labels prefix, const Labels& suffix) {
  prefix.insert(prefix.end(), suffix.begin(), suffix.end());
  return prefix;
}

void AddCounter(MetricFamily& family, Labels labels, double value) {
  ClientMetric metric;
  metric.label = std::move(labels);
  metric.counter.value = value;
  family.metric.push_back(std::move(metric));
}

void AddGauge(MetricFamily& family, Labels labels, double value) {
  ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
}

void AddReasonCounters(MetricFamily& family, const Labels& prefix, const ReasonCounts& counts,
                       ReasonLabels& reason_labels) {
  for (const auto& [reason, count] : counts) {
    AddCounter(family, Concat(prefix, reason_labels.For(reason)), static_cast<double>(count));
  }
}

MetricFamily HostExits(const VmView& view, ReasonLabels& reason_labels) {
  MetricFamily family = Family("kvm_exits_total",
                               "VM exits on this host by exit reason, all VMs, since the exporter "
                               "attached. Exact: includes ended VMs and the overflow table.",
                               MetricType::Counter);
  AddReasonCounters(family, {}, view.host_totals, reason_labels);
  return family;
}

std::vector<MetricFamily> PerVmFamilies(const VmView& view, const FamilyOptions& options,
                                        ReasonLabels& reason_labels) {
  MetricFamily exits = Family("kvm_vm_exits_total",
                              "VM exits per VM by exit reason. VMs beyond vms.max_vms are summed "
                              "into vm=\"other\".",
                              MetricType::Counter);
  MetricFamily vcpu_exits =
      Family("kvm_vcpu_exits_total", "VM exits per vCPU by exit reason (collector.per_vcpu).",
             MetricType::Counter);
  MetricFamily info = Family("kvm_vm_info", "Identity of each VM with its own series; always 1.",
                             MetricType::Gauge);
  MetricFamily start = Family("kvm_vm_start_time_seconds",
                              "Unix time the VM's VMM process started.", MetricType::Gauge);
  for (const VmSeries& vm : view.vms) {
    const Labels vm_labels = {{"vm", vm.vm}, {"pid", vm.pid}};
    AddReasonCounters(exits, vm_labels, vm.counts, reason_labels);
    if (options.per_vcpu) {
      for (const auto& [vcpu, counts] : vm.per_vcpu) {
        AddReasonCounters(vcpu_exits, Concat(vm_labels, {{"vcpu", std::to_string(vcpu)}}), counts,
                          reason_labels);
      }
    }
    if (vm.process != nullptr) {
      AddGauge(
          info,
          Concat(vm_labels, {{"vm_uuid", vm.process->uuid}, {"platform", vm.process->platform}}),
          1.0);
      AddGauge(start, vm_labels, vm.process->start_time_seconds);
    }
  }
  std::vector<MetricFamily> families;
  families.push_back(std::move(exits));
  if (options.per_vcpu) families.push_back(std::move(vcpu_exits));
  families.push_back(std::move(info));
  families.push_back(std::move(start));
  return families;
}

std::vector<MetricFamily> BootFamilies(const VmView& view, const BootHistogram& histogram,
                                       ReasonLabels& reason_labels) {
  MetricFamily boot = Family("kvm_vm_boot_exits",
                             "VM exits during the VM's first vms.boot_window, by reason; grows "
                             "during the window and is frozen after it.",
                             MetricType::Gauge);
  MetricFamily closed = Family("kvm_vm_boot_window_closed",
                               "1 once the VM's boot window has ended and kvm_vm_boot_exits is "
                               "final.",
                               MetricType::Gauge);
  for (const BootWindowFigures& figures : view.boots) {
    const Labels vm_labels = {{"vm", figures.vm}, {"pid", figures.pid}};
    for (const auto& [reason, count] : figures.counts) {
      AddGauge(boot, Concat(vm_labels, reason_labels.For(reason)), static_cast<double>(count));
    }
    AddGauge(closed, vm_labels, figures.closed ? 1.0 : 0.0);
  }

  MetricFamily boot_histogram =
      Family("kvm_vm_boot_exits_count",
             "Distribution of the total exits of each VM's boot window, observed when the window "
             "closes.",
             MetricType::Histogram);
  ClientMetric metric;
  metric.histogram.sample_count = histogram.count;
  metric.histogram.sample_sum = histogram.sum;
  const std::vector<double>& bounds = BootHistogramBounds();
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    metric.histogram.bucket.push_back({histogram.bucket_counts[i], bounds[i]});
  }
  metric.histogram.bucket.push_back({histogram.count, std::numeric_limits<double>::infinity()});
  boot_histogram.metric.push_back(std::move(metric));

  std::vector<MetricFamily> families;
  families.push_back(std::move(boot));
  families.push_back(std::move(closed));
  families.push_back(std::move(boot_histogram));
  return families;
}

std::vector<MetricFamily> RateFamilies(const VmView& view, const RateView& rates,
                                       ReasonLabels& reason_labels) {
  MetricFamily per_reason = Family("kvm_exit_rate_per_second",
                                   "VM exits per second by reason over rates.window, computed by "
                                   "the exporter's sampler.",
                                   MetricType::Gauge);
  MetricFamily total =
      Family("kvm_exit_rate_all_per_second", "VM exits per second, all reasons, over rates.window.",
             MetricType::Gauge);
  if (rates.ready) {
    // Every reason ever seen gets a rate, so a reason that stopped shows 0 rather than vanishing.
    for (const auto& [reason, count] : view.host_totals) {
      const auto rate = rates.per_reason.find(reason);
      AddGauge(per_reason, reason_labels.For(reason),
               rate == rates.per_reason.end() ? 0.0 : rate->second);
    }
    AddGauge(total, {}, rates.total);
  }
  std::vector<MetricFamily> families;
  families.push_back(std::move(per_reason));
  families.push_back(std::move(total));
  return families;
}

void Append(std::vector<MetricFamily>& into, std::vector<MetricFamily> more) {
  for (MetricFamily& family : more) into.push_back(std::move(family));
}

}  // namespace

std::vector<MetricFamily> BuildExitFamilies(const VmView& view, const RateView& rates,
                                            const BootHistogram& boot_histogram,
                                            const ReasonNames& names,
                                            const FamilyOptions& options) {
  ReasonLabels reason_labels(names);
  std::vector<MetricFamily> families;
  families.push_back(HostExits(view, reason_labels));
  if (options.per_vm) {
    Append(families, PerVmFamilies(view, options, reason_labels));
    Append(families, BootFamilies(view, boot_histogram, reason_labels));
  }
  Append(families, RateFamilies(view, rates, reason_labels));
  return families;
}

std::vector<MetricFamily> BuildSelfFamilies(const SelfView& self) {
  std::vector<MetricFamily> families;
  auto gauge = [&](std::string name, std::string help, double value, Labels labels = {}) {
    MetricFamily family = Family(std::move(name), std::move(help), MetricType::Gauge);
    AddGauge(family, std::move(labels), value);
    families.push_back(std::move(family));
  };
  auto counter = [&](std::string name, std::string help, double value) {
    MetricFamily family = Family(std::move(name), std::move(help), MetricType::Counter);
    AddCounter(family, {}, value);
    families.push_back(std::move(family));
  };

  gauge("kvm_exit_exporter_build_info", "Version and git revision of the exporter; always 1.", 1.0,
        {{"version", build_info::kVersion}, {"revision", build_info::kRevision}});
  gauge("kvm_exit_exporter_bpf_attached",
        "1 when the BPF program is attached to kvm:kvm_exit, else 0 (see the log for why).",
        self.attached ? 1.0 : 0.0);
  gauge("kvm_exit_exporter_reason_names_info",
        "Where exit reason names come from (kernel tracepoint format or uapi headers); always 1.",
        1.0, {{"origin", self.reason_names_origin}});

  MetricFamily entries = Family("kvm_exit_exporter_map_entries",
                                "Entries in each BPF map at the last scrape.", MetricType::Gauge);
  AddGauge(entries, {{"map", "vm_exits"}}, static_cast<double>(self.vm_map_entries));
  AddGauge(entries, {{"map", "host_overflow"}}, static_cast<double>(self.overflow_entries));
  families.push_back(std::move(entries));
  MetricFamily capacity = Family("kvm_exit_exporter_map_capacity",
                                 "Maximum entries of each BPF map.", MetricType::Gauge);
  AddGauge(capacity, {{"map", "vm_exits"}}, static_cast<double>(self.vm_map_capacity));
  AddGauge(capacity, {{"map", "host_overflow"}}, static_cast<double>(self.overflow_capacity));
  families.push_back(std::move(capacity));

  counter("kvm_exit_overflow_exits_total",
          "Exits counted in the host overflow table because the per-VM map was full; they are in "
          "kvm_exits_total but in no per-VM series.",
          static_cast<double>(self.overflow_exits));
  counter("kvm_exit_lost_exits_total",
          "Exits that could be stored nowhere (overflow table full as well). Should stay 0.",
          static_cast<double>(self.lost_exits));
  gauge("kvm_exit_exporter_scrape_duration_seconds",
        "Time the previous scrape took to read the maps and build the metrics.",
        self.last_scrape_seconds);

  MetricFamily errors =
      Family("kvm_exit_exporter_errors_total",
             "Errors by kind: attach (BPF load or attach failed), map_read, map_delete.",
             MetricType::Counter);
  for (const auto& [kind, count] : self.errors) {
    AddCounter(errors, {{"kind", kind}}, static_cast<double>(count));
  }
  families.push_back(std::move(errors));

  gauge("kvm_exit_exporter_vms",
        "VMM processes currently tracked (live, or ended within "
        "vms.grace_period).",
        static_cast<double>(self.tracked_vms));
  gauge("kvm_exit_exporter_vms_folded",
        "VMs beyond vms.max_vms whose exits are summed into vm=\"other\".",
        static_cast<double>(self.folded_vms));
  counter("kvm_exit_exporter_bpf_prog_run_count_total",
          "Times the BPF program ran (counted only while kernel.bpf_stats_enabled=1).",
          static_cast<double>(self.prog_run_count));
  counter("kvm_exit_exporter_bpf_prog_run_time_seconds_total",
          "Time spent in the BPF program (counted only while kernel.bpf_stats_enabled=1).",
          static_cast<double>(self.prog_run_time_ns) / 1e9);
  return families;
}

}  // namespace kvmexit
