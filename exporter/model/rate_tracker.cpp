// SPDX-License-Identifier: Apache-2.0
#include "model/rate_tracker.h"

namespace kvmexit {

void RateTracker::AddSample(Clock::time_point now, const ReasonCounts& totals) {
  samples_.push_back({now, totals});
  // Keep the newest sample that is at least `window_` old as the baseline.
  while (samples_.size() > 2 && samples_[1].time <= now - window_) samples_.pop_front();
}

double RateTracker::SpanSeconds() const {
  if (samples_.size() < 2) return 0.0;
  return std::chrono::duration<double>(samples_.back().time - samples_.front().time).count();
}

std::map<ReasonKey, double> RateTracker::Rates() const {
  std::map<ReasonKey, double> rates;
  const double span = SpanSeconds();
  if (span <= 0.0) return rates;
  const ReasonCounts& oldest = samples_.front().totals;
  for (const auto& [reason, newest_count] : samples_.back().totals) {
    const auto old = oldest.find(reason);
    const std::uint64_t base = old == oldest.end() ? 0 : old->second;
    // Counters only shrink if the BPF maps were recreated; treat that as a restart.
    const std::uint64_t delta = newest_count >= base ? newest_count - base : newest_count;
    rates[reason] = static_cast<double>(delta) / span;
  }
  return rates;
}

double RateTracker::TotalRate() const {
  double total = 0.0;
  for (const auto& [reason, rate] : Rates()) total += rate;
  return total;
}

}  // namespace kvmexit
