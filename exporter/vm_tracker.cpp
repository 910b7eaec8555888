#include "vm_tracker.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

namespace kvmexit {
namespace {

UniqueFd OpenPidFd(std::uint32_t pid) {
#ifdef SYS_pidfd_open
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0)));
#else
  return UniqueFd();
#endif
}

std::map<std::uint32_t, ReasonCounts> CountsByTgid(const ExitSnapshot& snapshot) {
  std::map<std::uint32_t, ReasonCounts> by_tgid;
  for (const VmExitCount& entry : snapshot.vm_counts) {
    by_tgid[entry.key.tgid][ReasonOf(entry.key)] += entry.count;
  }
  return by_tgid;
}

void AddInto(ReasonCounts& into, const ReasonCounts& from) {
  for (const auto& [reason, count] : from) into[reason] += count;
}

double SecondsSinceEpoch(VmTracker::WallClock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

VmTracker::VmTracker(VmTrackerOptions options, ProcessResolver resolve,
                     StartTicksReader start_ticks)
    : options_(options), resolve_(std::move(resolve)), start_ticks_(std::move(start_ticks)) {}

bool VmTracker::HasEnded(TrackedVm& vm, std::uint32_t pid) const {
  if (vm.pidfd.valid()) {
    pollfd poll_fd{vm.pidfd.get(), POLLIN, 0};
    return ::poll(&poll_fd, 1, 0) > 0;
  }
  const std::optional<std::uint64_t> ticks = start_ticks_(pid);
  return !ticks || *ticks != vm.process.start_ticks;
}

void VmTracker::UpdateBootWindow(TrackedVm& vm, const ReasonCounts& counts,
                                 WallClock::time_point now) {
  if (!vm.boot_tracked || vm.boot_closed) return;
  const double age = SecondsSinceEpoch(now) - vm.process.start_time_seconds;
  const double window = std::chrono::duration<double>(options_.boot_window).count();
  if (age <= window && !vm.ended_at) {
    vm.boot_counts = counts;
    return;
  }
  // The window closed since the last sample: the figure stays as last seen inside it.
  vm.boot_closed = true;
  const auto total = static_cast<double>(Sum(vm.boot_counts));
  const std::vector<double>& bounds = BootHistogramBounds();
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (total <= bounds[i]) ++boot_histogram_.bucket_counts[i];
  }
  ++boot_histogram_.count;
  boot_histogram_.sum += total;
}

void VmTracker::Observe(const ExitSnapshot& snapshot, WallClock::time_point now,
                        WallClock::time_point attach_time) {
  const auto by_tgid = CountsByTgid(snapshot);
  for (const auto& [tgid, counts] : by_tgid) {
    auto [it, inserted] = vms_.try_emplace(tgid);
    TrackedVm& vm = it->second;
    if (inserted) {
      vm.order = next_order_++;
      std::optional<VmProcess> process = resolve_(tgid);
      if (process) {
        vm.process = std::move(*process);
        vm.pidfd = OpenPidFd(tgid);
        // The pidfd could name a newer process if the pid was reused in between.
        if (start_ticks_(tgid) != vm.process.start_ticks) vm.pidfd.reset();
        vm.boot_tracked = vm.process.start_time_seconds >= SecondsSinceEpoch(attach_time);
      } else {
        vm.process.name = "exited";
        vm.process.platform = "unknown";
        vm.ended_at = now;
      }
    }
    if (!vm.ended_at && HasEnded(vm, tgid)) vm.ended_at = now;
    if (vm.ended_at && !vm.replaced) {
      const std::optional<std::uint64_t> ticks = start_ticks_(tgid);
      vm.replaced = ticks && *ticks != vm.process.start_ticks;
    }
    UpdateBootWindow(vm, counts, now);
  }
}

std::vector<vm_exit_key> VmTracker::ExpiredKeys(const ExitSnapshot& snapshot,
                                                WallClock::time_point now) {
  std::vector<vm_exit_key> keys;
  for (auto it = vms_.begin(); it != vms_.end();) {
    TrackedVm& vm = it->second;
    const bool expired =
        vm.ended_at && (vm.replaced || now - *vm.ended_at >= options_.grace_period);
    if (!expired) {
      ++it;
      continue;
    }
    if (vm.boot_tracked && !vm.boot_closed) UpdateBootWindow(vm, vm.boot_counts, now);
    for (const VmExitCount& entry : snapshot.vm_counts) {
      if (entry.key.tgid == it->first) keys.push_back(entry.key);
    }
    it = vms_.erase(it);
  }
  return keys;
}

void VmTracker::Retire(const std::vector<VmExitCount>& removed) {
  for (const VmExitCount& entry : removed) retired_[ReasonOf(entry.key)] += entry.count;
}

VmView VmTracker::View(const ExitSnapshot& snapshot) const {
  VmView view;
  view.host_totals = retired_;
  AddInto(view.host_totals, snapshot.overflow);

  std::map<std::uint32_t, VmSeries> by_tgid;
  for (const VmExitCount& entry : snapshot.vm_counts) {
    view.host_totals[ReasonOf(entry.key)] += entry.count;
    VmSeries& series = by_tgid[entry.key.tgid];
    series.counts[ReasonOf(entry.key)] += entry.count;
    if (entry.key.vcpu_id != KVM_EXIT_ALL_VCPUS) {
      series.per_vcpu[entry.key.vcpu_id][ReasonOf(entry.key)] += entry.count;
    }
  }

  // Oldest VMs first, so which VMs get their own series does not flap between scrapes.
  std::vector<std::pair<std::uint64_t, std::uint32_t>> order;
  for (const auto& [tgid, series] : by_tgid) {
    const auto known = vms_.find(tgid);
    order.emplace_back(known == vms_.end() ? UINT64_MAX : known->second.order, tgid);
  }
  std::sort(order.begin(), order.end());

  VmSeries other;
  other.vm = "other";
  std::vector<std::uint32_t> own_series;
  for (const auto& [rank, tgid] : order) {
    VmSeries& series = by_tgid[tgid];
    if (view.vms.size() >= options_.max_vms) {
      AddInto(other.counts, series.counts);
      for (const auto& [vcpu, counts] : series.per_vcpu) AddInto(other.per_vcpu[vcpu], counts);
      ++view.folded_vms;
      continue;
    }
    own_series.push_back(tgid);
    const auto known = vms_.find(tgid);
    series.pid = std::to_string(tgid);
    if (known != vms_.end()) {
      series.process = &known->second.process;
      series.vm = known->second.process.name;
    } else {
      series.vm = "pid-" + series.pid;
    }
    view.vms.push_back(std::move(series));
  }
  if (view.folded_vms > 0) view.vms.push_back(std::move(other));
  view.tracked_vms = vms_.size();

  // Folded VMs get no boot series either: max_vms bounds every per-VM family.
  for (const auto& [tgid, vm] : vms_) {
    if (!vm.boot_tracked ||
        std::find(own_series.begin(), own_series.end(), tgid) == own_series.end())
      continue;
    view.boots.push_back({vm.process.name, std::to_string(tgid), vm.boot_counts, vm.boot_closed});
  }
  return view;
}

}  // namespace kvmexit
