// SPDX-License-Identifier: Apache-2.0
#include "identity/process_info.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "util/file_text.h"
#include "util/text.h"
#include "util/unique_fd.h"

namespace kvmexit {
namespace {

// Bounds on what one process can make the exporter allocate. Real stat and
// cgroup files are far smaller; a longer command line is cut at the bound.
constexpr std::size_t kMaxStatBytes = 4096;
constexpr std::size_t kMaxCmdlineBytes = std::size_t{256} * 1024;
constexpr std::size_t kMaxCgroupBytes = std::size_t{64} * 1024;

UniqueFd OpenProcessDirectory(const std::string& proc_root, std::uint32_t pid) {
  const std::string path = proc_root + "/" + std::to_string(pid);
  return UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

// An exited process lingers as a zombie until reaped; it runs no VM any more.
// A zombie thread-group leader whose other threads still run is still alive.
bool HasExited(const ProcStat& stat) {
  return (stat.state == 'Z' || stat.state == 'X' || stat.state == 'x') && stat.num_threads <= 1;
}

std::optional<ProcStat> ReadLiveStatAt(int dir_fd) {
  const FileText file = ReadFileAt(dir_fd, "stat", kMaxStatBytes);
  if (file.error != 0) return std::nullopt;
  auto stat = ParseProcStat(file.text);
  if (!stat || HasExited(*stat)) return std::nullopt;
  return stat;
}

std::vector<std::string> SplitCmdline(std::string_view raw) {
  // Arguments are NUL-terminated; the last terminator yields no argument.
  if (!raw.empty() && raw.back() == '\0') raw.remove_suffix(1);
  if (raw.empty()) return {};
  std::vector<std::string> argv;
  for (const auto arg : Split(raw, '\0')) argv.emplace_back(arg);
  return argv;
}

}  // namespace

std::optional<ProcStat> ParseProcStat(std::string_view text) noexcept {
  try {
    const auto open = text.find('(');
    const auto close = text.rfind(')');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
      return std::nullopt;
    }
    // Fields after comm, numbered as in proc(5): fields[0] is field 3 (state).
    const auto fields = SplitNonEmpty(Trim(text.substr(close + 1)), ' ');
    constexpr std::size_t kState = 3 - 3, kNumThreads = 20 - 3, kStartTime = 22 - 3;
    if (fields.size() <= kStartTime || fields[kState].size() != 1) return std::nullopt;
    const auto num_threads = ParseDecimal<std::int64_t>(fields[kNumThreads]);
    const auto start_ticks = ParseDecimal<std::uint64_t>(fields[kStartTime]);
    if (!num_threads || !start_ticks) return std::nullopt;
    return ProcStat{std::string(text.substr(open + 1, close - open - 1)), fields[kState][0],
                    *num_threads, *start_ticks};
  } catch (...) {
    return std::nullopt;
  }
}

std::string SelectCgroupPath(std::string_view proc_cgroup_text) noexcept {
  try {
    std::string unified, systemd, other;
    bool any = false;
    for (const auto line : Split(proc_cgroup_text, '\n')) {
      // "hierarchy-id:controllers:path"; the path itself may contain ':'.
      const auto first = line.find(':');
      const auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
      if (second == std::string_view::npos) continue;
      any = true;
      const auto hierarchy = line.substr(0, first);
      const auto controllers = line.substr(first + 1, second - first - 1);
      const auto path = line.substr(second + 1);
      if (path.empty() || path == "/") continue;
      if (hierarchy == "0" && controllers.empty()) {
        unified = path;
      } else if (controllers == "name=systemd") {
        systemd = path;
      } else if (other.empty()) {
        other = path;
      }
    }
    for (auto* path : {&unified, &systemd, &other}) {
      if (!path->empty()) return std::move(*path);
    }
    return any ? "/" : "";
  } catch (...) {
    return {};
  }
}

std::optional<ProcessInfo> ReadProcessInfo(const std::string& proc_root,
                                           std::uint32_t pid) noexcept {
  try {
    // Every read goes through this handle: should the process exit and its pid
    // be reused meanwhile, the reads fail instead of describing the newcomer.
    const auto dir = OpenProcessDirectory(proc_root, pid);
    if (!dir.valid()) return std::nullopt;
    auto stat = ReadLiveStatAt(dir.get());
    if (!stat) return std::nullopt;
    ProcessInfo info;
    info.pid = pid;
    info.comm = std::move(stat->comm);
    info.start_ticks = stat->start_ticks;
    // A failed read leaves the text empty: a process without a command line or cgroup.
    info.argv = SplitCmdline(ReadFileAt(dir.get(), "cmdline", kMaxCmdlineBytes).text);
    info.cgroup = SelectCgroupPath(ReadFileAt(dir.get(), "cgroup", kMaxCgroupBytes).text);
    // An exit during the reads leaves an empty cmdline: do not name the VM from that.
    if (!ReadLiveStatAt(dir.get())) return std::nullopt;
    return info;
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<std::uint64_t> ReadStartTicks(const std::string& proc_root,
                                            std::uint32_t pid) noexcept {
  try {
    const auto dir = OpenProcessDirectory(proc_root, pid);
    if (!dir.valid()) return std::nullopt;
    const auto stat = ReadLiveStatAt(dir.get());
    if (!stat) return std::nullopt;
    return stat->start_ticks;
  } catch (...) {
    return std::nullopt;
  }
}

long ClockTicksPerSecond() noexcept {
  static const long ticks = [] {
    const long value = ::sysconf(_SC_CLK_TCK);
    return value > 0 ? value : 100;  // USER_HZ is 100 on every Linux ABI
  }();
  return ticks;
}

}  // namespace kvmexit
