// SPDX-License-Identifier: Apache-2.0
// How much a batch read buffers: bounded by bytes, so that a per-CPU map on
// a wide host (one value per possible CPU) does not make every read
// allocate and zero tens of megabytes (issue 29).
#include "source/map_reader.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace kvmexit {
namespace {

TEST(BatchEntriesTest, SmallValuesReadAThousandEntriesPerBatch) {
  EXPECT_EQ(BatchEntries(sizeof(std::uint32_t)), 1024U);  // counter_index's values
  EXPECT_EQ(BatchEntries(2 * 8), 1024U);                  // a u64 per CPU on 2 CPUs
}

TEST(BatchEntriesTest, WideHostsReadFewerEntriesPerBatchNotMoreBytes) {
  const std::size_t histogram_on_384_cpus = 192 * 384;  // struct exit_time_hist per CPU
  EXPECT_EQ(BatchEntries(histogram_on_384_cpus), 3U);
  EXPECT_LE(BatchEntries(histogram_on_384_cpus) * histogram_on_384_cpus, 256U * 1024U);
  EXPECT_EQ(BatchEntries(8 * 384), 85U);  // a u64 per CPU on 384 CPUs
}

TEST(BatchEntriesTest, AnEntryLargerThanTheBudgetStillGetsABatchOfOne) {
  EXPECT_EQ(BatchEntries(1 << 20), 1U);
  EXPECT_EQ(BatchEntries(0), 1024U);
}

}  // namespace
}  // namespace kvmexit
