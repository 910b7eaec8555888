// SPDX-License-Identifier: Apache-2.0
// Generic readers of BPF maps: hash maps in batches (key by key on kernels
// without batch ops), per-CPU u64 arrays summed over the CPUs. They know
// nothing of what the maps mean; BpfExitSource::Read does.
#pragma once

#include <bpf/bpf.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "source/errno_text.h"

namespace kvmexit {

// The CPUs a per-CPU map holds a value for (possible, not online); 1 if libbpf cannot tell.
int PossibleCpus();

// Sums per-CPU u64 values; the kernel pads each CPU's slot to 8 bytes.
inline std::uint64_t SumCpus(const std::uint64_t* per_cpu, int cpus) {
  std::uint64_t total = 0;
  for (int cpu = 0; cpu < cpus; ++cpu) total += per_cpu[cpu];
  return total;
}

// Entries per batch read for values of `entry_bytes` (all CPUs' of a per-CPU
// map): 1,024, fewer where that would pass 256 KiB. A per-CPU value is one
// per *possible* CPU, so without the cap a batch of 1,024 192-byte histograms
// on a 384-thread host is a 75 MB buffer, zeroed on every read (issue 29).
std::size_t BatchEntries(std::size_t entry_bytes);

// Reads a hash map, in batches when the kernel has BPF_MAP_LOOKUP_BATCH
// (5.6+), else key by key. `visit(key, values)` gets `cpus` values: a per-CPU
// map's value of each CPU in values[0..cpus), a plain map's one value (cpus = 1).
// A per-CPU map's Value must be a multiple of 8 bytes, the kernel's per-CPU slot size.
// A template in the header so that `visit` is inlined into the loop: a
// scrape visits every VM's keys through it.
template <typename Key, typename Value, typename Fn>
std::string ReadHashValues(int map_fd, int cpus, Fn&& visit) {
  if (cpus > 1 && sizeof(Value) % 8 != 0) return "per-CPU values must be padded to 8 bytes";
  std::size_t chunk = BatchEntries(sizeof(Value) * static_cast<std::size_t>(cpus));
  std::vector<Key> keys(chunk);
  std::vector<Value> values(chunk * static_cast<std::size_t>(cpus));
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
        // A hash bucket holds more entries than the buffer: grow and retry
        // from the same place (nothing was copied; starting over would visit
        // the entries of earlier batches twice).
        chunk *= 4;
        keys.resize(chunk);
        values.resize(chunk * static_cast<std::size_t>(cpus));
        continue;
      }
      if (first && (err == -EINVAL || err == -ENOTSUP || err == -EOPNOTSUPP)) break;
      return "batch lookup failed: " + ErrnoText(err);
    }
    for (std::uint32_t i = 0; i < count; ++i) {
      visit(keys[i], &values[static_cast<std::size_t>(i) * cpus]);
    }
    if (err == -ENOENT) return "";
    batch_in = batch_out;
    first = false;
  }
  // Kernels without batch ops: iterate keys one by one.
  Key key{};
  Key next{};
  const Key* previous = nullptr;
  std::vector<Value> value(static_cast<std::size_t>(cpus));
  while (bpf_map_get_next_key(map_fd, previous, &next) == 0) {
    if (bpf_map_lookup_elem(map_fd, &next, value.data()) == 0) visit(next, value.data());
    key = next;
    previous = &key;
  }
  return "";
}

// Sums each CPU's value of the per-CPU u64 array's elements [0, count) into
// (*sums)[0, count), in batches where the kernel has them.
std::string SumPerCpuRange(int map_fd, std::uint32_t count, int cpus,
                           std::vector<std::uint64_t>* sums);

// Sums a per-CPU array of u64 counters, all `entries` indices (added to *total).
std::string SumPerCpuArray(int map_fd, std::uint32_t entries, int cpus, std::uint64_t* total);

}  // namespace kvmexit
