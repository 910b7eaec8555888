// SPDX-License-Identifier: Apache-2.0
// Where each vCPU thread's wall-clock time goes, in four modes that add up to
// it: guest (in guest mode), host (on a CPU outside guest mode: exit handling
// in KVM and in the VMM), waiting (runnable, waiting for a host CPU) and
// sleeping (neither: HLT, or blocked in the VMM). Built from the kernel's own
// per-thread accounting (task_times.h), sampled by the sampler thread: nothing
// is added per exit. docs/metrics.md, "Where the vCPU time goes".
//
// A vCPU thread is a thread of a tracked VM process whose guest time is above
// zero: what it does, not what a VMM calls it, so it holds for every VMM. The
// BPF program could tell exactly, but it keys its counters by (tgid, vcpu_id)
// and never sees a tid; adding one would cost every exit. The limit: a thread
// that has not yet been in guest mode at a timer tick is not yet known as a
// vCPU thread. Nothing is lost by that: when it is first seen, its whole
// history since it started is counted (the kernel's figures are cumulative
// since the thread started), so every counter is "since the thread started".
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "source/task_times.h"

namespace kvmexit {

enum class VcpuMode : std::size_t { kGuest, kHost, kWaiting, kSleeping };
inline constexpr std::size_t kVcpuModes = 4;
// The `mode` label values, in VcpuMode order.
inline constexpr std::array<const char*, kVcpuModes> kVcpuModeNames = {"guest", "host", "waiting",
                                                                       "sleeping"};

// Nanoseconds by mode (index: VcpuMode).
using VcpuModeNs = std::array<std::uint64_t, kVcpuModes>;

// One reading of a vCPU thread split into the four modes, each cumulative
// since the thread started:
//   guest    = stat guest_time, at most the on-CPU time (it is tick-sampled,
//              so it can run ahead of the exact on-CPU time);
//   host     = schedstat on-CPU time - guest;
//   waiting  = schedstat run delay;
//   sleeping = wall time since the thread started - on-CPU - waiting, at least 0
//              (the start time has tick resolution).
// The four add up to the wall time, but for that last clamp.
VcpuModeNs SplitModes(const TaskTimes& times, std::uint64_t ns_per_tick);

// One VM's account, for a scrape.
struct VcpuTimeVm {
  VcpuModeNs total{};  // every vCPU thread it had, ended ones at their last reading
  struct Thread {
    std::uint32_t tid = 0;
    VcpuModeNs ns{};
  };
  std::vector<Thread> threads;  // ascending tid, ended ones included
};

// The process a VM runs in, as VmTracker knows it.
struct VcpuTimeProcess {
  std::uint32_t tgid = 0;
  std::uint64_t start_ticks = 0;
  bool ended = false;  // keep its account, read nothing
};

// The accounts of every VM it is told about. Counters only grow: each mode of
// a thread is the largest value it has read (a tick-sampled guest time can
// make host or sleeping step back by a tick; they then hold until the reading
// passes them again, so the counters stay monotonic and catch up exactly).
class VcpuTimeAccounts {
 public:
  // Updates VM `process.tgid` from one reading of its threads: known threads
  // grow, new vCPU threads join; threads no longer listed have ended and keep
  // their last reading. A tid now naming a thread that started later is a new
  // thread: the old one's figures stay in the VM's total.
  void Update(const VcpuTimeProcess& process, const std::vector<TaskTimes>& threads,
              std::uint64_t ns_per_tick);
  // Drops every VM not in `processes`, and any VM whose process
  // changed (another start time: the pid was reused).
  void Keep(const std::vector<VcpuTimeProcess>& processes);

  std::map<std::uint32_t, VcpuTimeVm> View() const;

 private:
  struct Thread {
    std::uint64_t start_ticks = 0;
    VcpuModeNs ns{};
  };
  struct Vm {
    std::uint64_t start_ticks = 0;
    std::map<std::uint32_t, Thread> threads;  // by tid
    VcpuModeNs replaced{};                    // threads whose tid was reused
  };
  std::map<std::uint32_t, Vm> vms_;  // by tgid
};

// Reads the vCPU threads of the given VMs (outside any lock: a sample at
// 1,000 VMs reads thousands of /proc files) and updates the accounts, which a
// scrape reads at any time. Thread-safe.
class VcpuTimeSampler {
 public:
  explicit VcpuTimeSampler(std::string proc_root = "/proc");

  // One sample: reads every process not ended, keeps ended ones at their last
  // reading, forgets VMs no longer listed.
  void Sample(const std::vector<VcpuTimeProcess>& processes);
  std::map<std::uint32_t, VcpuTimeVm> View() const;
  // Forgets everything (collector.vcpu_time turned off by a reload).
  void Clear();

 private:
  const std::string proc_root_;
  mutable std::mutex mutex_;  // guards accounts_
  VcpuTimeAccounts accounts_;
};

}  // namespace kvmexit
