// SPDX-License-Identifier: Apache-2.0
#include "source/counter_pool.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>

#include "kvm_exit.skel.h"
#include "source/errno_text.h"
#include "source/exporter_state_map.h"

namespace kvmexit {

namespace {

// Marks a removed key whose counts could not be retired (a count never reaches it).
constexpr std::uint64_t kNotRetired = ~std::uint64_t{0};

// Adds `count` to the retired count of `reason`. Only this process writes
// the map, so read-then-write is exact.
bool AddRetired(int fd, const host_exit_key& reason, std::uint64_t count) {
  std::uint64_t total = 0;
  if (bpf_map_lookup_elem(fd, &reason, &total) != 0) total = 0;
  total += count;
  return bpf_map_update_elem(fd, &reason, &total, BPF_ANY) == 0;
}

}  // namespace

std::string CounterPool::Start(const kvm_exit_bpf& skeleton, bool exit_handling_time,
                               bool adopted) {
  freed_ = 0;
  withheld_ = 0;
  if (adopted) {
    const std::optional<exporter_state> state =
        ReadExporterState(bpf_map__fd(skeleton.maps.exporter_state));
    if (!state) return "reading the pinned counter bookkeeping failed: " + ErrnoText(errno);
    freed_ = std::min(state->counters_freed, bpf_map__max_entries(skeleton.maps.free_counters));
    withheld_ = state->counters_withheld;
  }
  times_ = ShardedArray{};
  const std::uint32_t shards = skeleton.rodata->counter_shard_mask + 1;
  if (std::string error = exits_.Map(bpf_map__fd(skeleton.maps.exit_counters), shards);
      !error.empty()) {
    return error;
  }
  if (exit_handling_time) {
    if (std::string error = times_.Map(bpf_map__fd(skeleton.maps.exit_time_ns), shards);
        !error.empty()) {
      return error;
    }
  }
  if (!adopted) {
    if (std::string error = FreeMore(skeleton); !error.empty()) return error;
  }
  return CreateProgramBarrier();
}

std::string CounterPool::Replenish(const kvm_exit_bpf& skeleton, std::size_t counters_in_use) {
  if (freed_ == bpf_map__max_entries(skeleton.maps.free_counters)) return "";
  // Free ones left, about: the program may have taken more since the read.
  const std::size_t free = freed_ - std::min<std::size_t>(freed_, counters_in_use + withheld_);
  if (free >= kChunk / 2) return "";
  return FreeMore(skeleton);
}

std::string CounterPool::FreeMore(const kvm_exit_bpf& skeleton) {
  // Pushing is one syscall per index (a stack has no batch update): all of a
  // 4,194,304-counter capacity took 12 s here, one chunk 0.2 s. Lowest index
  // on top, so the indexes in use stay low and a scrape reads a short array.
  const std::uint32_t capacity = bpf_map__max_entries(skeleton.maps.free_counters);
  const std::uint32_t first = freed_ + 1;
  const std::uint32_t last = freed_ + std::min(kChunk, capacity - freed_);
  const int free_fd = bpf_map__fd(skeleton.maps.free_counters);
  // Recorded before the pushes: a process killed in between leaves indexes
  // that were never pushed (capacity lost until a fresh start), never one
  // pushed twice (two keys sharing a counter).
  const std::uint32_t before = freed_;
  freed_ = last;
  if (std::string error = SaveBookkeeping(skeleton); !error.empty()) {
    freed_ = before;
    return error;
  }
  for (std::uint32_t index = last; index >= first; --index) {
    if (bpf_map_update_elem(free_fd, nullptr, &index, BPF_ANY) != 0) {
      return "filling the free counter list failed: " + ErrnoText(errno);
    }
  }
  return "";
}

std::vector<VmExitCount> CounterPool::TakeBack(const kvm_exit_bpf& skeleton,
                                               const std::vector<vm_exit_key>& keys) {
  std::vector<VmExitCount> removed;
  const int directory_fd = bpf_map__fd(skeleton.maps.counter_index);
  std::vector<std::uint32_t> indexes;
  for (const vm_exit_key& key : keys) {
    std::uint32_t index = 0;
    if (bpf_map_lookup_elem(directory_fd, &key, &index) != 0 ||
        bpf_map_delete_elem(directory_fd, &key) != 0) {
      continue;
    }
    removed.push_back({key, 0});
    indexes.push_back(index);
  }
  if (removed.empty()) return removed;
  // A CPU's cache may still name these counters (a VM whose pid was reused
  // may even still be counting in them): make every CPU refill its cache,
  // and wait for the programs running now. After that no program can reach
  // them, so their counts are final.
  __atomic_add_fetch(&skeleton.bss->counter_epoch, 1, __ATOMIC_SEQ_CST);
  const bool quiet = WaitForRunningPrograms();
  const int free_fd = bpf_map__fd(skeleton.maps.free_counters);
  const int retired_fd = bpf_map__fd(skeleton.maps.retired_counts);
  for (std::size_t i = 0; i < indexes.size(); ++i) {
    removed[i].count = exits_.Sum(indexes[i]);
    // Retired before the counter is cleared: a process killed in between
    // leaves the counter unreachable (the directory no longer names it), so
    // no count is seen twice.
    if (!AddRetired(retired_fd, {removed[i].key.isa, removed[i].key.exit_reason},
                    removed[i].count)) {
      // Its counts stay live instead, under the key again, for a later try.
      bpf_map_update_elem(directory_fd, &removed[i].key, &indexes[i], BPF_NOEXIST);
      removed[i].count = kNotRetired;
      continue;
    }
    // Without the wait a late exit could land in a reused counter: keep it
    // out of use instead (one counter less until restart, never a wrong count).
    if (!quiet) {
      ++withheld_;
      continue;
    }
    // The VM's handling time goes with it: the host histogram keeps it in the totals.
    exits_.Set(indexes[i], 0);
    times_.Set(indexes[i], 0);
    bpf_map_update_elem(free_fd, nullptr, &indexes[i], BPF_ANY);
  }
  SaveBookkeeping(skeleton);  // withheld_; a failure costs capacity after a restart, not counts
  std::erase_if(removed, [](const VmExitCount& entry) { return entry.count == kNotRetired; });
  return removed;
}

std::string CounterPool::SaveBookkeeping(const kvm_exit_bpf& skeleton) const {
  std::string error =
      UpdateExporterState(bpf_map__fd(skeleton.maps.exporter_state), [this](exporter_state& state) {
        state.counters_freed = freed_;
        state.counters_withheld = withheld_;
      });
  return error.empty() ? "" : "saving the counter bookkeeping: " + error;
}

std::string CounterPool::CreateProgramBarrier() {
  // An ARRAY_OF_MAPS update with a valid inner map makes the kernel wait for
  // an RCU grace period (maybe_wait_bpf_programs), and tracing programs run
  // inside RCU read-side sections: the update returns after every program
  // that was running has finished.
  UniqueFd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "barrier_inner", sizeof(std::uint32_t),
                                sizeof(std::uint32_t), 1, nullptr));
  if (!inner.valid()) return "creating the barrier map failed: " + ErrnoText(errno);
  LIBBPF_OPTS(bpf_map_create_opts, outer_opts, .inner_map_fd = static_cast<__u32>(inner.get()));
  UniqueFd outer(bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "program_barrier",
                                sizeof(std::uint32_t), sizeof(std::uint32_t), 1, &outer_opts));
  if (!outer.valid()) return "creating the barrier map failed: " + ErrnoText(errno);
  barrier_inner_ = std::move(inner);
  barrier_outer_ = std::move(outer);
  return "";
}

bool CounterPool::WaitForRunningPrograms() const {
  const std::uint32_t zero = 0;
  const int inner = barrier_inner_.get();
  return bpf_map_update_elem(barrier_outer_.get(), &zero, &inner, BPF_ANY) == 0;
}

}  // namespace kvmexit
