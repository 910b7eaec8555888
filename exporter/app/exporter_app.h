// SPDX-License-Identifier: Apache-2.0
// Wires the pieces together: BPF source -> snapshot -> VM tracker, reason names,
// rates -> exit families (streamed) + self metrics (prometheus-cpp) -> HTTP.
// One mutex serialises scrapes and the sampler.
#pragma once

#include <chrono>
#include <condition_variable>
#include <optional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>

#include "config/config.h"
#include "http/http_server.h"
#include "model/drilldown_follower.h"
#include "model/rate_tracker.h"
#include "model/vcpu_time.h"
#include "model/vm_tracker.h"
#include "render/reason_names.h"
#include "render/self_metrics.h"
#include "source/bpf_exit_source.h"

namespace kvmexit {

class ExporterApp {
 public:
  explicit ExporterApp(Config config);
  ~ExporterApp();
  ExporterApp(const ExporterApp&) = delete;
  ExporterApp& operator=(const ExporterApp&) = delete;

  // Binds the HTTP port first (a port in use then stops us before the kernel is
  // touched), then tries to attach, drops capabilities and starts the server
  // and the sampler. Returns "" or why the server could not start. A failed
  // attach is not an error: it is retried. `web` (--web.config.file) adds TLS,
  // basic authentication and headers.
  std::string Start(WebConfig web = {});
  void Stop();

  // A configuration reload (SIGHUP) with what LoadConfig returned. Applies
  // the keys that can change live (vms.*, rates.*, collector.exit_handling_buckets)
  // under the mutex, so a scrape sees the old settings or the new ones, never
  // a mix. Refuses the
  // whole reload when `loaded` is an error or changes a key the server or the
  // BPF program was built from; then the running configuration stays.
  // Logs the outcome and reports it in the config_last_reload_* metrics.
  // Returns whether the reload was applied.
  bool Reload(const std::variant<Config, ConfigError>& loaded);

  // One scrape's exposition text.
  std::string Scrape();
  int port() const { return http_ ? http_->port() : 0; }

  // Puts counts straight into the BPF map, for benchmarks of realistic map shapes.
  std::string FillMapsForTesting(const std::vector<VmExitCount>& counts,
                                 const std::vector<DrilldownCount>& drilldown = {});

 private:
  // TryAttach and ReadSnapshot run with mutex_ held.
  void TryAttach();
  // The maps as they are now, or nullopt when they could not be read (counted
  // and logged): then a scrape writes no exit figures rather than wrong ones.
  // Empty, not nullopt, while the program is not attached.
  std::optional<ExitSnapshot> ReadSnapshot();
  // Returns the sample interval to wait, read under the mutex: a reload may change it.
  std::chrono::milliseconds SampleOnce();
  // The exit part of a sample (attach retries, rates, retiring ended VMs),
  // with mutex_ held; returns the sample interval.
  std::chrono::milliseconds SampleExits();
  // collector.drilldown_auto, with mutex_ held: after an attach, the rules
  // for the kinds that follow storms and whether each is attached already
  // (adopted); at each sample, the switches the counts call for.
  void StartFollowingStorms();
  void FollowStorms(const ExitSnapshot& snapshot);
  // Called with mutex_ held: logs why the reload is refused and reports it.
  bool RefuseReload(const std::string& why);

  void SampleLoop();

  Config config_;     // web.* is fixed after Start(); the rest is read and reloaded under mutex_
  SelfMetrics self_;  // thread-safe on its own; before the members that report to it
  BpfExitSource source_;
  // The last response's text, back from the HTTP server for the next scrape
  // to write into; thread-safe on its own, shared with the server.
  std::shared_ptr<TextBufferPool> text_buffers_ = std::make_shared<TextBufferPool>();
  std::unique_ptr<HttpServer> http_;

  std::mutex mutex_;  // guards everything below
  ReasonNames names_;
  VmTracker tracker_;
  RateTracker rates_;
  DrilldownFollower follower_;
  std::map<DrilldownKind, std::string> last_follow_error_;  // per kind, logged once
  std::string last_attach_error_;
  std::chrono::steady_clock::time_point next_attach_attempt_;
  std::chrono::system_clock::time_point attach_time_;
  std::size_t last_exposition_bytes_ = 0;

  // Thread-safe on its own: filled by the sampler outside mutex_, read by scrapes.
  VcpuTimeSampler vcpu_time_;
  // The sampler thread's own: when the vCPU threads are read next.
  std::chrono::steady_clock::time_point next_vcpu_time_sample_;

  std::mutex stop_mutex_;
  std::condition_variable stop_signal_;
  bool stopping_ = false;
  std::thread sampler_;
};

}  // namespace kvmexit
