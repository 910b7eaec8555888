// SPDX-License-Identifier: Apache-2.0
// Exit rates over a sliding window, from periodic samples of monotonic counters.
#pragma once

#include <chrono>
#include <deque>
#include <map>

#include "source/exit_snapshot.h"

namespace kvmexit {

class RateTracker {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RateTracker(std::chrono::milliseconds window) : window_(window) {}

  // Records the host totals at `now`. Samples older than the window are dropped,
  // but one sample at or before the window start is kept so the window stays full.
  void AddSample(Clock::time_point now, const ReasonCounts& totals);

  // Exits per second per reason between the oldest and newest sample in the window.
  // Reasons with no exits in the window report 0; empty until two samples exist.
  std::map<ReasonKey, double> Rates() const;
  double TotalRate() const;
  bool Ready() const { return SpanSeconds() > 0.0; }

 private:
  struct Sample {
    Clock::time_point time;
    ReasonCounts totals;
  };
  double SpanSeconds() const;

  std::chrono::milliseconds window_;
  std::deque<Sample> samples_;
};

}  // namespace kvmexit
