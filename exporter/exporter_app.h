// Wires the pieces together: BPF source -> snapshot -> VM tracker, reason names,
// rates -> exit families (streamed) + self metrics (prometheus-cpp) -> HTTP.
// One mutex serialises scrapes and the sampler.
#pragma once

#include <chrono>
#include <condition_variable>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bpf_exit_source.h"
#include "config.h"
#include "http_server.h"
#include "rate_tracker.h"
#include "reason_names.h"
#include "self_metrics.h"
#include "vm_tracker.h"

namespace kvmexit {

class ExporterApp {
 public:
  explicit ExporterApp(Config config);
  ~ExporterApp();
  ExporterApp(const ExporterApp&) = delete;
  ExporterApp& operator=(const ExporterApp&) = delete;

  // Tries to attach, starts the sampler and the HTTP server. Returns "" or why
  // the server could not start. A failed attach is not an error: it is retried.
  // `web` (--web.config.file) adds TLS, basic authentication and headers.
  std::string Start(WebConfig web = {});
  void Stop();

  // One scrape's exposition text.
  std::string Scrape();
  int port() const { return http_ ? http_->port() : 0; }

  // Puts counts straight into the BPF map, for benchmarks of realistic map shapes.
  std::string FillMapsForTesting(const std::vector<VmExitCount>& counts);

 private:
  // TryAttach and ReadSnapshot run with mutex_ held.
  void TryAttach();
  // The maps as they are now, or nullopt when they could not be read (counted
  // and logged): then a scrape writes no exit figures rather than wrong ones.
  // Empty, not nullopt, while the program is not attached.
  std::optional<ExitSnapshot> ReadSnapshot();
  void SampleOnce();

  void SampleLoop();

  Config config_;
  SelfMetrics self_;  // thread-safe on its own; before the members that report to it
  BpfExitSource source_;
  std::unique_ptr<HttpServer> http_;

  std::mutex mutex_;  // guards everything below
  ReasonNames names_;
  VmTracker tracker_;
  RateTracker rates_;
  std::string last_attach_error_;
  std::chrono::steady_clock::time_point next_attach_attempt_;
  std::chrono::system_clock::time_point attach_time_;
  std::size_t last_exposition_bytes_ = 0;

  std::mutex stop_mutex_;
  std::condition_variable stop_signal_;
  bool stopping_ = false;
  std::thread sampler_;
};

}  // namespace kvmexit
