// SPDX-License-Identifier: Apache-2.0
#include "model/vcpu_time.h"

#include <algorithm>
#include <utility>

#include "identity/process_info.h"

namespace kvmexit {
namespace {

void AddInto(VcpuModeNs& sum, const VcpuModeNs& add) {
  for (std::size_t m = 0; m < kVcpuModes; ++m) sum[m] += add[m];
}

std::size_t Index(VcpuMode mode) { return static_cast<std::size_t>(mode); }

}  // namespace

VcpuModeNs SplitModes(const TaskTimes& times, std::uint64_t ns_per_tick) {
  const std::uint64_t on_cpu = times.sched.on_cpu_ns;
  const std::uint64_t wait = times.sched.wait_ns;
  const std::uint64_t start_ns = times.stat.start_ticks * ns_per_tick;
  const std::uint64_t wall =
      times.read_at_boot_ns > start_ns ? times.read_at_boot_ns - start_ns : 0;
  VcpuModeNs ns{};
  ns[Index(VcpuMode::kGuest)] = std::min(times.stat.guest_ticks * ns_per_tick, on_cpu);
  ns[Index(VcpuMode::kHost)] = on_cpu - ns[Index(VcpuMode::kGuest)];
  ns[Index(VcpuMode::kWaiting)] = wait;
  ns[Index(VcpuMode::kSleeping)] = wall > on_cpu + wait ? wall - on_cpu - wait : 0;
  return ns;
}

void VcpuTimeAccounts::Update(const VcpuTimeProcess& process, const std::vector<TaskTimes>& threads,
                              std::uint64_t ns_per_tick) {
  Vm& vm = vms_[process.tgid];
  if (vm.start_ticks != process.start_ticks)
    vm = Vm{.start_ticks = process.start_ticks, .threads = {}, .replaced = {}};
  for (const TaskTimes& times : threads) {
    if (times.stat.guest_ticks == 0) continue;  // not (yet) a vCPU thread
    const auto [it, added] = vm.threads.try_emplace(times.tid);
    Thread& thread = it->second;
    if (!added && thread.start_ticks != times.stat.start_ticks) {
      // The tid names a newer thread: the old one ended at its last reading.
      AddInto(vm.replaced, thread.ns);
      thread = Thread{};
    }
    thread.start_ticks = times.stat.start_ticks;
    const VcpuModeNs now = SplitModes(times, ns_per_tick);
    for (std::size_t m = 0; m < kVcpuModes; ++m) thread.ns[m] = std::max(thread.ns[m], now[m]);
  }
}

void VcpuTimeAccounts::Keep(const std::vector<VcpuTimeProcess>& processes) {
  std::map<std::uint32_t, std::uint64_t> wanted;
  for (const VcpuTimeProcess& process : processes) wanted[process.tgid] = process.start_ticks;
  std::erase_if(vms_, [&](const auto& entry) {
    const auto it = wanted.find(entry.first);
    return it == wanted.end() || it->second != entry.second.start_ticks;
  });
}

std::map<std::uint32_t, VcpuTimeVm> VcpuTimeAccounts::View() const {
  std::map<std::uint32_t, VcpuTimeVm> view;
  for (const auto& [tgid, vm] : vms_) {
    VcpuTimeVm& out = view[tgid];
    out.total = vm.replaced;
    out.threads.reserve(vm.threads.size());
    for (const auto& [tid, thread] : vm.threads) {
      AddInto(out.total, thread.ns);
      out.threads.push_back({tid, thread.ns});
    }
  }
  return view;
}

VcpuTimeSampler::VcpuTimeSampler(std::string proc_root) : proc_root_(std::move(proc_root)) {}

void VcpuTimeSampler::Sample(const std::vector<VcpuTimeProcess>& processes) {
  const std::uint64_t ns_per_tick =
      1'000'000'000u / static_cast<std::uint64_t>(ClockTicksPerSecond());
  // Read everything first, without the lock: a scrape never waits for /proc.
  std::vector<std::pair<const VcpuTimeProcess*, std::vector<TaskTimes>>> readings;
  readings.reserve(processes.size());
  for (const VcpuTimeProcess& process : processes) {
    if (process.ended) continue;
    if (auto threads = ReadTaskTimes(proc_root_, process.tgid, process.start_ticks)) {
      readings.emplace_back(&process, std::move(*threads));
    }
    // Unreadable (ended since VmTracker looked): the account keeps its last reading.
  }
  std::lock_guard lock(mutex_);
  accounts_.Keep(processes);
  for (const auto& [process, threads] : readings) accounts_.Update(*process, threads, ns_per_tick);
}

std::map<std::uint32_t, VcpuTimeVm> VcpuTimeSampler::View() const {
  std::lock_guard lock(mutex_);
  return accounts_.View();
}

void VcpuTimeSampler::Clear() {
  std::lock_guard lock(mutex_);
  accounts_ = VcpuTimeAccounts{};
}

}  // namespace kvmexit
