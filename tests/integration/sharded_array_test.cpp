// SPDX-License-Identifier: Apache-2.0
// ShardedArray against a real BPF_F_MMAPABLE array: the element the kernel
// stores for (shard, index) is the one user space sums, a counter's shards
// add up, and Set leaves one value in shard 0. Root only (map creation).
#include "source/sharded_array.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "kvm_exit.h"
#include "util/unique_fd.h"

namespace kvmexit {
namespace {

constexpr std::uint32_t kShards = 4;
constexpr std::uint32_t kStride = 1000;  // not a multiple of a page's counters

UniqueFd CreateCounterArray(std::uint32_t flags) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);
  return UniqueFd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "test_counters", sizeof(std::uint32_t),
                                 sizeof(std::uint64_t), kShards * kStride, &opts));
}

// What a program on a CPU of `shard` does: adds to element shard * stride + index.
void AddInShard(int fd, std::uint32_t shard, std::uint32_t index, std::uint64_t n) {
  const std::uint32_t element = shard * kStride + index;
  std::uint64_t value = 0;
  ASSERT_EQ(bpf_map_lookup_elem(fd, &element, &value), 0);
  value += n;
  ASSERT_EQ(bpf_map_update_elem(fd, &element, &value, BPF_ANY), 0);
}

class ShardedArrayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to create BPF maps";
    fd_ = CreateCounterArray(BPF_F_MMAPABLE);
    ASSERT_TRUE(fd_.valid()) << "creating an mmapable array failed";
    ASSERT_EQ(array_.Map(fd_.get(), kShards), "");
  }
  UniqueFd fd_;
  ShardedArray array_;
};

TEST(CounterShardsTest, OnePerCpuUpToTheCapInPowersOfTwo) {
  EXPECT_EQ(CounterShards(1), 1U);
  EXPECT_EQ(CounterShards(2), 2U);
  EXPECT_EQ(CounterShards(3), 4U);
  EXPECT_EQ(CounterShards(12), 16U);
  EXPECT_EQ(CounterShards(384), std::uint32_t{KVM_EXIT_MAX_COUNTER_SHARDS});
  EXPECT_EQ(CounterShards(0), 1U);  // libbpf could not tell: one shard still counts right
}

TEST_F(ShardedArrayTest, SumsEveryShardOfACounter) {
  EXPECT_EQ(array_.stride(), kStride);
  AddInShard(fd_.get(), 0, 7, 1);
  AddInShard(fd_.get(), 1, 7, 20);
  AddInShard(fd_.get(), 3, 7, 300);
  AddInShard(fd_.get(), 2, 8, 4000);  // a neighbour, not counter 7
  AddInShard(fd_.get(), 3, kStride - 1, 5);
  EXPECT_EQ(array_.Sum(7), 321U);
  EXPECT_EQ(array_.Sum(8), 4000U);
  EXPECT_EQ(array_.Sum(kStride - 1), 5U);
  EXPECT_EQ(array_.Sum(kStride), 0U);  // past the end: no counter, no read out of bounds
  std::vector<std::uint64_t> sums;
  array_.SumRange(9, &sums);
  ASSERT_EQ(sums.size(), 9U);
  EXPECT_EQ(sums[7], 321U);
  EXPECT_EQ(sums[8], 4000U);
  EXPECT_EQ(sums[0], 0U);
  array_.SumRange(kStride + 50, &sums);  // clamped to the counters there are
  EXPECT_EQ(sums.size(), kStride);
}

TEST_F(ShardedArrayTest, SetLeavesTheValueInShardZeroOnly) {
  AddInShard(fd_.get(), 2, 11, 99);
  array_.Set(11, 42);
  EXPECT_EQ(array_.Sum(11), 42U);
  // The kernel sees the same: shard 0 holds it, the others were zeroed.
  for (std::uint32_t shard = 0; shard < kShards; ++shard) {
    const std::uint32_t element = shard * kStride + 11;
    std::uint64_t value = 1;
    ASSERT_EQ(bpf_map_lookup_elem(fd_.get(), &element, &value), 0);
    EXPECT_EQ(value, shard == 0 ? 42U : 0U) << "shard " << shard;
  }
}

TEST(ShardedArrayRefusalTest, RefusesAnArrayItCannotReadAsShards) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create BPF maps";
  ShardedArray array;
  const UniqueFd plain = CreateCounterArray(0);
  ASSERT_TRUE(plain.valid());
  EXPECT_NE(array.Map(plain.get(), kShards).find("not an mmapable array"), std::string::npos);
  const UniqueFd mmapable = CreateCounterArray(BPF_F_MMAPABLE);
  ASSERT_TRUE(mmapable.valid());
  EXPECT_NE(array.Map(mmapable.get(), 3).find("3 shards"), std::string::npos);
  EXPECT_FALSE(array.mapped());
  EXPECT_EQ(array.Sum(0), 0U);
}

}  // namespace
}  // namespace kvmexit
