// SPDX-License-Identifier: Apache-2.0
#include "source/bpf_exit_source.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>

#include "kvm_exit.skel.h"
#include "source/errno_text.h"
#include "source/hook_choice.h"
#include "source/kernel_checks.h"
#include "source/libbpf_log.h"
#include "source/map_reader.h"
#include "source/map_values.h"
#include "source/test_fill.h"

namespace kvmexit {
namespace {

// VMs the drill-down map holds per kind on; the events of more go to
// kvm_drilldown_overflow_events_total.
constexpr std::uint32_t kDrilldownVms = 2048;

}  // namespace

void BpfExitSource::SkeletonDeleter::operator()(kvm_exit_bpf* skeleton) const {
  kvm_exit_bpf__destroy(skeleton);
}

BpfExitSource::BpfExitSource(BpfSourceOptions options)
    : options_(std::move(options)), possible_cpus_(PossibleCpus()), counters_(possible_cpus_) {
  CaptureLibbpfLog();
}

BpfExitSource::~BpfExitSource() = default;

std::string BpfExitSource::Attach() {
  if (skeleton_) return "";
  if (std::string missing = CheckKernelSupport(options_.tracefs_root); !missing.empty()) {
    return missing;
  }
  const HookChoice choice = ChooseHooks(options_.hook, options_.sys_root);
  if (!choice.error.empty()) return choice.error;
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

namespace {

// Error text for a refused load or attach (EPERM/EACCES) on `hook`: what
// that hook needs, not a generic "run as root".
std::string PermissionHint(KernelHook hook, bool attaching) {
  switch (hook) {
    case KernelHook::kTpBtf:
      return "; tp_btf on kvm's module tracepoint needs CAP_SYS_ADMIN besides CAP_BPF and "
             "CAP_PERFMON (libbpf lists the kernel's BTF objects to find kvm's); raw_tp needs only "
             "CAP_BPF and CAP_PERFMON: set kernel.hook: raw_tp or auto";
    case KernelHook::kRawTp:
      return "; raw_tp needs CAP_BPF and CAP_PERFMON";
    case KernelHook::kTracepoint:
      if (!attaching) return "; the classic tracepoint needs CAP_BPF and CAP_PERFMON to load";
      // Debian and Ubuntu kernels refuse perf_event_open without CAP_SYS_ADMIN
      // when kernel.perf_event_paranoid > 2, even with CAP_PERFMON.
      return "; the classic tracepoint attaches with perf_event_open, which needs CAP_SYS_ADMIN "
             "where kernel.perf_event_paranoid > 2 (Debian's default is 3); raw_tp needs only "
             "CAP_BPF and CAP_PERFMON: set kernel.hook: raw_tp or auto";
    case KernelHook::kAuto:
      break;
  }
  return "";
}

// The name of the exit program's hook for messages.
std::string HookTarget(KernelHook hook, std::string_view tracepoint) {
  switch (hook) {
    case KernelHook::kTpBtf:
      return "tp_btf/" + std::string(tracepoint);
    case KernelHook::kRawTp:
      return "raw_tp/" + std::string(tracepoint);
    default:
      return "tracepoint kvm:" + std::string(tracepoint);
  }
}

}  // namespace

std::string BpfExitSource::LoadAndAttach(KernelHook hook, std::uint32_t btf_vendor_isa,
                                         const CoreBtf& core_btf) {
  TakeLibbpfWarning();  // forget warnings of earlier attempts
  LIBBPF_OPTS(bpf_object_open_opts, open_opts);
  // A CO-RE target that is not the running vmlinux: libbpf then never loads
  // module BTF for relocations (nor lists BTF objects to find it).
  if (!core_btf.path.empty()) open_opts.btf_custom_path = core_btf.path.c_str();
  SkeletonPtr skeleton(kvm_exit_bpf__open_opts(&open_opts));
  if (!skeleton) return "opening the BPF object failed: " + ErrnoText(errno);
  const bool timing = options_.exit_handling_time;
  // Every program, one row per tracepoint, one column per hook (ProgramColumn).
  // The exit program always loads; the kvm_entry program only with timing;
  // each drill-down program only when its kind is on.
  struct ProgramRow {
    std::array<bpf_program*, 3> programs;
    std::array<bpf_link**, 3> links;
    const char* tracepoint;
    bool on;
    std::string off_hint;  // how to do without it, when attaching it fails
  };
  auto& progs = skeleton->progs;
  auto& links = skeleton->links;
#define KVMEXIT_PROGRAM_ROW(name)                     \
  {progs.name, progs.name##_btf, progs.name##_raw}, { \
    &links.name, &links.name##_btf, &links.name##_raw \
  }
  const auto drilldown_on = [&](DrilldownKind kind) {
    return std::find(options_.drilldown.begin(), options_.drilldown.end(), kind) !=
           options_.drilldown.end();
  };
  const auto drill_hint = [](DrilldownKind kind) {
    return "; or remove " + std::string(DrilldownKindName(kind)) + " from collector.drilldown";
  };
  // Attached in this order: the entry program before the exit program, so
  // that no exit is stamped before its entry can complete it; the exit
  // program last, so that a failure leaves nothing half attached.
  std::array<ProgramRow, 2 + KVM_DRILLDOWN_KIND_NR> rows = {{
      {KVMEXIT_PROGRAM_ROW(time_kvm_entry), "kvm_entry", timing,
       "; or set collector.exit_handling_time: false"},
      {KVMEXIT_PROGRAM_ROW(count_kvm_pio), "kvm_pio", drilldown_on(DrilldownKind::kIo),
       drill_hint(DrilldownKind::kIo)},
      {KVMEXIT_PROGRAM_ROW(count_kvm_msr), "kvm_msr", drilldown_on(DrilldownKind::kMsr),
       drill_hint(DrilldownKind::kMsr)},
      {KVMEXIT_PROGRAM_ROW(count_kvm_mmio), "kvm_mmio", drilldown_on(DrilldownKind::kMmio),
       drill_hint(DrilldownKind::kMmio)},
      {KVMEXIT_PROGRAM_ROW(count_kvm_hypercall), "kvm_hypercall",
       drilldown_on(DrilldownKind::kHypercall), drill_hint(DrilldownKind::kHypercall)},
      {KVMEXIT_PROGRAM_ROW(count_kvm_userspace_exit), "kvm_userspace_exit",
       drilldown_on(DrilldownKind::kUserspace), drill_hint(DrilldownKind::kUserspace)},
      {KVMEXIT_PROGRAM_ROW(count_kvm_exit), "kvm_exit", true, ""},
  }};
#undef KVMEXIT_PROGRAM_ROW
  const std::size_t column = ProgramColumn(hook);
  for (const ProgramRow& row : rows) {
    for (std::size_t c = 0; c < row.programs.size(); ++c) {
      bpf_program__set_autoload(row.programs[c], row.on && c == column);
    }
  }
  skeleton->rodata->count_per_vcpu = options_.per_vcpu ? 1 : 0;
  skeleton->rodata->btf_vendor_isa = btf_vendor_isa;
  skeleton->rodata->time_exits = timing ? 1 : 0;
  // vm_map_capacity counters: indexes 1..capacity (0 means "none" to the program).
  const std::uint32_t capacity = options_.vm_map_capacity;
  for (auto [map, entries] : {std::pair{skeleton->maps.counter_index, capacity},
                              std::pair{skeleton->maps.free_counters, capacity},
                              std::pair{skeleton->maps.exit_counters, capacity + 1}}) {
    if (int err = bpf_map__set_max_entries(map, entries); err != 0) {
      return "setting " + std::string(bpf_map__name(map)) + " capacity failed: " + ErrnoText(err);
    }
  }
  // One per-VM time entry per counter; a token map when timing is off.
  if (int err = bpf_map__set_max_entries(skeleton->maps.vm_exit_time,
                                         timing ? options_.vm_map_capacity : 1);
      err != 0) {
    return "setting vm_exit_time capacity failed: " + ErrnoText(err);
  }
  // One entry per VM and kind on, preallocated (1,152 bytes each). A VM takes
  // at least one counter, so vm_map_capacity bounds the VMs; so does
  // kDrilldownVms (2.4 MB per kind on), far beyond a host's VMs. A token map
  // when no kind is on.
  const auto drilldown_capacity = static_cast<std::uint32_t>(std::max<std::size_t>(
      1, std::min(options_.vm_map_capacity, kDrilldownVms) * options_.drilldown.size()));
  if (int err = bpf_map__set_max_entries(skeleton->maps.drilldown, drilldown_capacity); err != 0) {
    return "setting drilldown capacity failed: " + ErrnoText(err);
  }
  const std::string what = HookTarget(hook, "kvm_exit");
  if (int err = kvm_exit_bpf__load(skeleton.get()); err != 0) {
    std::string detail = TakeLibbpfWarning();
    return "loading the BPF program for " + what + " failed: " + ErrnoText(err) +
           (detail.empty() ? "" : " (libbpf: " + detail + ")") +
           (err == -EPERM || err == -EACCES ? PermissionHint(hook, false) : "");
  }
  // The first counters free before the first exit; the sampler hands out
  // the rest as they are needed (ReplenishFreeCounters).
  if (std::string error = counters_.Start(*skeleton); !error.empty()) return error;
  // The skeleton owns the links: destroying it detaches.
  for (const ProgramRow& row : rows) {
    if (!row.on) continue;
    bpf_link** link = row.links[column];
    *link = bpf_program__attach(row.programs[column]);
    if (*link == nullptr) {
      const int err = -errno;
      std::string detail = TakeLibbpfWarning();
      const bool refused = err == -EACCES || err == -EPERM;
      return "attaching to " + HookTarget(hook, row.tracepoint) + " failed: " + ErrnoText(err) +
             (detail.empty() ? "" : " (libbpf: " + detail + ")") +
             (refused ? PermissionHint(hook, true) : "") + row.off_hint;
    }
  }
  skeleton_ = std::move(skeleton);
  attached_hook_ = hook;
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
  if (err.empty()) {
    err = SumPerCpuRange(bpf_map__fd(skeleton_->maps.exit_counters), end, possible_cpus_, &counts);
    if (!err.empty()) err = "reading the exit counters failed: " + err;
  }
  snapshot->vm_counts.reserve(indexes.size());
  for (const auto& [key, index] : indexes) {
    if (index < counts.size()) snapshot->vm_counts.push_back({key, counts[index]});
  }
  if (err.empty()) {
    err = ReadPerCpuHash<host_exit_key>(bpf_map__fd(skeleton_->maps.host_overflow), possible_cpus_,
                                        [&](const host_exit_key& key, std::uint64_t count) {
                                          snapshot->overflow[{key.isa, key.exit_reason}] += count;
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
      err = ReadPerCpuHash<vm_exit_key>(bpf_map__fd(skeleton_->maps.vm_exit_time), possible_cpus_,
                                        [&](const vm_exit_key& key, std::uint64_t ns) {
                                          snapshot->vm_time_ns.push_back({key, ns});
                                        });
    }
    if (err.empty()) {
      err = SumPerCpuArray(bpf_map__fd(skeleton_->maps.timing_lost), KVM_EXIT_TIMING_LOST_NR,
                           possible_cpus_, &snapshot->timing_lost);
      if (!err.empty()) err = "reading the timing_lost counter failed: " + err;
    }
  }
  if (err.empty() && !options_.drilldown.empty()) {
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
  return counters_.TakeBack(*skeleton_, keys, options_.exit_handling_time);
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
    for (const DrilldownKind kind : options_.drilldown) {
      const drilldown_key key{tgid, static_cast<std::uint32_t>(kind)};
      bpf_map_delete_elem(fd, &key);
    }
  }
}

std::string BpfExitSource::FillForTesting(const std::vector<VmExitCount>& counts,
                                          const std::vector<DrilldownCount>& drilldown) {
  if (!skeleton_) return "BPF program not attached";
  return FillMapsForTesting(*skeleton_, counters_, possible_cpus_, counts, drilldown);
}

BpfProgramStats BpfExitSource::ProgramStats() const {
  BpfProgramStats stats;
  if (!skeleton_) return stats;
  bpf_prog_info info{};
  std::uint32_t length = sizeof(info);
  const std::array<bpf_program*, 3> programs = {skeleton_->progs.count_kvm_exit,
                                                skeleton_->progs.count_kvm_exit_btf,
                                                skeleton_->progs.count_kvm_exit_raw};
  bpf_program* program = programs[ProgramColumn(attached_hook_)];
  if (bpf_obj_get_info_by_fd(bpf_program__fd(program), &info, &length) == 0) {
    stats.run_count = info.run_cnt;
    stats.run_time_ns = info.run_time_ns;
    stats.missed = info.recursion_misses;
  }
  return stats;
}

}  // namespace kvmexit
