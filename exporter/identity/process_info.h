// SPDX-License-Identifier: Apache-2.0
// Process reading: what /proc says about one process (name, command line,
// cgroup, start time), read once through one directory handle so that a pid
// reused mid-read cannot mix two processes; the identity sources work on the
// ProcessInfo read here and never touch /proc themselves. Nothing here throws:
// a process that vanishes while being read is nullopt.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvmexit {

// What /proc says about a process, read once.
struct ProcessInfo {
  std::uint32_t pid = 0;
  std::string comm;               // as in /proc/PID/stat (kernel-truncated to 15 bytes)
  std::vector<std::string> argv;  // /proc/PID/cmdline split at NULs
  std::string cgroup;             // see SelectCgroupPath
  std::uint64_t start_ticks = 0;  // /proc/PID/stat field 22: clock ticks after boot
};

// The fields of /proc/PID/stat the exporter needs.
struct ProcStat {
  std::string comm;
  char state = '?';
  std::int64_t num_threads = 0;
  std::uint64_t start_ticks = 0;
};

// Parses /proc/PID/stat text. comm may hold spaces and parentheses, so it ends
// at the LAST ')'. nullopt when malformed.
std::optional<ProcStat> ParseProcStat(std::string_view text) noexcept;

// Picks the cgroup path that names the process from /proc/PID/cgroup text:
// the cgroup v2 line ("0::/...") unless it is the root, else the v1
// name=systemd line, else the first other non-root v1 path; "/" when all are root.
std::string SelectCgroupPath(std::string_view proc_cgroup_text) noexcept;

// Reads /proc/PID/{stat,cmdline,cgroup} under `proc_root` through one directory
// handle, so a pid reused mid-read cannot mix two processes. nullopt when the
// process does not exist or has exited (zombie).
std::optional<ProcessInfo> ReadProcessInfo(const std::string& proc_root,
                                           std::uint32_t pid) noexcept;

// /proc/PID/stat starttime of a live process; nullopt when gone or a zombie.
// Matches VmTracker's StartTicksReader.
std::optional<std::uint64_t> ReadStartTicks(const std::string& proc_root,
                                            std::uint32_t pid) noexcept;

// sysconf(_SC_CLK_TCK): the unit of ProcessInfo::start_ticks.
long ClockTicksPerSecond() noexcept;

}  // namespace kvmexit
