// SPDX-License-Identifier: Apache-2.0
// Cost of collector.vcpu_time at VMS VMs x 4 vCPU threads (default 1,000):
// what one sample costs the sampler thread, and what the account adds to a
// scrape. Child processes with 4 threads each stand in for VMMs; their
// threads never ran a guest, so the sampler's real /proc walk reads each
// thread's stat and stops there. A real vCPU thread also has its schedstat
// read: that part is timed on the same threads' schedstat files, and the
// accounting of 4 vCPU threads per VM on synthetic readings, so
//   sample = walk (every thread's stat) + schedstat reads + accounting.
// Figures are CPU time of this thread (CLOCK_THREAD_CPUTIME_ID), median of
// ROUNDS rounds. docs/benchmarks.md, "vCPU time".
//
//   vcpu_time_bench [VMS [ROUNDS]]
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <cstdio>
#include <string>
#include <vector>

#include "fake_vmms.h"
#include "identity/process_info.h"
#include "model/vcpu_time.h"
#include "render/exposition_writer.h"
#include "render/vcpu_time_metrics.h"
#include "util/file_text.h"

namespace {

constexpr int kVcpus = 4;

double ThreadCpuMs() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kvmexit;
  const int vms = argc > 1 ? std::stoi(argv[1]) : 1000;
  const int rounds = argc > 2 ? std::stoi(argv[2]) : 5;
  kvmexit::bench::FakeVmms fakes(vms, kVcpus);
  std::vector<VcpuTimeProcess> processes;
  for (pid_t pid : fakes.pids()) {
    const auto start = ReadStartTicks("/proc", static_cast<std::uint32_t>(pid));
    processes.push_back(
        {.tgid = static_cast<std::uint32_t>(pid), .start_ticks = start.value_or(0)});
  }
  std::sort(processes.begin(), processes.end(),
            [](const auto& a, const auto& b) { return a.tgid < b.tgid; });

  // 1. The sampler's walk: every thread's stat, through the real code.
  VcpuTimeSampler sampler;
  std::vector<double> walk, wall_walk;
  for (int r = 0; r < rounds; ++r) {
    const double cpu = ThreadCpuMs();
    const std::uint64_t wall = BootTimeNs();
    sampler.Sample(processes);
    walk.push_back(ThreadCpuMs() - cpu);
    wall_walk.push_back(static_cast<double>(BootTimeNs() - wall) / 1e6);
  }

  // 2. The schedstat a vCPU thread adds: one per non-main thread.
  std::vector<std::string> schedstats;
  for (pid_t pid : fakes.pids()) {
    const std::string task = "/proc/" + std::to_string(pid) + "/task";
    for (const auto& entry : std::filesystem::directory_iterator(task)) {
      if (entry.path().filename() == std::to_string(pid)) continue;  // the VMM's main thread
      schedstats.push_back(entry.path().string() + "/schedstat");
    }
  }
  std::vector<double> sched;
  std::size_t read = 0;
  for (int r = 0; r < rounds; ++r) {
    const double cpu = ThreadCpuMs();
    read = 0;
    for (const std::string& path : schedstats) {
      read += ReadFileText(path, 256).error == 0 ? 1 : 0;
    }
    sched.push_back(ThreadCpuMs() - cpu);
  }

  // 3. The accounting of 4 vCPU threads per VM, on synthetic readings.
  VcpuTimeAccounts accounts;
  std::vector<double> account;
  for (int r = 0; r < rounds; ++r) {
    const std::uint64_t now =
        1'000'000'000'000ULL + static_cast<std::uint64_t>(r) * 15'000'000'000ULL;
    std::vector<std::vector<TaskTimes>> readings;
    for (const VcpuTimeProcess& process : processes) {
      std::vector<TaskTimes>& threads = readings.emplace_back();
      for (int t = 0; t <= kVcpus; ++t) {
        threads.push_back({.tid = process.tgid + static_cast<std::uint32_t>(t),
                           .stat = {.start_ticks = 100, .guest_ticks = t == 0 ? 0u : 5000u + r},
                           .sched = {.on_cpu_ns = 60'000'000'000ULL, .wait_ns = 1'000'000'000ULL},
                           .read_at_boot_ns = now});
      }
    }
    const double cpu = ThreadCpuMs();
    accounts.Keep(processes);
    for (std::size_t i = 0; i < processes.size(); ++i) {
      accounts.Update(processes[i], readings[i], 10'000'000);
    }
    account.push_back(ThreadCpuMs() - cpu);
  }

  // 4. What a scrape adds: the accounts' copy and their series.
  VmView view;
  VmProcess process;
  for (const VcpuTimeProcess& p : processes) {
    VmSeries& series = view.vms.emplace_back();
    series.vm = "vm-" + std::to_string(p.tgid);
    series.pid = std::to_string(p.tgid);
    series.process = &process;
  }
  std::vector<double> scrape_off, scrape_on;
  std::size_t bytes_off = 0, bytes_on = 0;
  for (int r = 0; r < rounds; ++r) {
    for (bool per_vcpu : {false, true}) {
      const double cpu = ThreadCpuMs();
      ExpositionWriter out;
      WriteVcpuTimeFamilies(view, accounts.View(), per_vcpu, out);
      (per_vcpu ? scrape_on : scrape_off).push_back(ThreadCpuMs() - cpu);
      (per_vcpu ? bytes_on : bytes_off) = out.text().size();
    }
  }

  const double sample = Median(walk) + Median(sched) + Median(account);
  std::printf(
      "| VMs | threads | walk (stat) ms | walk wall ms | schedstat ms | accounting ms | "
      "sample ms | CPU share at 15s | scrape ms (per_vcpu off / on) | bytes (off / on) |\n");
  std::printf(
      "| %d | %d | %.1f | %.1f | %.1f (%zu files) | %.2f | %.1f | %.2f%% | %.2f / %.2f | %zu / %zu "
      "|\n",
      vms, vms * (kVcpus + 1), Median(walk), Median(wall_walk), Median(sched), read,
      Median(account), sample, sample / 15'000.0 * 100.0, Median(scrape_off), Median(scrape_on),
      bytes_off, bytes_on);
  return 0;
}
