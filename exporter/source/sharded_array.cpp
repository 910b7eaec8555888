// SPDX-License-Identifier: Apache-2.0
#include "source/sharded_array.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/types.h>  // kvm_exit.h's __u32, __u64
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>

#include "kvm_exit.h"
#include "source/errno_text.h"

namespace kvmexit {

std::uint32_t CounterShards(int possible_cpus) {
  const auto cpus = static_cast<std::uint32_t>(std::max(1, possible_cpus));
  return std::min<std::uint32_t>(std::bit_ceil(cpus), KVM_EXIT_MAX_COUNTER_SHARDS);
}

void MappingUnmapper::operator()(std::uint64_t* values) const { ::munmap(values, bytes); }

std::string ShardedArray::Map(int map_fd, std::uint32_t shards) {
  values_.reset();
  shards_ = 0;
  stride_ = 0;
  // The kernel's word on the map, not the caller's: the layout must match it.
  bpf_map_info info{};
  std::uint32_t info_size = sizeof(info);
  if (bpf_obj_get_info_by_fd(map_fd, &info, &info_size) != 0) {
    return "reading the counter map's info failed: " + ErrnoText(errno);
  }
  const std::string name = info.name;
  if (info.type != BPF_MAP_TYPE_ARRAY || (info.map_flags & BPF_F_MMAPABLE) == 0 ||
      info.value_size != sizeof(std::uint64_t) || shards == 0 || info.max_entries % shards != 0) {
    return "map " + name + " is not an mmapable array of " + std::to_string(shards) +
           " shards of __u64 counters";
  }
  // The kernel maps whole pages of the array's values.
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t bytes =
      (std::size_t{info.max_entries} * sizeof(std::uint64_t) + page - 1) / page * page;
  void* at = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
  if (at == MAP_FAILED) return "mapping " + name + " failed: " + ErrnoText(errno);
  values_ = std::unique_ptr<std::uint64_t, MappingUnmapper>(static_cast<std::uint64_t*>(at),
                                                            MappingUnmapper{bytes});
  shards_ = shards;
  stride_ = info.max_entries / shards;
  return "";
}

std::uint64_t ShardedArray::Sum(std::uint32_t index) const {
  if (!values_ || index >= stride_) return 0;
  std::uint64_t sum = 0;
  for (std::uint32_t shard = 0; shard < shards_; ++shard) {
    // Programs add atomically while this reads: an aligned 64-bit load sees
    // a whole value, before or after each add.
    sum += __atomic_load_n(values_.get() + std::size_t{shard} * stride_ + index, __ATOMIC_RELAXED);
  }
  return sum;
}

void ShardedArray::SumRange(std::uint32_t end, std::vector<std::uint64_t>* sums) const {
  end = std::min(end, stride_);
  sums->assign(end, 0);
  if (!values_) return;
  for (std::uint32_t shard = 0; shard < shards_; ++shard) {
    const std::uint64_t* values = values_.get() + std::size_t{shard} * stride_;
    for (std::uint32_t index = 0; index < end; ++index) {
      (*sums)[index] += __atomic_load_n(values + index, __ATOMIC_RELAXED);
    }
  }
}

void ShardedArray::Set(std::uint32_t index, std::uint64_t value) {
  if (!values_ || index >= stride_) return;
  for (std::uint32_t shard = 0; shard < shards_; ++shard) {
    __atomic_store_n(values_.get() + std::size_t{shard} * stride_ + index, shard == 0 ? value : 0,
                     __ATOMIC_RELAXED);
  }
}

}  // namespace kvmexit
