// SPDX-License-Identifier: Apache-2.0
// Loads one kvm_exit counting program (ours, the reference written the
// common way, or one of the investigation variants of variants.bpf.c), keeps
// it attached until SIGTERM/SIGINT, then prints the kernel's BPF statistics
// for it and what its map counted:
//   LOADER program=<name> run_cnt=<n> run_time_ns=<n> misses=<n> counted=<n> top=<reason>:<n>
// and, for ours_drilldown, the kvm_pio program's:
//   LOADER extra pio_run_cnt=<n> pio_run_time_ns=<n> pio_counted=<n> pio_items=<n>
// (misses: runs the kernel skipped to avoid recursion; counted: the sum of all counts in the
// program's map; top: the exit reason counted most. Absent for the variants that count nothing.)
// Used by the nested per-exit cost benchmark (bench/exit_cost/README.md).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <array>
#include <csignal>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <memory>
#include <string>

#include <map>
#include <vector>

#include "kvm_exit.h"
#include "kvm_exit.skel.h"
#include "source/sharded_array.h"
#include "reference_kvmexit.skel.h"
#include "variants.skel.h"

namespace {

// Owns a libbpf skeleton: destroy detaches and frees everything it made.
template <typename Skeleton, void (*Destroy)(Skeleton*)>
struct SkeletonDeleter {
  void operator()(Skeleton* skeleton) const { Destroy(skeleton); }
};
using OursPtr = std::unique_ptr<kvm_exit_bpf, SkeletonDeleter<kvm_exit_bpf, kvm_exit_bpf__destroy>>;
using ReferencePtr =
    std::unique_ptr<reference_kvmexit_bpf,
                    SkeletonDeleter<reference_kvmexit_bpf, reference_kvmexit_bpf__destroy>>;
using VariantsPtr =
    std::unique_ptr<variants_bpf, SkeletonDeleter<variants_bpf, variants_bpf__destroy>>;

// Counts per exit reason, summed over CPUs and keys.
using ReasonCounts = std::map<std::uint32_t, std::uint64_t>;

int WaitForSignal() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::printf("LOADER attached\n");
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  return signal_number;
}

int Fail(const char* what, int err) {
  std::fprintf(stderr, "exit_cost_loader: %s failed: %s\n", what, std::strerror(-err));
  return 1;
}

// Sums a per-CPU hash whose keys are Key and whose per-CPU values are `slots`
// __u64 counts; reason_of(key, slot) names the exit reason of each count.
template <typename Key, typename ReasonOf>
ReasonCounts SumPercpuHash(const bpf_map* map, std::size_t slots, ReasonOf reason_of) {
  ReasonCounts counts;
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return counts;
  std::vector<std::uint64_t> values(static_cast<std::size_t>(cpus) * slots);
  const int fd = bpf_map__fd(map);
  Key key{};
  Key next{};
  const Key* previous = nullptr;
  while (bpf_map_get_next_key(fd, previous, &next) == 0) {
    key = next;
    previous = &key;
    if (bpf_map_lookup_elem(fd, &key, values.data()) != 0) continue;
    for (int cpu = 0; cpu < cpus; cpu++) {
      for (std::size_t slot = 0; slot < slots; slot++) {
        const std::uint64_t value = values[static_cast<std::size_t>(cpu) * slots + slot];
        if (value != 0) counts[reason_of(key, slot)] += value;
      }
    }
  }
  return counts;
}

ReasonCounts SumVmExits(const bpf_map* map) {
  return SumPercpuHash<vm_exit_key>(
      map, 1, [](const vm_exit_key& key, std::size_t) { return key.exit_reason; });
}

// The production program's per-VM counts by reason: directory, then the
// counters it names, summed over the shards (bpf/kvm_exit.h).
ReasonCounts SumOursCounters(const kvm_exit_bpf& skeleton) {
  ReasonCounts counts;
  kvmexit::ShardedArray counters;
  if (!counters
           .Map(bpf_map__fd(skeleton.maps.exit_counters), skeleton.rodata->counter_shard_mask + 1)
           .empty()) {
    return counts;
  }
  const int directory_fd = bpf_map__fd(skeleton.maps.counter_index);
  vm_exit_key key{};
  vm_exit_key next{};
  const vm_exit_key* previous = nullptr;
  while (bpf_map_get_next_key(directory_fd, previous, &next) == 0) {
    key = next;
    previous = &key;
    std::uint32_t index = 0;
    if (bpf_map_lookup_elem(directory_fd, &key, &index) != 0) continue;
    counts[key.exit_reason] += counters.Sum(index);
  }
  return counts;
}

// The io drill-down's counts by item (port | KVM_DRILLDOWN_IO_WRITE), its
// "other" slots' under the item they keep (the direction).
ReasonCounts SumIoDrilldown(const bpf_map* map) {
  ReasonCounts counts;
  const int fd = bpf_map__fd(map);
  drilldown_key key{};
  drilldown_key next{};
  const drilldown_key* previous = nullptr;
  drilldown_items items{};
  while (bpf_map_get_next_key(fd, previous, &next) == 0) {
    key = next;
    previous = &key;
    if (key.kind != KVM_DRILLDOWN_IO || bpf_map_lookup_elem(fd, &key, &items) != 0) continue;
    for (const auto* slots : {std::begin(items.items), std::begin(items.other)}) {
      const std::size_t slots_nr =
          slots == std::begin(items.items) ? std::size(items.items) : std::size(items.other);
      for (std::size_t i = 0; i < slots_nr; ++i) {
        if (slots[i].slot != 0)
          counts[static_cast<std::uint32_t>(slots[i].slot - 1)] += slots[i].count;
      }
    }
  }
  return counts;
}

void PrintStats(const char* name, int prog_fd, const ReasonCounts* counts) {
  bpf_prog_info info{};
  std::uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &length) != 0) {
    std::printf("LOADER program=%s stats unavailable: %s\n", name, std::strerror(errno));
    return;
  }
  std::printf("LOADER program=%s run_cnt=%llu run_time_ns=%llu misses=%llu", name,
              static_cast<unsigned long long>(info.run_cnt),
              static_cast<unsigned long long>(info.run_time_ns),
              static_cast<unsigned long long>(info.recursion_misses));
  if (counts != nullptr) {
    std::uint64_t total = 0;
    std::uint32_t top_reason = 0;
    std::uint64_t top_count = 0;
    for (const auto& [reason, count] : *counts) {
      total += count;
      if (count > top_count) {
        top_reason = reason;
        top_count = count;
      }
    }
    std::printf(" counted=%llu top=%u:%llu", static_cast<unsigned long long>(total), top_reason,
                static_cast<unsigned long long>(top_count));
  }
  std::printf("\n");
}

// Adds the per-CPU cache slots of the *_cache variants (struct exit_cache in
// variants.bpf.c: tgid, isa, then one __u64 count per reason) to counts.
void AddCacheCounts(const bpf_map* map, ReasonCounts& counts) {
  const int cpus = libbpf_num_possible_cpus();
  const std::size_t words = bpf_map__value_size(map) / 8;  // 1 (tgid, isa) + reasons
  if (cpus <= 0 || words < 2) return;
  std::vector<std::uint64_t> values(static_cast<std::size_t>(cpus) * words);
  const std::uint32_t zero = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(map), &zero, values.data()) != 0) return;
  for (int cpu = 0; cpu < cpus; cpu++) {
    for (std::size_t reason = 0; reason + 1 < words; reason++) {
      const std::uint64_t value = values[static_cast<std::size_t>(cpu) * words + 1 + reason];
      if (value != 0) counts[static_cast<std::uint32_t>(reason)] += value;
    }
  }
}

// struct pcpu1_slot in variants.bpf.c: tag, epoch, 128 cache entries, then the counters.
constexpr std::size_t kPcpu1Header = 16 + 128 * 8;

// Adds the counters of ours_btf_task, ours_btf_pcpu and (block) ours_btf_pcpu1 to counts: each
// directory entry (struct vm_exit_key -> index) names the per-CPU counter at that index.
void AddTaskCounts(const variants_bpf& skeleton, bool block, ReasonCounts& counts) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return;
  std::vector<std::uint64_t> values(static_cast<std::size_t>(cpus));
  const int dir_fd = bpf_map__fd(skeleton.maps.variant_task_dir);
  const int counters_fd = bpf_map__fd(skeleton.maps.variant_task_counters);
  // ours_btf_pcpu1: every CPU's whole element, read once.
  const std::size_t words = bpf_map__value_size(skeleton.maps.variant_pcpu1_slots) / 8;
  std::vector<std::uint64_t> slots;
  if (block) {
    slots.resize(static_cast<std::size_t>(cpus) * words);
    const std::uint32_t zero = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skeleton.maps.variant_pcpu1_slots), &zero, slots.data()) !=
        0)
      return;
  }
  vm_exit_key key{};
  vm_exit_key next{};
  const vm_exit_key* previous = nullptr;
  while (bpf_map_get_next_key(dir_fd, previous, &next) == 0) {
    key = next;
    previous = &key;
    std::uint32_t index = 0;
    if (bpf_map_lookup_elem(dir_fd, &key, &index) != 0) continue;
    if (block) {
      for (int cpu = 0; cpu < cpus; cpu++) {
        counts[key.exit_reason] +=
            slots[static_cast<std::size_t>(cpu) * words + kPcpu1Header / 8 + index];
      }
      continue;
    }
    if (bpf_map_lookup_elem(counters_fd, &index, values.data()) != 0) continue;
    for (const std::uint64_t value : values) counts[key.exit_reason] += value;
  }
}

int RunVariant(const std::string& name) {
  VariantsPtr skeleton(variants_bpf__open());
  if (!skeleton) return Fail("opening the variants", -errno);
  bpf_program* chosen = nullptr;
  bpf_program* program = nullptr;
  // floor_timed (and its VMX twin) comes with its kvm_entry half,
  // ours_btf_tasklocal with its thread-exit flush (NAME_exit), attached first
  // (as the exporter attaches its entry program before the exit program).
  const bool floor_timed = name == "floor_timed" || name == "floor_timed_vmx";
  const std::string entry_half = floor_timed ? "floor_timed_entry" : name + "_exit";
  bpf_program* entry = nullptr;
  bpf_object__for_each_program(program, skeleton->obj) {
    const bool is_it = name == bpf_program__name(program);
    const bool is_entry =
        (floor_timed || name == "ours_btf_tasklocal") && entry_half == bpf_program__name(program);
    bpf_program__set_autoload(program, is_it || is_entry);
    if (is_it) chosen = program;
    if (is_entry) entry = program;
  }
  if (chosen == nullptr) {
    std::fprintf(stderr, "exit_cost_loader: no program '%s' in variants.bpf.c\n", name.c_str());
    return 2;
  }
  if (int err = variants_bpf__load(skeleton.get()); err != 0)
    return Fail("loading the variant", err);
  const bool task_counters =
      name == "ours_btf_task" || name == "ours_btf_pcpu" || name == "ours_btf_pcpu1";
  if (task_counters) {
    // The free list of counter indexes (0 is never handed out), as user space would keep it;
    // ours_btf_pcpu1 has fewer counters (struct pcpu1_slot: header, cache, then the counters).
    const int free_fd = bpf_map__fd(skeleton->maps.variant_task_free);
    const std::uint32_t limit =
        name == "ours_btf_pcpu1"
            ? static_cast<std::uint32_t>(
                  (bpf_map__value_size(skeleton->maps.variant_pcpu1_slots) - kPcpu1Header) / 8)
            : bpf_map__max_entries(skeleton->maps.variant_task_free);
    for (std::uint32_t index = 1; index < limit; index++) {
      if (int err = bpf_map_update_elem(free_fd, nullptr, &index, BPF_ANY); err != 0)
        return Fail("filling variant_task_free", err);
    }
  }
  bpf_link* entry_link = nullptr;
  if (entry != nullptr) {
    entry_link = bpf_program__attach(entry);
    if (entry_link == nullptr) return Fail("attaching the variant's kvm_entry half", -errno);
  }
  bpf_link* link = bpf_program__attach(chosen);
  if (link == nullptr) {
    bpf_link__destroy(entry_link);
    return Fail("attaching the variant", -errno);
  }
  WaitForSignal();
  const bool floor = name == "floor_btf" || name == "floor_btf_vmx" || floor_timed;
  const bool counts_exits = name.rfind("ours", 0) == 0 || floor;
  const bool key8 = name.size() > 5 && name.compare(name.size() - 5, 5, "_key8") == 0;
  ReasonCounts counts;
  if (key8) {
    // pack_key in variants.bpf.c: the reason is the low 29 bits.
    counts = SumPercpuHash<std::uint64_t>(skeleton->maps.variant_vm_exits8, 1,
                                          [](std::uint64_t key, std::size_t) {
                                            return static_cast<std::uint32_t>(key & 0x1fffffffU);
                                          });
  } else if (counts_exits) {
    counts = SumVmExits(skeleton->maps.variant_vm_exits);
  }
  if (floor) AddCacheCounts(skeleton->maps.variant_reason_counts, counts);
  if (task_counters) AddTaskCounts(*skeleton, name == "ours_btf_pcpu1", counts);
  if (name.size() > 6 && name.compare(name.size() - 6, 6, "_cache") == 0) {
    AddCacheCounts(skeleton->maps.variant_exit_cache, counts);
  }
  PrintStats(name.c_str(), bpf_program__fd(chosen), counts_exits ? &counts : nullptr);
  bpf_link__destroy(link);
  bpf_link__destroy(entry_link);
  return 0;
}

}  // namespace

// The vendor module loaded, as BpfExitSource finds it: the ISA whose exit
// reason ours reads from the vCPU on tp_btf (kvm_amd: SVM, kvm_intel: VMX;
// arm64: its built-in KVM).
std::uint32_t VendorIsa() {
#if defined(__aarch64__)
  return KVM_EXIT_ISA_ARM64;
#else
  if (access("/sys/module/kvm_intel", F_OK) == 0) return KVM_EXIT_ISA_VMX;
  return KVM_EXIT_ISA_SVM;
#endif
}

int main(int argc, char** argv) {
  const std::string program = argc > 1 ? argv[1] : "";
  if (program == "ours" || program == "ours_tp" || program == "ours_timed" ||
      program == "ours_per_vcpu" || program == "ours_drilldown" ||
      program == "ours_drilldown_all" || program == "ours_tp_drilldown_all" ||
      program == "ours_raw" || program == "ours_raw_timed" || program == "ours_raw_per_vcpu" ||
      program == "ours_raw_drilldown_all") {
    // What the exporter attaches (BpfExitSource::Attach): with kernel.hook
    // auto on kvm_amd, tp_btf as root; "ours_tp" is the classic-tracepoint
    // fallback; "ours_raw" the same counting on raw_tp (auto without
    // CAP_SYS_ADMIN, e.g. the systemd unit).
    // "ours", "ours_raw" and "ours_tp" count only (collector.exit_handling_time: false);
    // "ours_timed" is the default: tp_btf counting plus the kvm_entry program
    // that times each exit ("ours_raw_timed" on raw_tp). "ours_drilldown" is "ours" plus the port
    // IO drill-down (collector.drilldown: [io]): count_kvm_pio on kvm:kvm_pio and its drilldown map
    // at the exporter's capacity (collector.vm_map_capacity, default 16384). "ours_drilldown_all"
    // turns on every kind (collector.drilldown: [io, msr, mmio, hypercall, userspace]). The
    // drill-down programs follow the exit program's hook, as in the exporter:
    // the _btf twins on tp_btf, the _raw ones on raw_tp;
    // "ours_tp_drilldown_all" is every kind on the classic tracepoints.
    const bool classic = program == "ours_tp" || program == "ours_tp_drilldown_all";
    const bool raw = program.starts_with("ours_raw");
    // The column of the program table: 0 classic, 1 tp_btf, 2 raw_tp (as ProgramColumn).
    const std::size_t column = classic ? 0 : raw ? 2 : 1;
    const bool timed = program == "ours_timed" || program == "ours_raw_timed";
    // "ours_per_vcpu" ("ours_raw_per_vcpu" on raw_tp): collector.per_vcpu: true, one counter (and
    // index cache tag) per vCPU instead of per VM.
    const bool per_vcpu = program == "ours_per_vcpu" || program == "ours_raw_per_vcpu";
    const bool drill_all = program.ends_with("drilldown_all");
    const bool drill_io = program == "ours_drilldown" || drill_all;
    OursPtr skeleton(kvm_exit_bpf__open());
    if (!skeleton) return Fail("opening ours", -errno);
    // Per tracepoint: its program and link per hook column.
    struct Row {
      std::array<bpf_program*, 3> programs;
      std::array<bpf_link**, 3> links;
    };
    auto& progs = skeleton->progs;
    auto& links = skeleton->links;
#define OURS_ROW(name)                                  \
  Row {                                                 \
    {progs.name, progs.name##_btf, progs.name##_raw}, { \
      &links.name, &links.name##_btf, &links.name##_raw \
    }                                                   \
  }
    const Row exit_row = OURS_ROW(count_kvm_exit);
    const Row entry_row = OURS_ROW(time_kvm_entry);
    const Row kinds[] = {
        // one per drill-down kind, in the contract's order
#define DRILLDOWN_KIND(ENUM, Name, config_name, tracepoint, ...) OURS_ROW(count_##tracepoint),
#include "drilldown_kinds.def"
#undef DRILLDOWN_KIND
    };
#undef OURS_ROW
    // As the exporter does, a kind whose tracepoint this kernel lacks (x86's
    // on arm64, arm64's on x86) is left out.
    const char* const tracepoints[] = {
#define DRILLDOWN_KIND(ENUM, Name, config_name, tracepoint, ...) #tracepoint,
#include "drilldown_kinds.def"
#undef DRILLDOWN_KIND
    };
    const auto kind_on = [&](std::size_t kind) {
      const std::string event = std::string("/sys/kernel/tracing/events/kvm/") + tracepoints[kind];
      return (kind == 0 ? drill_io : drill_all) && std::filesystem::exists(event);
    };
    for (std::size_t c = 0; c < 3; ++c) {
      bpf_program__set_autoload(exit_row.programs[c], c == column);
      bpf_program__set_autoload(entry_row.programs[c], timed && c == column);
      for (std::size_t kind = 0; kind < std::size(kinds); ++kind) {
        bpf_program__set_autoload(kinds[kind].programs[c], kind_on(kind) && c == column);
      }
    }
    // As BpfExitSource sizes it: 2,048 VMs per kind on, a token map when none is.
    constexpr std::uint32_t kDrilldownVms = 2048;
    if (int err = bpf_map__set_max_entries(
            skeleton->maps.drilldown,
            drill_io ? kDrilldownVms * (drill_all ? KVM_DRILLDOWN_KIND_NR : 1) : 1);
        err != 0) {
      return Fail("sizing drilldown", err);
    }
    // As BpfExitSource sizes them: the sharded counter arrays at the default
    // capacity, one shard per possible CPU up to the exporter's cap.
    constexpr std::uint32_t kStride = 16384 + 1;
    const std::uint32_t shards = kvmexit::CounterShards(libbpf_num_possible_cpus());
    skeleton->rodata->counter_shard_mask = shards - 1;
    skeleton->rodata->counter_stride = kStride;
    for (bpf_map* map : {skeleton->maps.exit_counters, skeleton->maps.exit_time_ns}) {
      if (int err = bpf_map__set_max_entries(map, shards * kStride); err != 0) {
        return Fail("sizing the counters", err);
      }
    }
    std::printf("LOADER width possible_cpus=%d counter_shards=%u\n", libbpf_num_possible_cpus(),
                shards);
    skeleton->rodata->btf_vendor_isa = classic ? 0 : VendorIsa();
    skeleton->rodata->time_exits = timed ? 1 : 0;
    skeleton->rodata->count_per_vcpu = per_vcpu ? 1 : 0;
    if (int err = kvm_exit_bpf__load(skeleton.get()); err != 0) return Fail("loading ours", err);
    // As the exporter does: every counter free, index 1 on top.
    const int free_fd = bpf_map__fd(skeleton->maps.free_counters);
    for (std::uint32_t index = bpf_map__max_entries(skeleton->maps.free_counters); index >= 1;
         --index) {
      if (bpf_map_update_elem(free_fd, nullptr, &index, BPF_ANY) != 0) {
        return Fail("filling free_counters", -errno);
      }
    }
    // As the exporter does: the entry program first, so no exit is stamped
    // without a program to close its interval.
    if (timed) {
      *entry_row.links[column] = bpf_program__attach(entry_row.programs[column]);
      if (*entry_row.links[column] == nullptr) return Fail("attaching kvm_entry", -errno);
    }
    bpf_program* chosen = exit_row.programs[column];
    *exit_row.links[column] = bpf_program__attach(chosen);
    if (*exit_row.links[column] == nullptr) return Fail("attaching", -errno);
    // The skeleton's links own them: destroying it detaches.
    for (std::size_t kind = 0; kind < std::size(kinds); ++kind) {
      if (!kind_on(kind)) continue;
      *kinds[kind].links[column] = bpf_program__attach(kinds[kind].programs[column]);
      if (*kinds[kind].links[column] == nullptr) {
        return Fail("attaching a drill-down kind", -errno);
      }
    }
    WaitForSignal();
    const ReasonCounts counts = SumOursCounters(*skeleton);
    PrintStats(program.c_str(), bpf_program__fd(chosen), &counts);
    if (drill_io) {
      // The kvm_pio program's own statistics and what its map counted (one
      // "reason" per port and direction: item = port | KVM_DRILLDOWN_IO_WRITE).
      const ReasonCounts ports = SumIoDrilldown(skeleton->maps.drilldown);
      std::uint64_t counted = 0;
      for (const auto& [item, count] : ports) counted += count;
      bpf_prog_info info{};
      std::uint32_t length = sizeof(info);
      if (bpf_obj_get_info_by_fd(bpf_program__fd(kinds[0].programs[column]), &info, &length) == 0) {
        // Its own line (guest_bench.sh appends it to the run's BENCH line).
        std::printf(
            "LOADER extra pio_run_cnt=%llu pio_run_time_ns=%llu pio_counted=%llu pio_items=%zu\n",
            static_cast<unsigned long long>(info.run_cnt),
            static_cast<unsigned long long>(info.run_time_ns),
            static_cast<unsigned long long>(counted), ports.size());
      }
    }
    return 0;
  }
  if (program == "reference") {
    ReferencePtr skeleton(reference_kvmexit_bpf__open_and_load());
    if (!skeleton) return Fail("loading reference", -errno);
    if (int err = reference_kvmexit_bpf__attach(skeleton.get()); err != 0) {
      return Fail("attaching", err);
    }
    WaitForSignal();
    // The value is one __u64 count per exit reason (MAX_EXIT_REASON of them).
    const std::size_t reasons = bpf_map__value_size(skeleton->maps.reference_exits) / 8;
    const ReasonCounts counts = SumPercpuHash<std::uint64_t>(
        skeleton->maps.reference_exits, reasons,
        [](std::uint64_t, std::size_t slot) { return static_cast<std::uint32_t>(slot); });
    PrintStats("reference", bpf_program__fd(skeleton->progs.reference_kvm_exit), &counts);
    return 0;
  }
  if (!program.empty()) return RunVariant(program);
  std::fprintf(stderr,
               "usage: exit_cost_loader "
               "ours|ours_tp|ours_timed|ours_per_vcpu|ours_drilldown|ours_drilldown_all|ours_tp_"
               "drilldown_all|"
               "ours_raw|ours_raw_timed|ours_raw_per_vcpu|ours_raw_drilldown_all|"
               "reference|<program "
               "of variants.bpf.c>\n");
  return 2;
}
