// SPDX-License-Identifier: Apache-2.0
#include "model/vm_tracker.h"

#include "model/drilldown.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <numeric>
#include <span>
#include <tuple>
#include <utility>

namespace kvmexit {
namespace {

UniqueFd OpenPidFd(std::uint32_t pid) {
#ifdef SYS_pidfd_open
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0)));
#else
  return UniqueFd();
#endif
}

std::uint32_t TgidOf(const VmExitCount& entry) { return entry.key.tgid; }
std::uint32_t TgidOf(const DrilldownCount& entry) { return entry.tgid(); }

// Orders entries by tgid, keeping their order within a VM: an LSD radix sort,
// one byte a pass, linear in the entries. A comparison sort of ~20,000 entries
// in the BPF hash's random order costs several times more (mispredicted
// branches) and grows as n log n.
template <typename Entry>
void GroupByTgid(std::vector<Entry>& entries) {
  std::vector<Entry> sorted(entries.size());
  for (unsigned shift = 0; shift < 32; shift += 8) {
    const auto digit = [shift](const Entry& entry) { return (TgidOf(entry) >> shift) & 0xffU; };
    std::array<std::size_t, 257> next{};  // next[d + 1] counts digit d, then becomes its slot
    for (const Entry& entry : entries) ++next[digit(entry) + 1];
    // Every entry has the same digit (e.g. the high byte of a pid): order unchanged.
    if (std::find(next.begin(), next.end(), entries.size()) != next.end()) continue;
    std::partial_sum(next.begin(), next.end(), next.begin());
    for (const Entry& entry : entries) sorted[next[digit(entry)]++] = entry;
    entries.swap(sorted);
  }
}

// One VM's entries in the order its counts are summed: by reason, then vCPU.
struct ByReasonVcpu {
  bool operator()(const VmExitCount& a, const VmExitCount& b) const {
    return std::tuple(a.key.isa, a.key.exit_reason, a.key.vcpu_id) <
           std::tuple(b.key.isa, b.key.exit_reason, b.key.vcpu_id);
  }
};

// Sums one VM's entries, sorting them by reason, then vCPU, first.
SnapshotByVm::Vm SumVm(std::uint32_t tgid, std::span<VmExitCount> entries) {
  std::sort(entries.begin(), entries.end(), ByReasonVcpu{});
  SnapshotByVm::Vm vm;
  vm.tgid = tgid;
  vm.counts.reserve(entries.size());
  std::vector<SortedVcpuCounts::Item> per_vcpu;
  per_vcpu.reserve(entries.size());
  for (const VmExitCount& entry : entries) {
    vm.counts.Append(ReasonOf(entry.key), entry.count);
    if (entry.key.vcpu_id != KVM_EXIT_ALL_VCPUS) {
      per_vcpu.push_back({{entry.key.vcpu_id, ReasonOf(entry.key)}, entry.count});
    }
  }
  // Per-vCPU series are written vCPU by vCPU; a map key occurs once, so no sums here.
  std::sort(per_vcpu.begin(), per_vcpu.end(),
            [](const auto& a, const auto& b) { return a.key < b.key; });
  vm.per_vcpu.reserve(per_vcpu.size());
  for (const auto& [key, count] : per_vcpu) vm.per_vcpu.Append(key, count);
  return vm;
}

// Sums one VM's handling time per reason (over vCPUs), sorting its entries first.
SortedReasonCounts SumTimeByReason(std::span<VmExitCount> entries) {
  std::sort(entries.begin(), entries.end(), ByReasonVcpu{});
  SortedReasonCounts sums;
  sums.reserve(entries.size());
  for (const VmExitCount& entry : entries) sums.Append(ReasonOf(entry.key), entry.count);
  return sums;
}

// Adds sorted counts to a map in one merge walk: each key is found from the
// previous one instead of searched from the root.
void AddSorted(ReasonCounts& into, const SortedReasonCounts& from) {
  auto at = into.begin();
  for (const auto& [reason, count] : from) {
    while (at != into.end() && at->first < reason) ++at;
    if (at == into.end() || reason < at->first) at = into.emplace_hint(at, reason, 0);
    at->second += count;
    ++at;
  }
}

void AddInto(ReasonCounts& into, const ReasonCounts& from) {
  for (const auto& [reason, count] : from) into[reason] += count;
}

double SecondsSinceEpoch(VmTracker::WallClock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// Attaches the drill-down entries to the VMs of the counts (both by tgid). A VM
// with drill-down entries but no count entry (its exits went to the overflow
// table) has no series.
void AttachDrilldown(const std::vector<DrilldownCount>& entries,
                     std::vector<SnapshotByVm::Vm>& vms) {
  // BpfExitSource::Read hands them over by tgid; a snapshot made otherwise is
  // grouped first (linear time: a comparison sort of every entry was 27% of a
  // drill-down scrape, docs/benchmarks.md, "Drill-down cost").
  const auto by_tgid = [](const DrilldownCount& a, const DrilldownCount& b) {
    return a.tgid() < b.tgid();
  };
  std::vector<DrilldownCount> grouped;
  if (!std::is_sorted(entries.begin(), entries.end(), by_tgid)) {
    grouped = entries;
    GroupByTgid(grouped);
  }
  const std::vector<DrilldownCount>& ordered = grouped.empty() ? entries : grouped;
  std::vector<DrilldownCount> one_vm;  // a few dozen to a few hundred, sorted by (kind, item)
  auto vm = vms.begin();
  for (auto first = ordered.begin(); first != ordered.end() && vm != vms.end();) {
    const std::uint32_t tgid = first->tgid();
    const auto last = std::find_if(
        first, ordered.end(), [tgid](const DrilldownCount& entry) { return entry.tgid() != tgid; });
    while (vm != vms.end() && vm->tgid < tgid) ++vm;
    if (vm != vms.end() && vm->tgid == tgid) {
      // Items first, then the few entries of BPF's "other" slots; each part by item.
      one_vm.assign(first, last);
      std::sort(one_vm.begin(), one_vm.end(), [](const DrilldownCount& a, const DrilldownCount& b) {
        return std::pair(a.in_other(), a.what()) < std::pair(b.in_other(), b.what());
      });
      vm->drilldown.reserve(one_vm.size());
      for (const DrilldownCount& entry : one_vm) {
        (entry.in_other() ? vm->drilldown_other : vm->drilldown)
            .Append(entry.what(), entry.count());
      }
    }
    first = last;
  }
}

}  // namespace

SnapshotByVm::SnapshotByVm(const ExitSnapshot& snapshot)
    : totals(snapshot.overflow),
      exit_time(snapshot.exit_time),
      timing_lost(snapshot.timing_lost),
      drilldown_lost(snapshot.drilldown_lost) {
  AddInto(totals, snapshot.retired);
  // The BPF hash hands entries over in bucket order: bring each VM's together.
  std::vector<VmExitCount> entries = snapshot.vm_counts;
  GroupByTgid(entries);
  for (auto first = entries.begin(); first != entries.end();) {
    const std::uint32_t tgid = first->key.tgid;
    const auto last = std::find_if(
        first, entries.end(), [tgid](const VmExitCount& entry) { return entry.key.tgid != tgid; });
    vms.push_back(SumVm(tgid, {first, last}));
    AddSorted(totals, vms.back().counts);
    first = last;
  }
  if (!snapshot.drilldown.empty()) AttachDrilldown(snapshot.drilldown, vms);
  if (snapshot.vm_time_ns.empty()) return;
  // Handling time goes to the VMs of the counts: both lists ascend by tgid. A
  // VM with time but no count entry (its counts went to the overflow table) has no series.
  std::vector<VmExitCount> times = snapshot.vm_time_ns;
  GroupByTgid(times);
  auto vm = vms.begin();
  for (auto first = times.begin(); first != times.end();) {
    const std::uint32_t tgid = first->key.tgid;
    const auto last = std::find_if(
        first, times.end(), [tgid](const VmExitCount& entry) { return entry.key.tgid != tgid; });
    while (vm != vms.end() && vm->tgid < tgid) ++vm;
    if (vm != vms.end() && vm->tgid == tgid) vm->time_ns = SumTimeByReason({first, last});
    first = last;
  }
}

VmTracker::VmTracker(VmTrackerOptions options, ProcessResolver resolve,
                     StartTicksReader start_ticks)
    : options_(std::move(options)),
      resolve_(std::move(resolve)),
      start_ticks_(std::move(start_ticks)) {}

void VmTracker::SetLimits(std::uint32_t max_vms, std::chrono::milliseconds grace_period,
                          std::chrono::milliseconds boot_window) {
  options_.max_vms = max_vms;
  options_.grace_period = grace_period;
  options_.boot_window = boot_window;
}

void VmTracker::Reidentify(ProcessResolver resolve) {
  resolve_ = std::move(resolve);
  for (auto& [tgid, vm] : vms_) {
    if (vm.ended_at) continue;
    std::optional<VmProcess> process = resolve_(tgid);
    // Another start time: the pid was reused and the next Observe retires this VM.
    if (!process || process->start_ticks != vm.process.start_ticks) continue;
    vm.process.identity = std::move(process->identity);
  }
}

void VmTracker::MarkEnded(const std::vector<std::uint32_t>& tgids,
                          const std::vector<TrackedVm*>& vms, WallClock::time_point now) const {
  // One poll() over every pidfd instead of one per VM: a thousand syscalls
  // were about a millisecond of each scrape.
  std::vector<pollfd> poll_fds;
  std::vector<TrackedVm*> polled;
  for (std::size_t i = 0; i < vms.size(); ++i) {
    TrackedVm& vm = *vms[i];
    if (vm.ended_at) continue;
    if (vm.pidfd.valid()) {
      poll_fds.push_back({vm.pidfd.get(), POLLIN, 0});
      polled.push_back(&vm);
      continue;
    }
    // No pidfd (old kernel, or the pid was reused while resolving): compare start ticks.
    const std::optional<std::uint64_t> ticks = start_ticks_(tgids[i]);
    if (!ticks || *ticks != vm.process.start_ticks) vm.ended_at = now;
  }
  if (poll_fds.empty() || ::poll(poll_fds.data(), poll_fds.size(), 0) <= 0) return;
  for (std::size_t i = 0; i < poll_fds.size(); ++i) {
    if (poll_fds[i].revents != 0) polled[i]->ended_at = now;  // readable once the process exits
  }
}

void VmTracker::UpdateBootWindow(TrackedVm& vm, const SortedReasonCounts& counts,
                                 WallClock::time_point now) {
  if (!vm.boot_tracked || vm.boot_closed) return;
  const double age = SecondsSinceEpoch(now) - vm.process.start_time_seconds;
  const double window = std::chrono::duration<double>(options_.boot_window).count();
  if (age <= window) {
    // Read inside the window: every exit so far is a boot exit, also when the
    // VM has ended (then it has made all of them).
    vm.boot_counts = counts;
    // Its end noticed at an earlier observation, this snapshot was read after
    // the VM ended: its counts are final and the window can close. (The
    // snapshot of the observation that notices the end may have been read
    // just before the VM's last exits.)
    const bool counts_final = vm.ended_at && *vm.ended_at < now;
    if (!counts_final) return;
  }
  // Otherwise the window closed since the last sample: the figure stays as
  // last seen inside it.
  CloseBootWindow(vm);
}

void VmTracker::CloseBootWindow(TrackedVm& vm) {
  vm.boot_closed = true;
  if (options_.on_boot_window_closed) options_.on_boot_window_closed(vm.boot_counts.Total());
}

VmTracker::TrackedVm& VmTracker::Track(std::uint32_t tgid, WallClock::time_point now,
                                       WallClock::time_point attach_time) {
  auto [it, inserted] = vms_.try_emplace(tgid);
  TrackedVm& vm = it->second;
  if (!inserted) return vm;
  vm.order = next_order_++;
  std::optional<VmProcess> process = resolve_(tgid);
  if (process) {
    vm.process = std::move(*process);
    vm.pidfd = OpenPidFd(tgid);
    // The pidfd could name a newer process if the pid was reused in between.
    if (start_ticks_(tgid) != vm.process.start_ticks) vm.pidfd.reset();
    // Its boot figure is known when counting ran from its start and this is
    // still inside the window: a VM first seen later (started while a
    // restarting exporter adopted the counts, say) has its window's end
    // unobserved, so its boot exits are unknown, not 0.
    const double window = std::chrono::duration<double>(options_.boot_window).count();
    vm.boot_tracked = vm.process.start_time_seconds >= SecondsSinceEpoch(attach_time) &&
                      SecondsSinceEpoch(now) - vm.process.start_time_seconds <= window;
  } else {
    vm.process.identity.name = "exited";
    vm.process.identity.platform = "unknown";
    vm.ended_at = now;
  }
  return vm;
}

void VmTracker::Observe(const SnapshotByVm& snapshot, WallClock::time_point now,
                        WallClock::time_point attach_time) {
  std::vector<std::uint32_t> tgids;
  std::vector<TrackedVm*> vms;  // tracked VM of each snapshot VM, same index
  tgids.reserve(snapshot.vms.size());
  vms.reserve(snapshot.vms.size());
  for (const SnapshotByVm::Vm& counts : snapshot.vms) {
    tgids.push_back(counts.tgid);
    vms.push_back(&Track(counts.tgid, now, attach_time));
  }
  MarkEnded(tgids, vms, now);
  for (std::size_t i = 0; i < vms.size(); ++i) {
    TrackedVm& vm = *vms[i];
    if (vm.ended_at && !vm.replaced) {
      const std::optional<std::uint64_t> ticks = start_ticks_(tgids[i]);
      vm.replaced = ticks && *ticks != vm.process.start_ticks;
    }
    UpdateBootWindow(vm, snapshot.vms[i].counts, now);
    if (!snapshot.vms[i].drilldown.empty()) {
      AdmitDrilldownItems(snapshot.vms[i].drilldown, options_.drilldown_max_keys, vm.drilldown_own);
    }
  }
}

std::vector<vm_exit_key> VmTracker::ExpiredKeys(const ExitSnapshot& snapshot,
                                                WallClock::time_point now,
                                                std::vector<std::uint32_t>* drilldown_tgids) {
  std::vector<std::uint32_t> expired_tgids;  // ascending: vms_ is ordered by tgid
  for (auto it = vms_.begin(); it != vms_.end();) {
    TrackedVm& vm = it->second;
    const bool expired =
        vm.ended_at && (vm.replaced || now - *vm.ended_at >= options_.grace_period);
    if (!expired) {
      ++it;
      continue;
    }
    // Removed before a later sample could close its window: close it with the
    // counts last seen inside it.
    if (vm.boot_tracked && !vm.boot_closed) CloseBootWindow(vm);
    expired_tgids.push_back(it->first);
    it = vms_.erase(it);
  }
  // One pass over the snapshot, not one per expired VM: many VMs can end together.
  std::vector<vm_exit_key> keys;
  if (expired_tgids.empty()) return keys;
  for (const VmExitCount& entry : snapshot.vm_counts) {
    if (std::binary_search(expired_tgids.begin(), expired_tgids.end(), entry.key.tgid)) {
      keys.push_back(entry.key);
    }
  }
  if (drilldown_tgids == nullptr) return keys;
  for (const DrilldownCount& entry : snapshot.drilldown) {
    // Entries ascend by tgid: a VM's come together.
    if (std::binary_search(expired_tgids.begin(), expired_tgids.end(), entry.tgid()) &&
        (drilldown_tgids->empty() || drilldown_tgids->back() != entry.tgid())) {
      drilldown_tgids->push_back(entry.tgid());
    }
  }
  return keys;
}

VmSeries VmTracker::OwnSeries(std::uint32_t tgid, SnapshotByVm::Vm&& counts) const {
  VmSeries series;
  series.pid = std::to_string(tgid);
  series.counts = std::move(counts.counts);
  series.per_vcpu = std::move(counts.per_vcpu);
  series.time_ns = std::move(counts.time_ns);
  const auto known = vms_.find(tgid);
  series.drilldown = FoldDrilldown(
      std::move(counts.drilldown), counts.drilldown_other,
      known != vms_.end() ? known->second.drilldown_own : std::vector<DrilldownItem>{});
  if (known != vms_.end()) {
    series.process = &known->second.process;
    series.vm = known->second.process.identity.name;
  } else {
    series.vm = "pid-" + series.pid;
  }
  return series;
}

// Boot figures of tracked VMs with their own series (in tgid order): folded VMs
// get no boot series either, so max_vms bounds every per-VM family.
std::vector<BootWindowFigures> VmTracker::Boots(
    const std::vector<std::uint32_t>& own_series) const {
  std::vector<BootWindowFigures> boots;
  for (const auto& [tgid, vm] : vms_) {
    if (!vm.boot_tracked || !std::binary_search(own_series.begin(), own_series.end(), tgid)) {
      continue;
    }
    boots.push_back(
        {vm.process.identity.name, std::to_string(tgid), vm.boot_counts, vm.boot_closed});
  }
  return boots;
}

VmView VmTracker::View(SnapshotByVm snapshot) const {
  VmView view;
  view.host_totals = HostTotals(snapshot);
  view.exit_time = std::move(snapshot.exit_time);
  view.timing_lost = snapshot.timing_lost;
  view.drilldown_lost = snapshot.drilldown_lost;

  // Oldest VMs first, so which VMs get their own series does not flap between
  // scrapes. Unknown VMs go last, in tgid order (snapshot.vms is by tgid).
  std::vector<std::pair<std::uint64_t, std::size_t>> order;  // (first-seen rank, index)
  order.reserve(snapshot.vms.size());
  for (std::size_t i = 0; i < snapshot.vms.size(); ++i) {
    const auto known = vms_.find(snapshot.vms[i].tgid);
    order.emplace_back(known == vms_.end() ? UINT64_MAX : known->second.order, i);
  }
  std::sort(order.begin(), order.end());

  VmSeries other;
  other.vm = "other";
  std::vector<std::uint32_t> own_series;
  view.vms.reserve(std::min<std::size_t>(order.size(), options_.max_vms) + 1);
  for (const auto& [rank, index] : order) {
    SnapshotByVm::Vm& counts = snapshot.vms[index];
    if (view.vms.size() >= options_.max_vms) {
      other.counts.Add(counts.counts);
      other.per_vcpu.Add(counts.per_vcpu);
      other.time_ns.Add(counts.time_ns);
      FoldAllDrilldown(counts.drilldown, other.drilldown);
      FoldAllDrilldown(counts.drilldown_other, other.drilldown);
      ++view.folded_vms;
      continue;
    }
    own_series.push_back(counts.tgid);
    view.vms.push_back(OwnSeries(counts.tgid, std::move(counts)));
  }
  if (view.folded_vms > 0) view.vms.push_back(std::move(other));
  view.tracked_vms = vms_.size();

  std::sort(own_series.begin(), own_series.end());
  view.boots = Boots(own_series);
  return view;
}

std::vector<VcpuTimeProcess> VmTracker::OwnSeriesProcesses() const {
  std::vector<std::pair<std::uint64_t, std::uint32_t>> order;  // (first-seen rank, tgid)
  order.reserve(vms_.size());
  for (const auto& [tgid, vm] : vms_) order.emplace_back(vm.order, tgid);
  std::sort(order.begin(), order.end());
  if (order.size() > options_.max_vms) order.resize(options_.max_vms);
  std::vector<VcpuTimeProcess> processes;
  processes.reserve(order.size());
  for (const auto& [rank, tgid] : order) {
    const TrackedVm& vm = vms_.at(tgid);
    processes.push_back(
        {.tgid = tgid, .start_ticks = vm.process.start_ticks, .ended = vm.ended_at.has_value()});
  }
  std::sort(processes.begin(), processes.end(),
            [](const VcpuTimeProcess& a, const VcpuTimeProcess& b) { return a.tgid < b.tgid; });
  return processes;
}

ReasonCounts VmTracker::HostTotals(const SnapshotByVm& snapshot) const { return snapshot.totals; }

}  // namespace kvmexit
