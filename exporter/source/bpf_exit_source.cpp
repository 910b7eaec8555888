// SPDX-License-Identifier: Apache-2.0
// The orchestration: which hooks to try and in which order, what a read
// reads and in which order, what an ended VM takes with it. The work itself
// is done by the files this one includes.
#include "source/bpf_exit_source.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>
#include <utility>

#include "kvm_exit.skel.h"
#include "source/errno_text.h"
#include "source/exporter_state_map.h"
#include "source/hook_choice.h"
#include "source/kernel_checks.h"
#include "source/libbpf_log.h"
#include "source/map_reader.h"
#include "source/map_values.h"
#include "source/program_table.h"
#include "source/test_fill.h"

namespace kvmexit {
namespace {

// The capture goes in before the first libbpf call, and counting the CPUs is
// one: what it may warn belongs to the capture, not on stderr.
int CaptureLibbpfLogAndCountCpus() {
  CaptureLibbpfLog();
  return PossibleCpus();
}

// `kinds` without those whose tracepoint is not under `tracefs_root`, which
// are added to *absent: kvm:kvm_pio, kvm:kvm_msr and kvm:kvm_hypercall exist
// on x86 only, kvm:kvm_hvc_arm64 and kvm:kvm_sys_access on arm64 only, so a
// fleet's one configuration loads on both.
std::vector<DrilldownKind> WithTracepoints(const std::string& tracefs_root,
                                           std::vector<DrilldownKind> kinds,
                                           std::vector<DrilldownKind>* absent) {
  std::erase_if(kinds, [&](DrilldownKind kind) {
    const std::string event =
        tracefs_root + "/events/kvm/" + std::string(DrilldownKindRow(kind).tracepoint);
    if (PathExists(event)) return false;
    absent->push_back(kind);
    return true;
  });
  return kinds;
}

}  // namespace

BpfExitSource::BpfExitSource(BpfSourceOptions options)
    : options_(std::move(options)),
      configured_drilldown_(options_.drilldown),
      configured_follow_(options_.drilldown_follow),
      possible_cpus_(CaptureLibbpfLogAndCountCpus()) {}

BpfExitSource::~BpfExitSource() = default;

std::string BpfExitSource::Attach() {
  if (skeleton_) return "";
  // Where the state that outlives the process is kept: the configured bpffs
  // directory, else systemd's fd store when the unit offers one, else nowhere.
  // First, so that systemd's descriptors are taken at the first attempt
  // (in the main thread, before any other starts), even when kvm is not
  // loaded yet.
  if (!state_chosen_) {
    if (!options_.state_path.empty()) {
      std::string error;
      std::unique_ptr<StateStore> store = OpenBpffsStore(options_.state_path, &error);
      if (!store) return error;
      state_.Use(std::move(store));
    } else {
      state_.Use(OpenSystemdFdStore());
    }
    state_chosen_ = true;
  }
  if (std::string missing = CheckKernelSupport(options_.tracefs_root); !missing.empty()) {
    return missing;
  }
  absent_drilldown_.clear();
  options_.drilldown =
      WithTracepoints(options_.tracefs_root, configured_drilldown_, &absent_drilldown_);
  options_.drilldown_follow =
      WithTracepoints(options_.tracefs_root, configured_follow_, &absent_drilldown_);
  HookChoice choice = ChooseHooks(options_.hook, options_.sys_root);
  if (!choice.error.empty()) return choice.error;
  // The pinned programs' hook first, so that a restart adopts them rather
  // than replacing them with another hook that would also load.
  if (const std::optional<KernelHook> pinned = state_.PinnedHook()) {
    const auto it =
        std::find_if(choice.attempts.begin(), choice.attempts.end(),
                     [&](const HookAttempt& attempt) { return attempt.hook == *pinned; });
    if (it != choice.attempts.end()) {
      it->passed_over.clear();
      std::rotate(choice.attempts.begin(), it, it + 1);
    }
  }
  const std::optional<VendorModule>& vendor = choice.vendor;

  // One standalone BTF for CO-RE (vmlinux + the kvm modules' BTF), so that
  // libbpf does not list the kernel's BTF objects to find the module types
  // (CAP_SYS_ADMIN). Without it libbpf looks them up itself, as before.
  CoreBtf core_btf =
      BuildCoreBtf(options_.sys_root + "/kernel/btf", vendor ? vendor->name : std::string_view());
  core_btf_note_ = core_btf.error.empty() ? core_btf.note : "";
  // Why the hooks before the one attached were passed over, each in turn.
  std::string why_not;
  const auto add_why = [&why_not](const std::string& why) {
    why_not += (why_not.empty() ? "" : "; ") + why;
  };
  std::string error;
  for (const auto& [hook, passed_over] : choice.attempts) {
    if (!passed_over.empty()) add_why(passed_over);
    error = LoadAndAttach(hook, hook == KernelHook::kTracepoint ? 0 : vendor->isa, core_btf);
    if (error.empty()) {
      hook_note_ = std::move(why_not);
      if (!core_btf.error.empty()) {
        hook_note_ += std::string(hook_note_.empty() ? "" : "; ") +
                      "libbpf looked up the kvm module BTF itself: " + core_btf.error;
      }
      return "";
    }
    add_why(std::string(KernelHookName(hook)) + " failed: " + error);
  }
  return choice.attempts.size() > 1 ? why_not : error;
}

std::string BpfExitSource::LoadAndAttach(KernelHook hook, std::uint32_t btf_vendor_isa,
                                         const CoreBtf& core_btf) {
  PinnedState* state = state_.open() ? &state_ : nullptr;
  SkeletonPtr skeleton;
  bool adopted = false;
  if (std::string error =
          LoadPrograms(options_, hook, btf_vendor_isa, core_btf, state, &skeleton, &adopted);
      !error.empty()) {
    return error;
  }
  // The first counters free before the first exit; the sampler hands out
  // the rest as they are needed (ReplenishFreeCounters).
  if (std::string error = counters_.Start(*skeleton, options_.exit_handling_time, adopted);
      !error.empty())
    return error;
  const std::vector<PinnedLink> links = LinksToPin(*skeleton, options_, hook);
  if (adopted) {
    if (std::string error = state_.AdoptLinks(links, FollowLinks(*skeleton, options_, hook));
        !error.empty()) {
      state_.Discard(error);
      return LoadAndAttach(hook, btf_vendor_isa, core_btf);  // fresh: nothing pinned now
    }
  } else {
    // The skeleton owns the links: destroying it (on failure, here) detaches.
    if (std::string error = AttachPrograms(*skeleton, options_, hook); !error.empty()) return error;
    if (state != nullptr) {
      if (std::string error = state_.Commit(*skeleton, hook, links, ExitProgram(*skeleton, hook));
          !error.empty()) {
        return error;
      }
    }
  }
  skeleton_ = std::move(skeleton);
  attached_hook_ = hook;
  state_start_ = state == nullptr ? StateStart::kUnpinned
                 : adopted        ? StateStart::kAdopted
                                  : StateStart::kFresh;
  counting_since_ns_ =
      state != nullptr
          ? state_.counting_since_ns()
          : static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
  return "";
}

std::string BpfExitSource::Read(ExitSnapshot* snapshot) const {
  *snapshot = ExitSnapshot{};
  if (!skeleton_) return "BPF program not attached";
  snapshot->vm_map_capacity = bpf_map__max_entries(skeleton_->maps.counter_index);
  snapshot->overflow_capacity = bpf_map__max_entries(skeleton_->maps.host_overflow);

  // The directory first, then the counters it names: a key added in between
  // is read by the next scrape.
  std::vector<std::pair<vm_exit_key, std::uint32_t>> indexes;
  std::uint32_t end = 0;
  std::string err = ReadHashValues<vm_exit_key, std::uint32_t>(
      bpf_map__fd(skeleton_->maps.counter_index), 1,
      [&](const vm_exit_key& key, const std::uint32_t* index) {
        indexes.emplace_back(key, *index);
        end = std::max(end, *index + 1);
      });
  std::vector<std::uint64_t> counts;
  counters_.exits().SumRange(end, &counts);
  snapshot->vm_counts.reserve(indexes.size());
  for (const auto& [key, index] : indexes) {
    if (index < counts.size()) snapshot->vm_counts.push_back({key, counts[index]});
  }
  if (err.empty()) {
    // A plain hash, one value per entry: cpus = 1.
    err = ReadHashValues<host_exit_key, std::uint64_t>(
        bpf_map__fd(skeleton_->maps.host_overflow), 1,
        [&](const host_exit_key& key, const std::uint64_t* count) {
          snapshot->overflow[{key.isa, key.exit_reason}] += *count;
        });
  }
  if (err.empty()) {
    err = ReadHashValues<host_exit_key, std::uint64_t>(
        bpf_map__fd(skeleton_->maps.retired_counts), 1,
        [&](const host_exit_key& key, const std::uint64_t* count) {
          snapshot->retired[{key.isa, key.exit_reason}] += *count;
        });
  }
  if (err.empty()) {
    err = SumPerCpuArray(bpf_map__fd(skeleton_->maps.lost), KVM_EXIT_LOST_NR, possible_cpus_,
                         &snapshot->lost);
    if (!err.empty()) err = "reading the lost counter failed: " + err;
  }
  if (err.empty() && options_.exit_handling_time) {
    snapshot->timing = true;
    err = ReadHashValues<host_exit_key, exit_time_hist>(
        bpf_map__fd(skeleton_->maps.exit_time_hist), possible_cpus_,
        [&](const host_exit_key& key, const exit_time_hist* per_cpu) {
          snapshot->exit_time[{key.isa, key.exit_reason}] = SumHistograms(per_cpu, possible_cpus_);
        });
    if (err.empty()) {
      // The time of each key is at its counter's index (bpf/kvm_exit.h).
      std::vector<std::uint64_t> ns;
      counters_.times().SumRange(end, &ns);
      for (const auto& [key, index] : indexes) {
        if (index < ns.size() && ns[index] != 0) snapshot->vm_time_ns.push_back({key, ns[index]});
      }
    }
    if (err.empty()) {
      err = SumPerCpuArray(bpf_map__fd(skeleton_->maps.timing_lost), KVM_EXIT_TIMING_LOST_NR,
                           possible_cpus_, &snapshot->timing_lost);
      if (!err.empty()) err = "reading the timing_lost counter failed: " + err;
    }
  }
  if (err.empty() && !options_.DrilldownLoaded().empty()) {
    snapshot->drilldown_on = true;
    // A plain hash, one value per entry: cpus = 1.
    std::vector<DrilldownBlock> blocks;
    snapshot->drilldown.reserve(last_drilldown_counts_ + last_drilldown_counts_ / 16);
    err = ReadHashValues<drilldown_key, drilldown_items>(
        bpf_map__fd(skeleton_->maps.drilldown), 1,
        [&](const drilldown_key& key, const drilldown_items* items) {
          const std::size_t first = snapshot->drilldown.size();
          AppendDrilldownSlots(key, *items, snapshot->drilldown);
          blocks.push_back({key.tgid, first, snapshot->drilldown.size()});
        });
    OrderByTgid(blocks, snapshot->drilldown);
    last_drilldown_counts_ = snapshot->drilldown.size();
    std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(possible_cpus_));
    for (std::uint32_t kind = 0; err.empty() && kind < KVM_DRILLDOWN_KIND_NR; ++kind) {
      if (bpf_map_lookup_elem(bpf_map__fd(skeleton_->maps.drilldown_lost), &kind, per_cpu.data()) !=
          0) {
        err = "reading the drilldown_lost counter failed: " + ErrnoText(errno);
      } else {
        snapshot->drilldown_lost[kind] = SumCpus(per_cpu.data(), possible_cpus_);
      }
    }
  }
  if (!err.empty()) *snapshot = ExitSnapshot{};
  return err;
}

std::vector<VmExitCount> BpfExitSource::Remove(const std::vector<vm_exit_key>& keys) {
  if (!skeleton_) return {};
  return counters_.TakeBack(*skeleton_, keys);
}

std::string BpfExitSource::ReplenishFreeCounters(std::size_t counters_in_use) {
  if (!skeleton_) return "";
  return counters_.Replenish(*skeleton_, counters_in_use);
}

void BpfExitSource::RemoveDrilldown(const std::vector<std::uint32_t>& tgids) {
  if (!skeleton_) return;
  const int fd = bpf_map__fd(skeleton_->maps.drilldown);
  // The VM has ended: no event can come in between, so a plain delete is exact.
  for (const std::uint32_t tgid : tgids) {
    for (const DrilldownKind kind : options_.DrilldownLoaded()) {
      const drilldown_key key{tgid, static_cast<std::uint32_t>(kind)};
      bpf_map_delete_elem(fd, &key);
    }
  }
}

bool BpfExitSource::DrilldownAttached(DrilldownKind kind) const {
  if (!skeleton_) return false;
  const ProgramTable table = MakeProgramTable(*skeleton_, options_);
  const ProgramRow& row = DrilldownRow(table, kind);
  if (!row.on) return false;
  if (!row.follows_storms) return true;
  const std::size_t column = ProgramColumn(attached_hook_);
  return *row.links[column] != nullptr ||
         state_.HoldsLink(PinnedState::LinkName(row.programs[column]));
}

std::string BpfExitSource::SetDrilldownAttached(DrilldownKind kind, bool attach) {
  if (!skeleton_) return "BPF program not attached";
  const ProgramTable table = MakeProgramTable(*skeleton_, options_);
  const ProgramRow& row = DrilldownRow(table, kind);
  if (!row.on || !row.follows_storms) {
    return "drill-down kind " + std::string(DrilldownKindName(kind)) + " does not follow storms";
  }
  const std::size_t column = ProgramColumn(attached_hook_);
  bpf_link** link = row.links[column];
  const std::string name = PinnedState::LinkName(row.programs[column]);
  if (attach) {
    if (*link != nullptr || state_.HoldsLink(name)) return "";
    if (std::string error = AttachRow(row, attached_hook_); !error.empty()) return error;
    if (state_.open()) {
      if (std::string error = state_.KeepLink(name, bpf_link__fd(*link)); !error.empty()) {
        // Attached but not kept, a restart would lose it half-way: neither.
        bpf_link__destroy(*link);
        *link = nullptr;
        return "keeping the link in " + state_.where() + ": " + error;
      }
    }
    return "";
  }
  // The kept link first: a pin would keep the program attached after ours closes.
  if (state_.open()) state_.DropLink(name);
  if (*link != nullptr) {
    bpf_link__destroy(*link);
    *link = nullptr;
  }
  return "";
}

std::string BpfExitSource::FillForTesting(const std::vector<VmExitCount>& counts,
                                          const std::vector<DrilldownCount>& drilldown) {
  if (!skeleton_) return "BPF program not attached";
  return FillMapsForTesting(*skeleton_, counters_, counts, drilldown);
}

BpfExitSource::BootExitsKept BpfExitSource::KeptBootExits() const {
  BootExitsKept kept;
  if (!skeleton_) return kept;
  if (const std::optional<exporter_state> state =
          ReadExporterState(bpf_map__fd(skeleton_->maps.exporter_state))) {
    std::copy(std::begin(state->boot_exits_buckets), std::end(state->boot_exits_buckets),
              kept.buckets.begin());
    kept.sum = state->boot_exits_sum;
  }
  return kept;
}

void BpfExitSource::KeepBootWindow(std::size_t bucket, std::uint64_t exits) {
  if (!skeleton_ || bucket >= KVM_EXIT_BOOT_EXITS_BUCKETS) return;
  UpdateExporterState(bpf_map__fd(skeleton_->maps.exporter_state), [&](exporter_state& state) {
    ++state.boot_exits_buckets[bucket];
    state.boot_exits_sum += exits;
  });
}

BpfProgramStats BpfExitSource::ProgramStats() const {
  BpfProgramStats stats;
  if (!skeleton_) return stats;
  bpf_prog_info info{};
  std::uint32_t length = sizeof(info);
  // An adopted state's exit program is the pinned one: this skeleton loaded none.
  const int program_fd = state_start_ == StateStart::kAdopted
                             ? state_.adopted_exit_program()
                             : bpf_program__fd(ExitProgram(*skeleton_, attached_hook_));
  if (bpf_obj_get_info_by_fd(program_fd, &info, &length) == 0) {
    stats.run_count = info.run_cnt;
    stats.run_time_ns = info.run_time_ns;
    stats.missed = info.recursion_misses;
  }
  return stats;
}

}  // namespace kvmexit
