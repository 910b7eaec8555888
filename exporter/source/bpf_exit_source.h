// SPDX-License-Identifier: Apache-2.0
// Owns the BPF program and its maps: load, attach (and retry), read snapshots, retire VMs.
#pragma once

#include <linux/types.h>  // kvm_exit.h's __u32, __u64

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvm_exit.h"
#include "source/bpf_source_options.h"
#include "source/core_btf.h"
#include "source/counter_pool.h"
#include "source/exit_snapshot.h"
#include "source/kernel_hook.h"
#include "source/pinned_state.h"
#include "source/program_loader.h"
#include "source/program_stats.h"

namespace kvmexit {

class BpfExitSource {
 public:
  explicit BpfExitSource(BpfSourceOptions options);
  ~BpfExitSource();
  BpfExitSource(const BpfExitSource&) = delete;
  BpfExitSource& operator=(const BpfExitSource&) = delete;

  // Opens, loads and attaches the program. Returns "" on success, else a message
  // saying what is missing and what to do. Safe to call again after a failure.
  std::string Attach();
  bool attached() const { return skeleton_ != nullptr; }

  // The program that is attached: "tp_btf", "raw_tp", "tracepoint", or "" before Attach
  // succeeds.
  std::string_view hook() const { return skeleton_ ? KernelHookName(attached_hook_) : ""; }
  // Why this hook rather than the one auto prefers ("" when none was passed over). For the log.
  const std::string& hook_note() const { return hook_note_; }
  // The CO-RE BTF of the last attach attempt: what it held, its size, build time; or "".
  const std::string& core_btf_note() const { return core_btf_note_; }
  // The configured drill-down kinds whose tracepoint this kernel lacks (kvm:kvm_pio and
  // kvm:kvm_msr are x86's): neither loaded nor attached. Known once attached.
  const std::vector<DrilldownKind>& absent_drilldown() const { return absent_drilldown_; }

  // How this process's counts began (pinned state adopted, fresh, unpinned),
  // and why fresh when there was a pinned state; valid once attached.
  StateStart state_start() const { return state_start_; }
  const std::string& state_note() const { return state_.why_fresh(); }
  // Where the state is kept ("" when nowhere), for the log.
  std::string state_where() const { return state_.where(); }
  // Unix time (ns) since which the attached programs have counted without a
  // reset: across restarts when the pinned state was adopted.
  std::uint64_t counting_since_ns() const { return counting_since_ns_; }

  // The boot-window histogram kept with the state (exporter_state), so that
  // kvm_vm_boot_exits_count goes on across restarts that adopt it: the
  // figures so far (all zero unless adopted), and one closed window's total
  // added to bucket `bucket`.
  struct BootExitsKept {
    std::array<std::uint64_t, KVM_EXIT_BOOT_EXITS_BUCKETS> buckets{};
    std::uint64_t sum = 0;
  };
  BootExitsKept KeptBootExits() const;
  void KeepBootWindow(std::size_t bucket, std::uint64_t exits);

  // Reads every map (batch lookups where the kernel has them), summing per-CPU values.
  // Returns "" or an error message; on error *snapshot is left empty.
  std::string Read(ExitSnapshot* snapshot) const;

  // Removes the counters of `keys`, returning the counts they held in the end
  // (so the caller can keep host totals monotonic), and frees them for reuse.
  std::vector<VmExitCount> Remove(const std::vector<vm_exit_key>& keys);

  // Hands the program more free counters when fewer than half a chunk are
  // left, given how many are in use (the snapshot's per-VM counts). The
  // sampler calls it after each read; "" or an error message.
  std::string ReplenishFreeCounters(std::size_t counters_in_use);
  // Counter indexes handed to the free list so far (1..this), for tests.
  std::uint32_t counters_freed() const { return counters_.freed(); }
  // Counters of ended VMs kept out of use: Remove could not wait for the programs.
  std::uint32_t counters_withheld() const { return counters_.withheld(); }

  // Whether the program of drill-down kind `kind` is attached now: always for
  // a kind of options.drilldown, on demand for one of options.drilldown_follow.
  bool DrilldownAttached(DrilldownKind kind) const;
  // Attaches or detaches the program of a kind that follows storms (kept with
  // the state while attached, so that a restart adopts it attached). "" or
  // what failed; a failed attach leaves it detached.
  std::string SetDrilldownAttached(DrilldownKind kind, bool attach);

  // Removes the drill-down entries of the VMs `tgids` (ended); their counts go with them.
  void RemoveDrilldown(const std::vector<std::uint32_t>& tgids);

  // Fills the maps with given counts (all in shard 0): the per-VM counters, and drilldown
  // with `drilldown` (needs a drill-down kind on). For benchmarks and tests
  // that need realistic map shapes without running VMs.
  std::string FillForTesting(const std::vector<VmExitCount>& counts,
                             const std::vector<DrilldownCount>& drilldown = {});

  BpfProgramStats ProgramStats() const;

 private:
  // Loads `hook`'s programs, starts the counter pool, attaches them; on
  // success they are the source's. btf_vendor_isa is the KVM_EXIT_ISA_* of
  // the vendor module for tp_btf and raw_tp; core_btf the CO-RE target.
  std::string LoadAndAttach(KernelHook hook, std::uint32_t btf_vendor_isa, const CoreBtf& core_btf);

  BpfSourceOptions options_;  // drill-down kinds without their tracepoint taken out (Attach)
  // The drill-down kinds as configured, and those of them this kernel has no tracepoint for.
  std::vector<DrilldownKind> configured_drilldown_;
  std::vector<DrilldownKind> configured_follow_;
  std::vector<DrilldownKind> absent_drilldown_;
  int possible_cpus_;
  SkeletonPtr skeleton_;
  KernelHook attached_hook_ = KernelHook::kTracepoint;  // whose programs skeleton_ attached
  std::string hook_note_;
  std::string core_btf_note_;
  CounterPool counters_;
  PinnedState state_;  // with a store when the state outlives the process
  StateStart state_start_ = StateStart::kUnpinned;
  std::uint64_t counting_since_ns_ = 0;
  bool state_chosen_ = false;  // state_ has its store (or none) for good
  // Drill-down counts of the last read: the next one reserves that many, so
  // 160,000 of them (1,000 VMs) are not copied a dozen times as they grow.
  mutable std::size_t last_drilldown_counts_ = 0;
};

}  // namespace kvmexit
