// SPDX-License-Identifier: Apache-2.0
#include "source/task_times.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <ctime>

#include "util/file_text.h"
#include "util/text.h"
#include "util/unique_fd.h"

namespace kvmexit {
namespace {

// A task's stat line is under 400 bytes; schedstat under 64.
constexpr std::size_t kMaxStatBytes = 4096;
constexpr std::size_t kMaxSchedStatBytes = 256;

// The task directories of one process, as numbers; empty when it cannot be listed.
std::vector<std::uint32_t> ListTids(int process_dir_fd) {
  std::vector<std::uint32_t> tids;
  const int task_fd = ::openat(process_dir_fd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (task_fd < 0) return tids;
  DIR* dir = ::fdopendir(task_fd);  // owns task_fd from here
  if (dir == nullptr) {
    ::close(task_fd);
    return tids;
  }
  while (const dirent* entry = ::readdir(dir)) {
    if (const auto tid = ParseDecimal<std::uint32_t>(entry->d_name)) tids.push_back(*tid);
  }
  ::closedir(dir);
  return tids;
}

}  // namespace

std::optional<TaskStatTimes> ParseTaskStatTimes(std::string_view text) noexcept {
  try {
    const auto close = text.rfind(')');
    if (close == std::string_view::npos) return std::nullopt;
    // Fields after comm, numbered as in proc(5): fields[0] is field 3 (state).
    const auto fields = SplitNonEmpty(Trim(text.substr(close + 1)), ' ');
    constexpr std::size_t kStartTime = 22 - 3, kGuestTime = 43 - 3;
    if (fields.size() <= kGuestTime) return std::nullopt;
    const auto start = ParseDecimal<std::uint64_t>(fields[kStartTime]);
    const auto guest = ParseDecimal<std::uint64_t>(fields[kGuestTime]);
    if (!start || !guest) return std::nullopt;
    return TaskStatTimes{.start_ticks = *start, .guest_ticks = *guest};
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<SchedStat> ParseSchedStat(std::string_view text) noexcept {
  try {
    const auto fields = SplitNonEmpty(Trim(text), ' ');
    if (fields.size() < 2) return std::nullopt;
    const auto on_cpu = ParseDecimal<std::uint64_t>(fields[0]);
    const auto wait = ParseDecimal<std::uint64_t>(fields[1]);
    if (!on_cpu || !wait) return std::nullopt;
    return SchedStat{.on_cpu_ns = *on_cpu, .wait_ns = *wait};
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<std::vector<TaskTimes>> ReadTaskTimes(const std::string& proc_root,
                                                    std::uint32_t tgid,
                                                    std::uint64_t start_ticks) noexcept {
  try {
    // Every read goes through this handle: if the process ends and its pid is
    // reused meanwhile, the reads fail instead of describing the newcomer.
    const std::string path = proc_root + "/" + std::to_string(tgid);
    const UniqueFd process(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!process.valid()) return std::nullopt;
    std::vector<TaskTimes> threads;
    for (const std::uint32_t tid : ListTids(process.get())) {
      const std::string task = "task/" + std::to_string(tid);
      const UniqueFd dir(::openat(process.get(), task.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!dir.valid()) continue;  // the thread ended since the listing
      const FileText stat_text = ReadFileAt(dir.get(), "stat", kMaxStatBytes);
      const auto stat = stat_text.error == 0 ? ParseTaskStatTimes(stat_text.text) : std::nullopt;
      if (!stat) continue;
      // The leader's start is the process's: another one means the pid was reused.
      if (tid == tgid && stat->start_ticks != start_ticks) return std::nullopt;
      TaskTimes times{.tid = tid, .stat = *stat, .sched = {}, .read_at_boot_ns = 0};
      if (stat->guest_ticks > 0) {
        const FileText sched_text = ReadFileAt(dir.get(), "schedstat", kMaxSchedStatBytes);
        const auto sched = sched_text.error == 0 ? ParseSchedStat(sched_text.text) : std::nullopt;
        if (!sched) continue;  // CONFIG_SCHED_INFO off, or the thread just ended
        times.sched = *sched;
      }
      // After the reads: wall time is then never shorter than what they counted.
      times.read_at_boot_ns = BootTimeNs();
      threads.push_back(times);
    }
    return threads;
  } catch (...) {
    return std::nullopt;
  }
}

std::uint64_t BootTimeNs() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_BOOTTIME, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(now.tv_nsec);
}

}  // namespace kvmexit
