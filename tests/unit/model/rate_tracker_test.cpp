// SPDX-License-Identifier: Apache-2.0
#include "model/rate_tracker.h"

#include <gtest/gtest.h>

namespace kvmexit {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr ReasonKey kIo{KVM_EXIT_ISA_SVM, 0x7b};
constexpr ReasonKey kHlt{KVM_EXIT_ISA_SVM, 0x78};

TEST(RateTrackerTest, NotReadyUntilTwoSamples) {
  RateTracker tracker(seconds(10));
  EXPECT_FALSE(tracker.Ready());
  const auto t0 = RateTracker::Clock::time_point{};
  tracker.AddSample(t0, {{kIo, 100}});
  EXPECT_FALSE(tracker.Ready());
  EXPECT_TRUE(tracker.Rates().empty());
  tracker.AddSample(t0 + seconds(1), {{kIo, 300}});
  EXPECT_TRUE(tracker.Ready());
  EXPECT_DOUBLE_EQ(tracker.Rates().at(kIo), 200.0);
}

TEST(RateTrackerTest, RateSpansTheWindowAndFallsToZeroAfterExitsStop) {
  RateTracker tracker(seconds(4));
  const auto t0 = RateTracker::Clock::time_point{};
  // 1000 io exits per second for 10 seconds.
  for (int s = 0; s <= 10; ++s) tracker.AddSample(t0 + seconds(s), {{kIo, 1000ULL * s}});
  EXPECT_DOUBLE_EQ(tracker.Rates().at(kIo), 1000.0);
  EXPECT_DOUBLE_EQ(tracker.TotalRate(), 1000.0);
  // Exits stop; once a whole window has no new exits the rate is 0.
  for (int s = 11; s <= 14; ++s) tracker.AddSample(t0 + seconds(s), {{kIo, 10'000}});
  EXPECT_DOUBLE_EQ(tracker.Rates().at(kIo), 0.0);
}

TEST(RateTrackerTest, PartialWindowUsesElapsedTime) {
  RateTracker tracker(seconds(30));
  const auto t0 = RateTracker::Clock::time_point{};
  tracker.AddSample(t0, {});
  tracker.AddSample(t0 + milliseconds(500), {{kIo, 50}, {kHlt, 1}});
  EXPECT_DOUBLE_EQ(tracker.Rates().at(kIo), 100.0);
  EXPECT_DOUBLE_EQ(tracker.Rates().at(kHlt), 2.0);
  EXPECT_DOUBLE_EQ(tracker.TotalRate(), 102.0);
}

TEST(RateTrackerTest, CounterResetCountsFromZero) {
  RateTracker tracker(seconds(10));
  const auto t0 = RateTracker::Clock::time_point{};
  tracker.AddSample(t0, {{kIo, 5000}});
  tracker.AddSample(t0 + seconds(2), {{kIo, 40}});  // maps recreated
  EXPECT_DOUBLE_EQ(tracker.Rates().at(kIo), 20.0);
}

}  // namespace
}  // namespace kvmexit
