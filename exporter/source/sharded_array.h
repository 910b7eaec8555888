// SPDX-License-Identifier: Apache-2.0
// User space's view of a sharded counter array (exit_counters, exit_time_ns;
// layout in bpf/kvm_exit.h): the map mmapped, each counter summed over its
// shards with plain loads, no syscall and no copy per scrape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kvmexit {

// Shards for a host with `possible_cpus`: one per CPU up to
// KVM_EXIT_MAX_COUNTER_SHARDS, a power of two. Few enough that a scrape's
// read and the maps' memory stay flat on wide hosts, enough that the vCPUs of
// one busy VM rarely add to the same cache line.
std::uint32_t CounterShards(int possible_cpus);

// Unmaps an mmapped array of `bytes` (unique_ptr's deleter).
struct MappingUnmapper {
  std::size_t bytes = 0;
  void operator()(std::uint64_t* values) const;
};

class ShardedArray {
 public:
  // Maps the array `map_fd` (BPF_F_MMAPABLE, __u64 values, `shards` x
  // stride elements) and forgets an earlier mapping. "" or an error message.
  std::string Map(int map_fd, std::uint32_t shards);

  bool mapped() const { return values_ != nullptr; }
  std::uint32_t shards() const { return shards_; }
  // Counters per shard (indexes 0..stride-1).
  std::uint32_t stride() const { return stride_; }

  // Counter `index` summed over the shards; 0 past the end or unmapped.
  std::uint64_t Sum(std::uint32_t index) const;
  // (*sums)[i] = Sum(i) for i < end (clamped to the stride), read shard by
  // shard so that each pass streams through memory.
  void SumRange(std::uint32_t end, std::vector<std::uint64_t>* sums) const;
  // Sets counter `index` to `value` (shard 0; the others to 0). Only for a
  // counter no program can add to: fresh, or taken back after the wait.
  void Set(std::uint32_t index, std::uint64_t value);

 private:
  std::unique_ptr<std::uint64_t, MappingUnmapper> values_;
  std::uint32_t shards_ = 0;
  std::uint32_t stride_ = 0;
};

}  // namespace kvmexit
