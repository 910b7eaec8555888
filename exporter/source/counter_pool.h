// SPDX-License-Identifier: Apache-2.0
// The per-VM exit counters' allocator. The program takes a counter index
// from the free_counters stack for each new key and records it in
// counter_index (the directory); this side hands the stack never-used
// indexes a chunk at a time, and takes an ended VM's counters back once no
// program can reach them any more (epoch bump, then an RCU grace period).
#pragma once

#include <linux/types.h>  // kvm_exit.h's __u32, __u64

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kvm_exit.h"
#include "source/exit_snapshot.h"
#include "source/sharded_array.h"
#include "util/unique_fd.h"

struct kvm_exit_bpf;

namespace kvmexit {

class CounterPool {
 public:
  // Counters handed to the free list at a time.
  static constexpr std::uint32_t kChunk = 65536;

  // For a freshly loaded skeleton, before its programs attach: forgets the
  // counts of an earlier one, maps its counter arrays (exit_time_ns with
  // `exit_handling_time`), frees the first chunk (the first counters are
  // free before the first exit) and creates the barrier maps. `adopted`: the
  // maps are a pinned state's, already counting: the pool goes on from the
  // bookkeeping in exporter_state instead.
  std::string Start(const kvm_exit_bpf& skeleton, bool exit_handling_time, bool adopted);

  // Hands the program more free counters when fewer than half a chunk are
  // left, given how many are in use. "" or an error message.
  std::string Replenish(const kvm_exit_bpf& skeleton, std::size_t counters_in_use);

  // Pushes the next chunk of never-used counter indexes onto the free list.
  std::string FreeMore(const kvm_exit_bpf& skeleton);

  // Removes `keys` from the directory, returning the counts they held in the
  // end, adds those to retired_counts (the host totals keep them) and frees
  // their counters (counts and handling time) for reuse.
  std::vector<VmExitCount> TakeBack(const kvm_exit_bpf& skeleton,
                                    const std::vector<vm_exit_key>& keys);

  std::uint32_t freed() const { return freed_; }
  std::uint32_t withheld() const { return withheld_; }

  // The counts (exit_counters) and, with exit_handling_time, the handling
  // ns (exit_time_ns) of each counter index.
  const ShardedArray& exits() const { return exits_; }
  ShardedArray& exits() { return exits_; }
  const ShardedArray& times() const { return times_; }

 private:
  // Creates the maps WaitForRunningPrograms updates.
  std::string CreateProgramBarrier();
  // Returns once every BPF program running at the call has finished (an RCU
  // grace period); false if the kernel refused the update that waits.
  bool WaitForRunningPrograms() const;
  // Writes freed_ and withheld_ to exporter_state, where a restarted
  // exporter that adopts the maps finds them.
  std::string SaveBookkeeping(const kvm_exit_bpf& skeleton) const;

  ShardedArray exits_;
  ShardedArray times_;
  std::uint32_t freed_ = 0;     // indexes 1..freed_ were handed out
  std::uint32_t withheld_ = 0;  // taken back without the wait: never reused
  UniqueFd barrier_inner_;
  UniqueFd barrier_outer_;
};

}  // namespace kvmexit
