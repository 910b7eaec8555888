#include "bpf_exit_source.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "kvm_exit.skel.h"

namespace kvmexit {
namespace {

// libbpf reports details through a global print callback; keep the last
// warning so an attach failure can say why instead of spraying stderr.
std::mutex g_libbpf_log_mutex;
std::string g_libbpf_last_warning;

int CaptureLibbpfLog(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[512];
  const int n = std::vsnprintf(line, sizeof(line), format, args);
  std::lock_guard lock(g_libbpf_log_mutex);
  g_libbpf_last_warning.assign(
      line, n > 0 ? std::min<std::size_t>(static_cast<std::size_t>(n), sizeof(line) - 1) : 0);
  while (!g_libbpf_last_warning.empty() && g_libbpf_last_warning.back() == '\n') {
    g_libbpf_last_warning.pop_back();
  }
  return 0;
}

std::string TakeLibbpfWarning() {
  std::lock_guard lock(g_libbpf_log_mutex);
  std::string warning;
  warning.swap(g_libbpf_last_warning);
  return warning;
}

std::string ErrnoText(int err) { return std::strerror(err < 0 ? -err : err); }

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Checks the preconditions one by one so the message names the missing piece.
std::string CheckKernelSupport(const std::string& tracefs_root) {
  if (!Exists("/sys/kernel/btf/vmlinux")) {
    return "kernel has no BTF (/sys/kernel/btf/vmlinux missing): CO-RE needs a kernel built "
           "with CONFIG_DEBUG_INFO_BTF=y";
  }
  const std::string events = tracefs_root + "/events";
  if (!Exists(events)) {
    // tracefs is often present but not mounted; mounting it is harmless.
    ::mount("nodev", tracefs_root.c_str(), "tracefs", 0, nullptr);
  }
  if (!Exists(events)) {
    return "tracefs is not mounted at " + tracefs_root + " (mount -t tracefs nodev " +
           tracefs_root + ", or set kernel.tracefs_path)";
  }
  if (!Exists(events + "/kvm/kvm_exit")) {
    return "tracepoint kvm:kvm_exit not found under " + events +
           ": the kvm module is not loaded (modprobe kvm_intel or kvm_amd); will retry";
  }
  return "";
}

// Sums per-CPU u64 values; the kernel pads each CPU's slot to 8 bytes.
std::uint64_t SumCpus(const std::uint64_t* per_cpu, int cpus) {
  std::uint64_t total = 0;
  for (int cpu = 0; cpu < cpus; ++cpu) total += per_cpu[cpu];
  return total;
}

// Reads a per-CPU hash map whose values are u64, in batches when the kernel has
// BPF_MAP_LOOKUP_BATCH (5.6+), else key by key.
template <typename Key, typename Fn>
std::string ReadPerCpuHash(int map_fd, int cpus, Fn&& visit) {
  std::size_t chunk = 1024;
  std::vector<Key> keys(chunk);
  std::vector<std::uint64_t> values(chunk * static_cast<std::size_t>(cpus));
  std::uint64_t batch_in = 0;
  std::uint64_t batch_out = 0;
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (;;) {
    auto count = static_cast<std::uint32_t>(chunk);
    const int err = bpf_map_lookup_batch(map_fd, first ? nullptr : &batch_in, &batch_out,
                                         keys.data(), values.data(), &count, &opts);
    if (err < 0 && err != -ENOENT) {
      if (err == -ENOSPC && chunk < (1U << 20)) {
        // A hash bucket holds more entries than the buffer: grow and restart.
        chunk *= 4;
        keys.resize(chunk);
        values.resize(chunk * static_cast<std::size_t>(cpus));
        first = true;
        continue;
      }
      if (first && (err == -EINVAL || err == -ENOTSUP || err == -EOPNOTSUPP)) break;
      return "batch lookup failed: " + ErrnoText(err);
    }
    for (std::uint32_t i = 0; i < count; ++i) {
      visit(keys[i], SumCpus(&values[static_cast<std::size_t>(i) * cpus], cpus));
    }
    if (err == -ENOENT) return "";
    batch_in = batch_out;
    first = false;
  }
  // Kernels without batch ops: iterate keys one by one.
  Key key{};
  Key next{};
  const Key* previous = nullptr;
  std::vector<std::uint64_t> value(static_cast<std::size_t>(cpus));
  while (bpf_map_get_next_key(map_fd, previous, &next) == 0) {
    if (bpf_map_lookup_elem(map_fd, &next, value.data()) == 0) {
      visit(next, SumCpus(value.data(), cpus));
    }
    key = next;
    previous = &key;
  }
  return "";
}

}  // namespace

void BpfExitSource::SkeletonDeleter::operator()(kvm_exit_bpf* skeleton) const {
  kvm_exit_bpf__destroy(skeleton);
}

BpfExitSource::BpfExitSource(BpfSourceOptions options) : options_(std::move(options)) {
  libbpf_set_print(CaptureLibbpfLog);
  const int cpus = libbpf_num_possible_cpus();
  possible_cpus_ = cpus > 0 ? cpus : 1;
}

BpfExitSource::~BpfExitSource() = default;

std::string BpfExitSource::Attach() {
  if (skeleton_) return "";
  if (std::string missing = CheckKernelSupport(options_.tracefs_root); !missing.empty()) {
    return missing;
  }
  std::unique_ptr<kvm_exit_bpf, SkeletonDeleter> skeleton(kvm_exit_bpf__open());
  if (!skeleton) return "opening the BPF object failed: " + ErrnoText(errno);
  skeleton->rodata->count_per_vcpu = options_.per_vcpu ? 1 : 0;
  if (int err = bpf_map__set_max_entries(skeleton->maps.vm_exits, options_.vm_map_capacity);
      err != 0) {
    return "setting vm_exits capacity failed: " + ErrnoText(err);
  }
  if (int err = kvm_exit_bpf__load(skeleton.get()); err != 0) {
    std::string detail = TakeLibbpfWarning();
    return "loading the BPF program failed: " + ErrnoText(err) +
           (detail.empty() ? "" : " (libbpf: " + detail + ")") +
           (err == -EPERM ? "; run as root or grant CAP_BPF and CAP_PERFMON" : "");
  }
  if (int err = kvm_exit_bpf__attach(skeleton.get()); err != 0) {
    std::string detail = TakeLibbpfWarning();
    // Debian and Ubuntu kernels refuse perf_event_open without CAP_SYS_ADMIN
    // when kernel.perf_event_paranoid > 2, even with CAP_PERFMON.
    const bool refused = err == -EACCES || err == -EPERM;
    return "attaching to tracepoint kvm:kvm_exit failed: " + ErrnoText(err) +
           (detail.empty() ? "" : " (libbpf: " + detail + ")") +
           (refused ? "; run as root, or grant CAP_SYS_ADMIN, or set sysctl "
                      "kernel.perf_event_paranoid=2 (see docs/deploy.md)"
                    : "");
  }
  skeleton_ = std::move(skeleton);
  return "";
}

std::string BpfExitSource::Read(ExitSnapshot* snapshot) const {
  *snapshot = ExitSnapshot{};
  if (!skeleton_) return "BPF program not attached";
  snapshot->vm_map_capacity = bpf_map__max_entries(skeleton_->maps.vm_exits);
  snapshot->overflow_capacity = bpf_map__max_entries(skeleton_->maps.host_overflow);

  std::string err =
      ReadPerCpuHash<vm_exit_key>(bpf_map__fd(skeleton_->maps.vm_exits), possible_cpus_,
                                  [&](const vm_exit_key& key, std::uint64_t count) {
                                    snapshot->vm_counts.push_back({key, count});
                                  });
  if (err.empty()) {
    err = ReadPerCpuHash<host_exit_key>(bpf_map__fd(skeleton_->maps.host_overflow), possible_cpus_,
                                        [&](const host_exit_key& key, std::uint64_t count) {
                                          snapshot->overflow[{key.isa, key.exit_reason}] += count;
                                        });
  }
  if (err.empty()) {
    std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(possible_cpus_));
    const std::uint32_t index = KVM_EXIT_LOST_OVERFLOW_FULL;
    if (bpf_map_lookup_elem(bpf_map__fd(skeleton_->maps.lost), &index, per_cpu.data()) == 0) {
      snapshot->lost = SumCpus(per_cpu.data(), possible_cpus_);
    } else {
      err = "reading the lost counter failed: " + ErrnoText(errno);
    }
  }
  if (!err.empty()) *snapshot = ExitSnapshot{};
  return err;
}

std::vector<VmExitCount> BpfExitSource::Remove(const std::vector<vm_exit_key>& keys) {
  std::vector<VmExitCount> removed;
  if (!skeleton_) return removed;
  const int fd = bpf_map__fd(skeleton_->maps.vm_exits);
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(possible_cpus_));
  for (const vm_exit_key& key : keys) {
    // lookup_and_delete is atomic (5.14+): no exit can slip between read and delete.
    int err = bpf_map_lookup_and_delete_elem(fd, &key, per_cpu.data());
    if (err == -EINVAL || err == -ENOTSUP || err == -EOPNOTSUPP) {
      err = bpf_map_lookup_elem(fd, &key, per_cpu.data());
      if (err == 0) err = bpf_map_delete_elem(fd, &key);
    }
    if (err == 0) removed.push_back({key, SumCpus(per_cpu.data(), possible_cpus_)});
  }
  return removed;
}

std::string BpfExitSource::FillForTesting(const std::vector<VmExitCount>& counts) {
  if (!skeleton_) return "BPF program not attached";
  const int fd = bpf_map__fd(skeleton_->maps.vm_exits);
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(possible_cpus_), 0);
  for (const VmExitCount& entry : counts) {
    per_cpu[0] = entry.count;
    if (int err = bpf_map_update_elem(fd, &entry.key, per_cpu.data(), BPF_ANY); err != 0) {
      return "filling vm_exits failed: " + ErrnoText(err);
    }
  }
  return "";
}

BpfProgramStats BpfExitSource::ProgramStats() const {
  BpfProgramStats stats;
  if (!skeleton_) return stats;
  bpf_prog_info info{};
  std::uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(bpf_program__fd(skeleton_->progs.count_kvm_exit), &info, &length) ==
      0) {
    stats.run_count = info.run_cnt;
    stats.run_time_ns = info.run_time_ns;
    stats.missed = info.recursion_misses;
  }
  return stats;
}

}  // namespace kvmexit
