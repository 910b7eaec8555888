// Wires the pieces together: BPF source -> snapshot -> VM tracker, reason names,
// rates -> metric families -> HTTP. One mutex serialises scrapes and the sampler.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bpf_exit_source.h"
#include "config.h"
#include "http_server.h"
#include "rate_tracker.h"
#include "reason_names.h"
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
  std::string Start();
  void Stop();

  // One scrape's exposition text.
  std::string Scrape();
  int port() const { return http_ ? http_->port() : 0; }

  // Puts counts straight into the BPF map, for benchmarks of realistic map shapes.
  std::string FillMapsForTesting(const std::vector<VmExitCount>& counts);

 private:
  void TryAttach();
  void SampleLoop();
  void SampleOnce();

  Config config_;
  BpfExitSource source_;
  std::unique_ptr<HttpServer> http_;

  std::mutex mutex_;  // guards everything below
  ReasonNames names_;
  VmTracker tracker_;
  RateTracker rates_;
  std::map<std::string, std::uint64_t> errors_;
  std::string last_attach_error_;
  std::chrono::steady_clock::time_point next_attach_attempt_;
  std::chrono::system_clock::time_point attach_time_;
  double last_scrape_seconds_ = 0.0;
  std::size_t last_exposition_bytes_ = 0;

  std::mutex stop_mutex_;
  std::condition_variable stop_signal_;
  bool stopping_ = false;
  std::thread sampler_;
};

}  // namespace kvmexit
