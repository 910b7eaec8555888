// SPDX-License-Identifier: Apache-2.0
// Per-thread time accounting as the kernel keeps it in /proc: a thread's start,
// its guest time (/proc/PID/task/TID/stat) and its on-CPU and run-queue time
// (/proc/PID/task/TID/schedstat). Parsing is pure; ReadTaskTimes reads one
// process's threads through one directory handle. Nothing here throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvmexit {

// The fields of /proc/PID/task/TID/stat the vCPU time account needs, in clock
// ticks (USER_HZ, ClockTicksPerSecond()).
struct TaskStatTimes {
  std::uint64_t start_ticks = 0;  // field 22: when the thread started, after boot
  std::uint64_t guest_ticks = 0;  // field 43: time in guest mode (tick-sampled)
};

// Parses task stat text (comm ends at the LAST ')'). nullopt when malformed or
// shorter than field 43 (kernels before 2.6.24).
std::optional<TaskStatTimes> ParseTaskStatTimes(std::string_view text) noexcept;

// /proc/PID/task/TID/schedstat: "on-CPU ns, run-queue wait ns, timeslices".
struct SchedStat {
  std::uint64_t on_cpu_ns = 0;  // sum_exec_runtime: exact
  std::uint64_t wait_ns = 0;    // run_delay: runnable, waiting for a CPU; exact
};
std::optional<SchedStat> ParseSchedStat(std::string_view text) noexcept;

// One reading of one thread.
struct TaskTimes {
  std::uint32_t tid = 0;
  TaskStatTimes stat;
  SchedStat sched;                    // zero unless stat.guest_ticks > 0
  std::uint64_t read_at_boot_ns = 0;  // CLOCK_BOOTTIME just after the reads
};

// Reads the threads of process `tgid` under `proc_root` ("/proc"): every
// thread's stat, and the schedstat of those that have run in guest mode (only
// they are vCPU threads: the others would cost a second read for nothing).
// nullopt when the process is gone, a zombie, or no longer the process that
// started at `start_ticks` (its pid reused): then no thread is read.
std::optional<std::vector<TaskTimes>> ReadTaskTimes(const std::string& proc_root,
                                                    std::uint32_t tgid,
                                                    std::uint64_t start_ticks) noexcept;

// CLOCK_BOOTTIME in ns: the clock /proc's start times count from.
std::uint64_t BootTimeNs() noexcept;

}  // namespace kvmexit
