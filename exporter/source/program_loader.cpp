// SPDX-License-Identifier: Apache-2.0
#include "source/program_loader.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <utility>

#include "kvm_exit.skel.h"
#include "source/errno_text.h"
#include "source/libbpf_log.h"
#include "source/map_reader.h"
#include "source/program_table.h"
#include "source/sharded_array.h"

namespace kvmexit {
namespace {

// VMs the drill-down map holds per kind on; the events of more go to
// kvm_drilldown_overflow_events_total.
constexpr std::uint32_t kDrilldownVms = 2048;

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

// Sets the capacity of every map that depends on the options, and the
// programs' view of the sharded counter arrays.
std::string SizeMaps(kvm_exit_bpf& skeleton, const BpfSourceOptions& options) {
  // vm_map_capacity counters: indexes 1..capacity (0 means "none" to the
  // program), in every shard. Timing keeps its time per counter alike.
  const std::uint32_t capacity = options.vm_map_capacity;
  const std::uint32_t shards = CounterShards(PossibleCpus());
  const std::uint32_t stride = capacity + 1;
  skeleton.rodata->counter_shard_mask = shards - 1;
  skeleton.rodata->counter_stride = stride;
  // Token maps (one entry) for what is off.
  const std::uint32_t timed = options.exit_handling_time ? shards * stride : 1;
  for (auto [map, entries] :
       {std::pair{skeleton.maps.counter_index, capacity},
        std::pair{skeleton.maps.free_counters, capacity},
        std::pair{skeleton.maps.exit_counters, shards * stride},
        std::pair{skeleton.maps.exit_time_ns, timed},
        std::pair{skeleton.maps.exit_time_hist,
                  options.exit_handling_time ? std::uint32_t{KVM_EXIT_TIME_HIST_CAPACITY} : 1}}) {
    if (int err = bpf_map__set_max_entries(map, entries); err != 0) {
      return "setting " + std::string(bpf_map__name(map)) + " capacity failed: " + ErrnoText(err);
    }
  }
  // One entry per VM and kind on, preallocated (1,152 bytes each). A VM takes
  // at least one counter, so vm_map_capacity bounds the VMs; so does
  // kDrilldownVms (2.4 MB per kind on), far beyond a host's VMs. A token map
  // when no kind is on.
  const auto drilldown_capacity = static_cast<std::uint32_t>(std::max<std::size_t>(
      1, std::min(options.vm_map_capacity, kDrilldownVms) * options.DrilldownLoaded().size()));
  if (int err = bpf_map__set_max_entries(skeleton.maps.drilldown, drilldown_capacity); err != 0) {
    return "setting drilldown capacity failed: " + ErrnoText(err);
  }
  return "";
}

}  // namespace

void SkeletonDeleter::operator()(kvm_exit_bpf* skeleton) const { kvm_exit_bpf__destroy(skeleton); }

std::string LoadPrograms(const BpfSourceOptions& options, KernelHook hook,
                         std::uint32_t btf_vendor_isa, const CoreBtf& core_btf, PinnedState* state,
                         SkeletonPtr* skeleton, bool* adopted) {
  TakeLibbpfWarning();  // forget warnings of earlier attempts
  *adopted = false;
  LIBBPF_OPTS(bpf_object_open_opts, open_opts);
  // A CO-RE target that is not the running vmlinux: libbpf then never loads
  // module BTF for relocations (nor lists BTF objects to find it).
  if (!core_btf.path.empty()) open_opts.btf_custom_path = core_btf.path.c_str();
  SkeletonPtr opened(kvm_exit_bpf__open_opts(&open_opts));
  if (!opened) return "opening the BPF object failed: " + ErrnoText(errno);
  kvm_exit_bpf& object = *opened;
  const std::size_t column = ProgramColumn(hook);
  const ProgramTable table = MakeProgramTable(object, options);
  for (const ProgramRow& row : table) {
    for (std::size_t c = 0; c < row.programs.size(); ++c) {
      bpf_program__set_autoload(row.programs[c], row.on && c == column);
    }
  }
  object.rodata->count_per_vcpu = options.per_vcpu ? 1 : 0;
  object.rodata->btf_vendor_isa = btf_vendor_isa;
  object.rodata->time_exits = options.exit_handling_time ? 1 : 0;
  if (std::string error = SizeMaps(object, options); !error.empty()) return error;
  const bool adopting =
      state != nullptr && state->PrepareLoad(object, hook, LinksToPin(object, options, hook),
                                             FollowLinks(object, options, hook));
  if (adopting) {
    // The pinned programs go on counting: loading ours would only run the
    // verifier. Those that follow storms load, on the kept maps: this process
    // attaches them at the next storm.
    for (const ProgramRow& row : table) {
      for (std::size_t c = 0; c < row.programs.size(); ++c) {
        bpf_program__set_autoload(row.programs[c], row.on && row.follows_storms && c == column);
      }
    }
  }
  if (int err = kvm_exit_bpf__load(&object); err != 0) {
    std::string detail = TakeLibbpfWarning();
    if (adopting) {
      // A pinned map that libbpf will not reuse (another size or type): the
      // state is not ours to adopt after all.
      state->Discard("a pinned map does not fit this configuration (libbpf: " + detail + ")");
      return LoadPrograms(options, hook, btf_vendor_isa, core_btf, state, skeleton, adopted);
    }
    return "loading the BPF program for " + HookTarget(hook, "kvm_exit") +
           " failed: " + ErrnoText(err) + (detail.empty() ? "" : " (libbpf: " + detail + ")") +
           (err == -EPERM || err == -EACCES ? PermissionHint(hook, false) : "");
  }
  *skeleton = std::move(opened);
  *adopted = adopting;
  return "";
}

namespace {

std::vector<PinnedLink> LinksOfRows(kvm_exit_bpf& skeleton, const BpfSourceOptions& options,
                                    KernelHook hook, bool follows_storms) {
  const std::size_t column = ProgramColumn(hook);
  std::vector<PinnedLink> links;
  for (const ProgramRow& row : MakeProgramTable(skeleton, options)) {
    if (!row.on || row.follows_storms != follows_storms) continue;
    links.push_back({row.links[column], PinnedState::LinkName(row.programs[column])});
  }
  return links;
}

}  // namespace

std::vector<PinnedLink> LinksToPin(kvm_exit_bpf& skeleton, const BpfSourceOptions& options,
                                   KernelHook hook) {
  return LinksOfRows(skeleton, options, hook, false);
}

std::vector<PinnedLink> FollowLinks(kvm_exit_bpf& skeleton, const BpfSourceOptions& options,
                                    KernelHook hook) {
  return LinksOfRows(skeleton, options, hook, true);
}

std::string AttachRow(const ProgramRow& row, KernelHook hook) {
  const std::size_t column = ProgramColumn(hook);
  bpf_link** link = row.links[column];
  *link = bpf_program__attach(row.programs[column]);
  if (*link != nullptr) return "";
  const int err = -errno;
  std::string detail = TakeLibbpfWarning();
  const bool refused = err == -EACCES || err == -EPERM;
  return "attaching to " + HookTarget(hook, row.tracepoint) + " failed: " + ErrnoText(err) +
         (detail.empty() ? "" : " (libbpf: " + detail + ")") +
         (refused ? PermissionHint(hook, true) : "") + row.off_hint;
}

std::string AttachPrograms(kvm_exit_bpf& skeleton, const BpfSourceOptions& options,
                           KernelHook hook) {
  for (const ProgramRow& row : MakeProgramTable(skeleton, options)) {
    if (!row.on || row.follows_storms) continue;
    if (std::string error = AttachRow(row, hook); !error.empty()) return error;
  }
  return "";
}

}  // namespace kvmexit
