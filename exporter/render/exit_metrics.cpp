// SPDX-License-Identifier: Apache-2.0
#include "render/exit_metrics.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/drilldown.h"
#include "render/drilldown_labels.h"

namespace kvmexit {
namespace {

// The `isa`, `reason` and `code` labels of each reason, rendered once per
// scrape: at 1,000 VMs some 20,000 series share a few dozen reasons.
class ReasonLabels {
 public:
  explicit ReasonLabels(const ReasonNames& names) : names_(names) {}

  std::string_view For(const ReasonKey& reason) {
    const auto it =
        std::lower_bound(index_.begin(), index_.end(), reason,
                         [](const auto& entry, const ReasonKey& key) { return entry.first < key; });
    if (it != index_.end() && it->first == reason) return *it->second;
    rendered_.push_back(RenderLabels({{"isa", IsaLabel(reason.isa)},
                                      {"reason", names_.Name(reason.isa, reason.code)},
                                      {"code", std::to_string(reason.code)}}));
    return *index_.insert(it, {reason, &rendered_.back()})->second;
  }

 private:
  const ReasonNames& names_;
  std::deque<std::string> rendered_;  // a deque keeps earlier strings in place as it grows
  std::vector<std::pair<ReasonKey, const std::string*>> index_;  // sorted by reason
};

// `vm` and `pid` of each VM series, in view.vms order.
std::vector<std::string> VmLabels(const VmView& view) {
  std::vector<std::string> labels;
  labels.reserve(view.vms.size());
  for (const VmSeries& vm : view.vms) {
    labels.push_back(RenderLabels({{"vm", vm.vm}, {"pid", vm.pid}}));
  }
  return labels;
}

void WriteHostExits(const VmView& view, ReasonLabels& reasons, ExpositionWriter& out) {
  constexpr std::string_view kName = "kvm_exits_total";
  out.Family(kName,
             "VM exits on this host by exit reason, all VMs, since the exporter attached. Exact: "
             "includes ended VMs and the overflow table.",
             MetricType::kCounter);
  for (const auto& [reason, count] : view.host_totals) {
    out.Sample(kName, {reasons.For(reason)}, count);
  }
}

constexpr std::uint32_t kSvmExitHlt = 0x078;  // SVM_EXIT_HLT (asm/svm.h)
constexpr std::uint32_t kVmxExitHlt = 12;     // EXIT_REASON_HLT (asm/vmx.h)
// ESR_ELx_EC_WFx: WFI, where an arm64 guest idles as an x86 one does in HLT,
// and WFE, a wait for an event; one exception class for both.
constexpr std::uint32_t kArm64ExitWfx = 0x01;
constexpr double kNanosecondsPerSecond = 1e9;

// `idle="true"` / `idle="false"`, rendered once.
std::string_view IdleLabel(const ReasonKey& reason) {
  static const std::string kIdle = RenderLabels({{"idle", "true"}});
  static const std::string kBusy = RenderLabels({{"idle", "false"}});
  return IsIdleReason(reason) ? kIdle : kBusy;
}

void WriteExitTime(const VmView& view, const FamilyOptions& options, ReasonLabels& reasons,
                   ExpositionWriter& out) {
  constexpr std::string_view kName = "kvm_exit_handling_seconds";
  constexpr std::string_view kBucket = "kvm_exit_handling_seconds_bucket";
  out.Family(kName,
             "Time from each VM exit to the vCPU thread's next VM entry, by exit reason, all VMs. "
             "idle=\"true\" reasons (HLT) include the time the guest chose to wait.",
             MetricType::kHistogram);
  // The `le` label of each exposed bucket (indexed by BPF bucket), rendered
  // once per scrape from this scrape's range, so a reload that changes the
  // range takes effect at the next scrape.
  // (Clamped: a range from SelectExitBuckets is within the BPF buckets already.)
  const ExitBucketRange range{
      .first = options.exit_buckets.first,
      .last = std::min<std::size_t>(options.exit_buckets.last, KVM_EXIT_TIME_BUCKETS - 1)};
  std::array<std::string, KVM_EXIT_TIME_BUCKETS + 1> le_labels;
  std::string bound;
  for (std::size_t i = range.first; i <= range.last; ++i) {
    bound.clear();
    AppendDouble(bound, ExitTimeBucketBound(i));
    le_labels[i] = RenderLabels({{"le", bound}});
  }
  le_labels[KVM_EXIT_TIME_BUCKETS] = RenderLabels({{"le", "+Inf"}});
  for (const auto& [reason, hist] : view.exit_time) {
    const std::string_view reason_labels = reasons.For(reason);
    const std::string_view idle = IdleLabel(reason);
    // Cumulative over every BPF bucket, written at the exposed bounds only: the
    // count at a bound is exact whichever finer buckets lie below it. _count is
    // the +Inf bucket, so the two always agree even when a CPU was between its
    // bucket and count increments as the map was read.
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < hist.buckets.size(); ++i) {
      cumulative += hist.buckets[i];
      if ((i >= range.first && i <= range.last) || i == KVM_EXIT_TIME_BUCKETS) {
        out.Sample(kBucket, {reason_labels, idle, le_labels[i]}, cumulative);
      }
    }
    out.Sample("kvm_exit_handling_seconds_sum", {reason_labels, idle},
               static_cast<double>(hist.sum_ns) / kNanosecondsPerSecond);
    out.Sample("kvm_exit_handling_seconds_count", {reason_labels, idle}, cumulative);
  }
  constexpr std::string_view kLost = "kvm_exit_timing_lost_total";
  out.Family(kLost,
             "VM exits whose handling time was not recorded (no per-thread slot, histogram map "
             "full, or an exit with no entry before the next exit); should stay 0.",
             MetricType::kCounter);
  out.Sample(kLost, {}, view.timing_lost);
}

void WriteVmExitTime(const VmView& view, const std::vector<std::string>& vm_labels,
                     ReasonLabels& reasons, ExpositionWriter& out) {
  constexpr std::string_view kName = "kvm_vm_exit_handling_seconds_total";
  out.Family(kName,
             "Seconds from VM exits to the next VM entry per VM by exit reason; rate() is the "
             "share of a vCPU's time spent out of the guest. idle=\"true\" (HLT) includes the "
             "time the guest chose to wait.",
             MetricType::kCounter);
  for (std::size_t i = 0; i < view.vms.size(); ++i) {
    for (const auto& [reason, ns] : view.vms[i].time_ns) {
      out.Sample(kName, {vm_labels[i], reasons.For(reason), IdleLabel(reason)},
                 static_cast<double>(ns) / kNanosecondsPerSecond);
    }
  }
}

void WriteVmExits(const VmView& view, const std::vector<std::string>& vm_labels,
                  ReasonLabels& reasons, ExpositionWriter& out) {
  constexpr std::string_view kName = "kvm_vm_exits_total";
  out.Family(kName,
             "VM exits per VM by exit reason. VMs beyond vms.max_vms are summed into "
             "vm=\"other\".",
             MetricType::kCounter);
  for (std::size_t i = 0; i < view.vms.size(); ++i) {
    for (const auto& [reason, count] : view.vms[i].counts) {
      out.Sample(kName, {vm_labels[i], reasons.For(reason)}, count);
    }
  }
}

void WriteVcpuExits(const VmView& view, const std::vector<std::string>& vm_labels,
                    ReasonLabels& reasons, ExpositionWriter& out) {
  constexpr std::string_view kName = "kvm_vcpu_exits_total";
  out.Family(kName, "VM exits per vCPU by exit reason (collector.per_vcpu).", MetricType::kCounter);
  for (std::size_t i = 0; i < view.vms.size(); ++i) {
    std::string vcpu_label;
    std::optional<std::uint32_t> labelled_vcpu;
    for (const auto& [key, count] : view.vms[i].per_vcpu) {
      if (key.vcpu != labelled_vcpu) {  // per_vcpu is ordered by vCPU: render each once
        vcpu_label = RenderLabels({{"vcpu", std::to_string(key.vcpu)}});
        labelled_vcpu = key.vcpu;
      }
      out.Sample(kName, {vm_labels[i], vcpu_label, reasons.For(key.reason)}, count);
    }
  }
}

// Each kind's label values (drilldown_labels.h), indexed by kind.
using LabelValuesOf = DrilldownLabelValues (*)(std::uint64_t item);
const std::array<LabelValuesOf, KVM_DRILLDOWN_KIND_NR> kLabelValuesOf = {{
#define DRILLDOWN_KIND(ENUM, Name, ...) &Name##LabelValues,
#include "drilldown_kinds.def"
#undef DRILLDOWN_KIND
}};

// The space-separated words of a row's label list.
std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> words;
  while (!text.empty()) {
    const std::size_t end = std::min(text.find(' '), text.size());
    if (end > 0) words.push_back(text.substr(0, end));
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return words;
}

// A kind's items rendered as labels once per scrape (1,000 VMs mostly share
// their ports, MSRs and exit reasons, so 32,000 series have a few hundred
// distinct label sets): as its own series, or (`other`) as the folded series,
// whose item is already reduced to the bits "other" keeps: the first label
// reads "other", the labels the row does not keep are "".
class DrilldownItemLabels {
 public:
  DrilldownItemLabels(const DrilldownKindInfo& row, bool other)
      : names_(Words(row.labels)),
        values_of_(kLabelValuesOf[static_cast<std::size_t>(row.kind)]),
        other_(other) {
    const std::vector<std::string_view> kept = Words(row.other_keeps);
    for (std::string_view name : names_) {
      keep_.push_back(std::find(kept.begin(), kept.end(), name) != kept.end());
    }
  }

  std::string_view For(std::uint64_t item) {
    auto [it, added] = rendered_.try_emplace(item);
    if (added) it->second = Render(item);
    return it->second;
  }

 private:
  std::string Render(std::uint64_t item) const {
    const DrilldownLabelValues values = values_of_(item);
    std::vector<Label> labels;
    labels.reserve(names_.size());
    for (std::size_t i = 0; i < names_.size() && i < values.size(); ++i) {
      std::string_view value = values[i];
      if (other_ && i == 0) value = "other";
      if (other_ && i > 0 && !keep_[i]) value = "";
      labels.push_back({names_[i], value});
    }
    return RenderLabels(labels);
  }

  std::vector<std::string_view> names_;
  std::vector<bool> keep_;
  LabelValuesOf values_of_;
  bool other_;
  std::unordered_map<std::uint64_t, std::string> rendered_;
};

// The part of a VM's sorted drill-down counts that is of `kind`.
std::pair<SortedDrilldownCounts::const_iterator, SortedDrilldownCounts::const_iterator> OfKind(
    const SortedDrilldownCounts& counts, std::uint32_t kind) {
  const auto first = std::lower_bound(
      counts.begin(), counts.end(), kind,
      [](const SortedDrilldownCounts::Item& entry, std::uint32_t k) { return entry.key.kind < k; });
  const auto last = std::find_if(
      first, counts.end(),
      [kind](const SortedDrilldownCounts::Item& entry) { return entry.key.kind != kind; });
  return {first, last};
}

void WriteVmDrilldown(const VmView& view, const std::vector<std::string>& vm_labels,
                      const DrilldownKindInfo& family, std::uint32_t max_keys,
                      ExpositionWriter& out) {
  out.Family(family.family,
             std::string(family.help) + " Per VM at most " + std::to_string(max_keys) +
                 " (collector.drilldown_max_keys) items have their own series, kept while the "
                 "VM lives; the rest are summed into " +
                 std::string(Words(family.labels).front()) + "=\"other\".",
             MetricType::kCounter);
  const auto kind = static_cast<std::uint32_t>(family.kind);
  DrilldownItemLabels own_labels(family, /*other=*/false);
  DrilldownItemLabels other_labels(family, /*other=*/true);
  for (std::size_t i = 0; i < view.vms.size(); ++i) {
    const FoldedDrilldown& drill = view.vms[i].drilldown;
    const auto [own_first, own_last] = OfKind(drill.own, kind);
    for (auto it = own_first; it != own_last; ++it) {
      out.Sample(family.family, {vm_labels[i], own_labels.For(it->key.item)}, it->count);
    }
    const auto [other_first, other_last] = OfKind(drill.other, kind);
    for (auto it = other_first; it != other_last; ++it) {
      out.Sample(family.family, {vm_labels[i], other_labels.For(it->key.item)}, it->count);
    }
  }
}

void WriteDrilldownLost(const VmView& view, const std::vector<DrilldownKind>& kinds,
                        ExpositionWriter& out) {
  constexpr std::string_view kName = "kvm_drilldown_overflow_events_total";
  out.Family(kName,
             "Drill-down events (e.g. kind=\"io\": kvm:kvm_pio) not counted because the "
             "drill-down map was full (2,048 VMs per kind) or a VM's "
             "\"other\" slots were; should stay 0.",
             MetricType::kCounter);
  for (DrilldownKind kind : kinds) {
    out.Sample(kName, {RenderLabels({{"kind", DrilldownKindName(kind)}})},
               view.drilldown_lost[static_cast<std::size_t>(kind)]);
  }
}

void WriteVmIdentity(const VmView& view, const std::vector<std::string>& vm_labels,
                     ExpositionWriter& out) {
  constexpr std::string_view kInfo = "kvm_vm_info";
  out.Family(kInfo, "Identity of each VM with its own series; always 1.", MetricType::kGauge);
  for (std::size_t i = 0; i < view.vms.size(); ++i) {
    const VmProcess* process = view.vms[i].process;
    if (process == nullptr) continue;
    const VmIdentity& identity = process->identity;
    out.Sample(
        kInfo,
        {vm_labels[i], RenderLabels({{"vm_uuid", identity.uuid}, {"platform", identity.platform}})},
        std::uint64_t{1});
  }
  constexpr std::string_view kStart = "kvm_vm_start_time_seconds";
  out.Family(kStart, "Unix time the VM's VMM process started.", MetricType::kGauge);
  for (std::size_t i = 0; i < view.vms.size(); ++i) {
    const VmProcess* process = view.vms[i].process;
    if (process != nullptr) out.Sample(kStart, {vm_labels[i]}, process->start_time_seconds);
  }
}

void WriteBootFamilies(const VmView& view, ReasonLabels& reasons, ExpositionWriter& out) {
  std::vector<std::string> boot_labels;
  boot_labels.reserve(view.boots.size());
  for (const BootWindowFigures& figures : view.boots) {
    boot_labels.push_back(RenderLabels({{"vm", figures.vm}, {"pid", figures.pid}}));
  }

  constexpr std::string_view kExits = "kvm_vm_boot_exits";
  out.Family(kExits,
             "VM exits during the VM's first vms.boot_window, by reason; grows during the window "
             "and is frozen after it.",
             MetricType::kGauge);
  for (std::size_t i = 0; i < view.boots.size(); ++i) {
    for (const auto& [reason, count] : view.boots[i].counts) {
      out.Sample(kExits, {boot_labels[i], reasons.For(reason)}, count);
    }
  }

  constexpr std::string_view kClosed = "kvm_vm_boot_window_closed";
  out.Family(kClosed, "1 once the VM's boot window has ended and kvm_vm_boot_exits is final.",
             MetricType::kGauge);
  for (std::size_t i = 0; i < view.boots.size(); ++i) {
    out.Sample(kClosed, {boot_labels[i]}, std::uint64_t{view.boots[i].closed ? 1U : 0U});
  }
}

void WriteRates(const VmView& view, const RateView& rates, ReasonLabels& reasons,
                ExpositionWriter& out) {
  constexpr std::string_view kPerReason = "kvm_exit_rate_per_second";
  out.Family(kPerReason,
             "VM exits per second by reason over rates.window, computed by the exporter's "
             "sampler.",
             MetricType::kGauge);
  if (rates.ready) {
    // Every reason ever seen gets a rate, so a reason that stopped shows 0 rather than vanishing.
    for (const auto& [reason, count] : view.host_totals) {
      const auto rate = rates.per_reason.find(reason);
      out.Sample(kPerReason, {reasons.For(reason)},
                 rate == rates.per_reason.end() ? 0.0 : rate->second);
    }
  }
  constexpr std::string_view kTotal = "kvm_exit_rate_all_per_second";
  out.Family(kTotal, "VM exits per second, all reasons, over rates.window.", MetricType::kGauge);
  if (rates.ready) out.Sample(kTotal, {}, rates.total);
}

}  // namespace

bool IsIdleReason(const ReasonKey& reason) {
  return (reason.isa == KVM_EXIT_ISA_SVM && reason.code == kSvmExitHlt) ||
         (reason.isa == KVM_EXIT_ISA_VMX && reason.code == kVmxExitHlt) ||
         (reason.isa == KVM_EXIT_ISA_ARM64 && reason.code == kArm64ExitWfx);
}

double ExitTimeBucketBound(std::size_t index) {
  // 2^index us: exact powers of two divided once, so each bound is the double
  // nearest its decimal value and prints as such (1.6e-05, not 1.6000000000000001e-05).
  return std::ldexp(1.0, static_cast<int>(index)) / 1e6;
}

ExitBucketRange SelectExitBuckets(std::chrono::microseconds min, std::chrono::microseconds max) {
  constexpr std::size_t kLast = KVM_EXIT_TIME_BUCKETS - 1;
  const auto floor_log2 = [](std::chrono::microseconds us) -> std::size_t {
    return us.count() <= 1 ? 0 : std::bit_width(static_cast<std::uint64_t>(us.count())) - 1;
  };
  const auto ceil_log2 = [](std::chrono::microseconds us) -> std::size_t {
    return us.count() <= 1 ? 0 : std::bit_width(static_cast<std::uint64_t>(us.count()) - 1);
  };
  const std::size_t last = std::min(ceil_log2(max), kLast);
  return {.first = std::min(floor_log2(min), last), .last = last};
}

void WriteExitFamilies(const VmView& view, const RateView& rates, const ReasonNames& names,
                       const FamilyOptions& options, ExpositionWriter& out) {
  ReasonLabels reasons(names);
  WriteHostExits(view, reasons, out);
  if (options.exit_handling_time) WriteExitTime(view, options, reasons, out);
  if (options.per_vm) {
    const std::vector<std::string> vm_labels = VmLabels(view);
    WriteVmExits(view, vm_labels, reasons, out);
    if (options.exit_handling_time) WriteVmExitTime(view, vm_labels, reasons, out);
    if (options.per_vcpu) WriteVcpuExits(view, vm_labels, reasons, out);
    for (DrilldownKind kind : options.drilldown) {
      WriteVmDrilldown(view, vm_labels, DrilldownKindRow(kind), options.drilldown_max_keys, out);
    }
    WriteVmIdentity(view, vm_labels, out);
    WriteBootFamilies(view, reasons, out);
  }
  if (!options.drilldown.empty()) WriteDrilldownLost(view, options.drilldown, out);
  WriteRates(view, rates, reasons, out);
}

}  // namespace kvmexit
