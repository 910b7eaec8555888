// SPDX-License-Identifier: Apache-2.0
// Scrape cost at realistic map shapes: 10, 100 and 1,000 VMs x 4 vCPUs x 20
// reasons, per-vCPU counting off and on. For each shape it reports scrape
// latency (median, p99) over HTTP, plain and gzip (Prometheus asks for gzip),
// response bytes, the exporter's CPU time per plain scrape, its resident memory
// (now and peak), and the floor: reading the same maps with batch lookups
// alone. Then, per per-vCPU setting, the cost per exposed series and how it
// grew from one shape to the next (1.0 = linear in the series count). Needs
// root (loads the real BPF program).
//
// The exporter runs in a child process of its own, so its memory and CPU
// figures leave out this client's buffers and the floor measurement.
//
// Then the drill-down (collector.drilldown, issue 14): 1,000 VMs with 32 io
// keys each (collector.drilldown_max_keys, all get a series), with 48 (16 fold
// into port="other"), and with 32 keys of each of the five kinds, against the
// same 1,000 VMs without it.
//
//   scrape_bench [SCRAPES [VMS [off|on [KEYS [KINDS]]]]]
//
// With VMS only that one shape runs (per-vCPU off unless "on"; KEYS > 0 turns
// the drill-down on with that many keys per VM and kind, for the first KINDS
// kinds, default 1: io), e.g. under `perf record -g` or valgrind.
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "app/exporter_app.h"
#include "fake_vmms.h"
#include "source/bpf_exit_source.h"
#include "source/map_reader.h"
#include "source/sharded_array.h"
#include "util/unique_fd.h"

namespace {

using Clock = std::chrono::steady_clock;
using kvmexit::VmExitCount;

constexpr int kVcpusPerVm = 4;
constexpr int kReasonsPerVm = 20;
constexpr std::uint32_t kMapCapacity = 131072;   // room for the largest shape's 80,000 entries
constexpr std::uint32_t kDrilldownMaxKeys = 32;  // collector.drilldown_max_keys default

std::vector<VmExitCount> MapContents(const std::vector<pid_t>& pids, bool per_vcpu) {
  std::vector<VmExitCount> counts;
  for (pid_t pid : pids) {
    for (int vcpu = 0; vcpu < (per_vcpu ? kVcpusPerVm : 1); ++vcpu) {
      for (int reason = 0; reason < kReasonsPerVm; ++reason) {
        const vm_exit_key key{static_cast<std::uint32_t>(pid),
                              per_vcpu ? static_cast<std::uint32_t>(vcpu) : KVM_EXIT_ALL_VCPUS,
                              KVM_EXIT_ISA_SVM, static_cast<std::uint32_t>(0x60 + reason)};
        counts.push_back({key, 1'000'003ULL * static_cast<std::uint64_t>(reason + 1) +
                                   static_cast<std::uint64_t>(pid)});
      }
    }
  }
  return counts;
}

// The drill-down item `k` of a kind, realistic in shape: two directions where
// the kind has them (k odd: write), distinct items otherwise.
std::uint64_t DrilldownItem(std::uint32_t kind, int k) {
  const auto half = static_cast<std::uint64_t>(k / 2);
  const bool odd = (k % 2) != 0;
  switch (kind) {
    case KVM_DRILLDOWN_IO:
      return (0x100ULL + half) | (odd ? KVM_DRILLDOWN_IO_WRITE : 0);
    case KVM_DRILLDOWN_MSR:
      return (0x800ULL + half) | (odd ? KVM_DRILLDOWN_MSR_WRITE : 0);
    case KVM_DRILLDOWN_MMIO:
      return (0xfe000ULL + half) | (odd ? KVM_DRILLDOWN_MMIO_WRITE : 0);
    default:  // hypercall numbers, KVM_EXIT_* reasons
      return static_cast<std::uint64_t>(k);
  }
}

// `keys` drill-down entries per VM and kind, for the first `kinds` kinds
// (io, msr, mmio, hypercall, userspace), counts distinct so that admission
// order is decided by count.
std::vector<kvmexit::DrilldownCount> DrilldownContents(const std::vector<pid_t>& pids, int keys,
                                                       int kinds) {
  std::vector<kvmexit::DrilldownCount> counts;
  for (pid_t pid : pids) {
    for (std::uint32_t kind = 0; kind < static_cast<std::uint32_t>(kinds); ++kind) {
      for (int k = 0; k < keys; ++k) {
        counts.push_back(
            {static_cast<std::uint32_t>(pid),
             {kind, DrilldownItem(kind, k)},
             10'007ULL * static_cast<std::uint64_t>(keys - k) + static_cast<std::uint64_t>(pid)});
      }
    }
  }
  return counts;
}

// The first `kinds` drill-down kinds, as config lists them.
std::vector<kvmexit::DrilldownKind> FirstKinds(int kinds) {
  return {kvmexit::kAllDrilldownKinds.begin(),
          kvmexit::kAllDrilldownKinds.begin() +
              std::clamp(kinds, 0, static_cast<int>(kvmexit::kAllDrilldownKinds.size()))};
}

std::string HttpGet(int port, const std::string& path, bool gzip) {
  kvmexit::UniqueFd sock(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return "";
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: bench\r\n" +
                              (gzip ? "Accept-Encoding: gzip\r\n" : "") + "\r\n";
  ::send(sock.get(), request.data(), request.size(), 0);
  // Parse the header once, then read exactly Content-Length bytes: re-parsing
  // on every recv would cost the client time quadratic in the body size.
  std::string response;
  std::size_t body_at = std::string::npos;
  std::size_t content_length = 0;
  char buffer[65536];
  ssize_t n;
  while ((n = ::recv(sock.get(), buffer, sizeof(buffer), 0)) > 0) {
    response.append(buffer, static_cast<std::size_t>(n));
    if (body_at == std::string::npos) {
      const std::size_t header_end = response.find("\r\n\r\n");
      if (header_end == std::string::npos) continue;
      const std::size_t length_at = response.find("Content-Length: ");
      if (length_at == std::string::npos || length_at > header_end) return "";
      body_at = header_end + 4;
      content_length = std::stoul(response.substr(length_at + 16, header_end - length_at - 16));
      response.reserve(body_at + content_length);
    }
    if (response.size() >= body_at + content_length) {
      return response.substr(body_at, content_length);
    }
  }
  return "";
}

// CPU time of every thread of `pid` so far, from the scheduler's nanosecond counters.
double CpuSeconds(pid_t pid) {
  std::uint64_t nanoseconds = 0;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
    std::ifstream schedstat(task.path() / "schedstat");
    std::uint64_t on_cpu = 0;
    if (schedstat >> on_cpu) nanoseconds += on_cpu;
  }
  return static_cast<double>(nanoseconds) / 1e9;
}

// A /proc/PID/status field in MiB (VmRSS: resident now, VmHWM: peak).
double StatusMib(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(field.size())) / 1024.0;
  }
  return -1.0;
}

// The exporter under test, in a child process: started, its map filled, then
// serving until the destructor stops it.
class ExporterProcess {
 public:
  ExporterProcess(const kvmexit::Config& config, const std::vector<VmExitCount>& contents,
                  const std::vector<kvmexit::DrilldownCount>& drilldown) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    kvmexit::UniqueFd read_end(fds[0]);
    kvmexit::UniqueFd write_end(fds[1]);
    pid_ = ::fork();
    if (pid_ == 0) {
      read_end.reset();
      ::_exit(Serve(config, contents, drilldown, write_end.get()));
    }
    write_end.reset();
    if (pid_ < 0) return;
    // The child reports its port (or -1 and why) once it serves the filled map.
    int port = -1;
    if (::read(read_end.get(), &port, sizeof(port)) == sizeof(port)) port_ = port;
    char why[512] = {};
    if (port_ < 0 && ::read(read_end.get(), why, sizeof(why) - 1) > 0) error_ = why;
  }
  ~ExporterProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  ExporterProcess(const ExporterProcess&) = delete;
  ExporterProcess& operator=(const ExporterProcess&) = delete;

  pid_t pid() const { return pid_; }
  int port() const { return port_; }  // -1 when it failed to start
  const std::string& error() const { return error_; }

 private:
  static int Serve(const kvmexit::Config& config, const std::vector<VmExitCount>& contents,
                   const std::vector<kvmexit::DrilldownCount>& drilldown, int report_fd) {
    mallopt(M_ARENA_MAX, 2);  // as kvm_exit_exporter's main() does
    // Blocked before the exporter starts its threads, so they inherit the mask
    // and SIGTERM is taken only by sigwait below.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    kvmexit::ExporterApp app(config);
    std::string error = app.Start();
    if (error.empty()) error = app.FillMapsForTesting(contents, drilldown);
    const int port = error.empty() ? app.port() : -1;
    if (::write(report_fd, &port, sizeof(port)) != sizeof(port)) return 1;
    if (!error.empty()) {
      ::write(report_fd, error.data(), error.size());
      return 1;
    }
    int signal = 0;
    sigwait(&stop, &signal);
    return 0;
  }

  pid_t pid_ = -1;
  int port_ = -1;
  std::string error_;
};

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const auto index =
      static_cast<std::size_t>(std::lround(p * static_cast<double>(values.size() - 1)));
  return values[std::min(index, values.size() - 1)];
}

double Millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Sample lines in an exposition: every line that is not a comment.
std::size_t CountSeries(const std::string& exposition) {
  std::size_t series = 0;
  std::size_t line_start = 0;
  while (line_start < exposition.size()) {
    const std::size_t line_end = exposition.find('\n', line_start);
    if (exposition[line_start] != '#') ++series;
    if (line_end == std::string::npos) break;
    line_start = line_end + 1;
  }
  return series;
}

struct ShapeResult {
  int vms = 0;
  bool per_vcpu = false;
  int io_keys = 0;  // drill-down entries per VM and kind; 0: drill-down off
  int kinds = 0;    // drill-down kinds on (io first)
  std::size_t series = 0;
  double median_ms = 0.0;
  double cpu_ms = 0.0;
};

// Median and p99 latency of `scrapes` scrapes; `last_body` gets the last response.
std::pair<double, double> TimeScrapes(int port, bool gzip, int scrapes, std::string* last_body) {
  std::vector<double> latencies;
  for (int i = 0; i < scrapes; ++i) {
    const auto start = Clock::now();
    *last_body = HttpGet(port, "/metrics", gzip);
    latencies.push_back(Millis(Clock::now() - start));
  }
  return {Percentile(latencies, 0.5), Percentile(latencies, 0.99)};
}

// The floor: median time to read the same maps with batch lookups alone.
double RawReadMillis(const std::vector<VmExitCount>& contents,
                     const std::vector<kvmexit::DrilldownCount>& drilldown, int kinds,
                     bool per_vcpu, int reads) {
  kvmexit::BpfSourceOptions options{.vm_map_capacity = kMapCapacity, .per_vcpu = per_vcpu};
  if (!drilldown.empty()) options.drilldown = FirstKinds(kinds);
  kvmexit::BpfExitSource source(options);
  source.Attach();
  source.FillForTesting(contents, drilldown);
  std::vector<double> latencies;
  for (int i = 0; i < reads; ++i) {
    kvmexit::ExitSnapshot snapshot;
    const auto start = Clock::now();
    source.Read(&snapshot);
    latencies.push_back(Millis(Clock::now() - start));
  }
  return Percentile(latencies, 0.5);
}

std::optional<ShapeResult> RunShape(int vms, bool per_vcpu, int scrapes, int io_keys = 0,
                                    int kinds = 1) {
  // Child processes stand in for VMMs, so VM naming and liveness run for real.
  kvmexit::bench::FakeVmms vmms(vms);
  const std::vector<VmExitCount> contents = MapContents(vmms.pids(), per_vcpu);
  const std::vector<kvmexit::DrilldownCount> drilldown =
      DrilldownContents(vmms.pids(), io_keys, io_keys > 0 ? kinds : 0);

  kvmexit::Config config;
  config.web.listen_address = {.host = "127.0.0.1", .port = 0};  // a free port
  config.collector.per_vcpu = per_vcpu;
  config.collector.vm_map_capacity = kMapCapacity;
  if (io_keys > 0) config.collector.drilldown = FirstKinds(kinds);
  config.collector.drilldown_max_keys = kDrilldownMaxKeys;
  config.rates.sample_interval = std::chrono::milliseconds(60'000);  // keep the sampler quiet
  config.rates.window = std::chrono::milliseconds(120'000);
  std::optional<ShapeResult> result;
  double memory_mib = 0.0;
  double peak_memory_mib = 0.0;
  double gzip_median = 0.0;
  std::size_t plain_bytes = 0;
  std::size_t gzip_bytes = 0;
  double p99 = 0.0;
  {
    const ExporterProcess exporter(config, contents, drilldown);
    if (exporter.port() < 0) {
      std::fprintf(stderr, "exporter failed (is the BPF program attached?): %s\n",
                   exporter.error().c_str());
      return std::nullopt;
    }
    std::string body;
    for (int i = 0; i < 3; ++i) HttpGet(exporter.port(), "/metrics", false);  // warm up
    const double cpu_before = CpuSeconds(exporter.pid());
    const auto [median, plain_p99] = TimeScrapes(exporter.port(), false, scrapes, &body);
    const double cpu_ms = (CpuSeconds(exporter.pid()) - cpu_before) * 1000.0 / scrapes;
    plain_bytes = body.size();
    result = ShapeResult{.vms = vms,
                         .per_vcpu = per_vcpu,
                         .io_keys = io_keys,
                         .kinds = io_keys > 0 ? kinds : 0,
                         .series = CountSeries(body),
                         .median_ms = median,
                         .cpu_ms = cpu_ms};
    p99 = plain_p99;
    body = std::string();
    gzip_median = TimeScrapes(exporter.port(), true, scrapes, &body).first;
    gzip_bytes = body.size();
    memory_mib = StatusMib(exporter.pid(), "VmRSS:");
    peak_memory_mib = StatusMib(exporter.pid(), "VmHWM:");
  }
  const double read_median =
      RawReadMillis(contents, drilldown, io_keys > 0 ? kinds : 0, per_vcpu, scrapes);
  std::printf(
      "| %5d | %-3s | %2d x %d | %7zu | %7zu | %8.2f | %8.2f | %8.2f | %9zu | %8zu | %8.2f | %7.1f "
      "| "
      "%7.1f | "
      "%8.3f | %6.1f |\n",
      vms, per_vcpu ? "on" : "off", io_keys, result->kinds, contents.size() + drilldown.size(),
      result->series, result->median_ms, p99, gzip_median, plain_bytes, gzip_bytes, result->cpu_ms,
      memory_mib, peak_memory_mib, read_median, result->median_ms / read_median);
  std::fflush(stdout);
  return result;
}

// Cost per exposed series at each shape, and how much faster than the series
// count the cost grew since the previous (smaller) shape: 1.0 is linear, more
// is worse. The smallest shape has no previous one; its per-series cost is
// dominated by what every scrape pays (self metrics, HTTP).
void PrintGrowth(const std::vector<ShapeResult>& results) {
  std::printf(
      "\n| per-vCPU | VMs | series | median us/series | CPU us/series | median growth / series "
      "growth | CPU growth / series growth |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  const ShapeResult* previous = nullptr;
  for (const ShapeResult& result : results) {
    if (previous != nullptr && previous->per_vcpu != result.per_vcpu) previous = nullptr;
    const auto per_series = [&](double ms) {
      return ms * 1000.0 / static_cast<double>(result.series);
    };
    std::string median_growth = "-";
    std::string cpu_growth = "-";
    if (previous != nullptr) {
      const double series_growth =
          static_cast<double>(result.series) / static_cast<double>(previous->series);
      char text[32];
      std::snprintf(text, sizeof(text), "%.2f",
                    result.median_ms / previous->median_ms / series_growth);
      median_growth = text;
      std::snprintf(text, sizeof(text), "%.2f", result.cpu_ms / previous->cpu_ms / series_growth);
      cpu_growth = text;
    }
    std::printf("| %-3s | %5d | %7zu | %6.2f | %6.2f | %s | %s |\n", result.per_vcpu ? "on" : "off",
                result.vms, result.series, per_series(result.median_ms), per_series(result.cpu_ms),
                median_growth.c_str(), cpu_growth.c_str());
    previous = &result;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int scrapes = argc > 1 ? std::max(5, std::atoi(argv[1])) : 50;
  const int only_vms = argc > 2 ? std::atoi(argv[2]) : 0;
  const bool only_per_vcpu = argc > 3 && std::string(argv[3]) == "on";
  const int only_io_keys = argc > 4 ? std::max(0, std::atoi(argv[4])) : 0;
  const int only_kinds = argc > 5 ? std::clamp(std::atoi(argv[5]), 1, 5) : 1;
  if (::geteuid() != 0) {
    std::fprintf(stderr, "scrape_bench: needs root to load the BPF program\n");
    return 1;
  }
  // The width per-CPU maps are sized by (possible CPUs, not online ones),
  // and the counter shards it gives (issue 29): the figures depend on both.
  std::printf(
      "scrape_bench: %d scrapes per shape, %d vCPUs x %d reasons per VM, %ld CPUs online, "
      "width: %d possible CPUs, %u counter shards\n\n",
      scrapes, kVcpusPerVm, kReasonsPerVm, ::sysconf(_SC_NPROCESSORS_ONLN), kvmexit::PossibleCpus(),
      kvmexit::CounterShards(kvmexit::PossibleCpus()));
  std::printf(
      "|   VMs | per-vCPU | drill-down keys/VM x kinds | map entries | series | median ms | p99 ms "
      "| gzip median "
      "ms | bytes | "
      "gzip bytes | CPU ms/scrape | RSS MiB | peak RSS MiB | raw read ms | scrape / raw |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<ShapeResult> results;
  const auto run = [&](int vms, bool per_vcpu) {
    if (std::optional<ShapeResult> result = RunShape(vms, per_vcpu, scrapes)) {
      results.push_back(*result);
    }
  };
  if (only_vms > 0) {
    if (std::optional<ShapeResult> result =
            RunShape(only_vms, only_per_vcpu, scrapes, only_io_keys, only_kinds))
      results.push_back(*result);
    return results.empty() ? 1 : 0;
  }
  for (bool per_vcpu : {false, true}) {
    for (int vms : {10, 100, 1000}) run(vms, per_vcpu);
  }
  PrintGrowth(results);
  // The drill-down at 1,000 VMs (per-vCPU off): io with max_keys keys each,
  // then half as many again (the excess folds into port="other"); then all
  // five kinds with max_keys keys each (issue 14's worst case).
  std::vector<ShapeResult> drilled;
  for (const auto& [keys, kinds] : {std::pair{static_cast<int>(kDrilldownMaxKeys), 1},
                                    std::pair{static_cast<int>(kDrilldownMaxKeys * 3 / 2), 1},
                                    std::pair{static_cast<int>(kDrilldownMaxKeys), 5}}) {
    if (std::optional<ShapeResult> result = RunShape(1000, false, scrapes, keys, kinds)) {
      drilled.push_back(*result);
    }
  }
  const ShapeResult* base = nullptr;
  for (const ShapeResult& result : results) {
    if (result.vms == 1000 && !result.per_vcpu) base = &result;
  }
  if (base != nullptr) {
    std::printf(
        "\n| keys/VM x kinds | series | added series | median ms | added median ms | CPU ms | "
        "added CPU ms | added CPU us/added series |\n|---|---|---|---|---|---|---|---|\n");
    for (const ShapeResult& result : drilled) {
      const double added_series =
          static_cast<double>(result.series) - static_cast<double>(base->series);
      std::printf("| %d x %d | %zu | %.0f | %.2f | %+.2f | %.2f | %+.2f | %.2f |\n", result.io_keys,
                  result.kinds, result.series, added_series, result.median_ms,
                  result.median_ms - base->median_ms, result.cpu_ms, result.cpu_ms - base->cpu_ms,
                  (result.cpu_ms - base->cpu_ms) * 1000.0 / added_series);
    }
  }
  return results.size() == 6 && drilled.size() == 3 ? 0 : 1;
}
