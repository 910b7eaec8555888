// SPDX-License-Identifier: Apache-2.0
#include "source/map_reader.h"

#include <bpf/libbpf.h>

#include <algorithm>

namespace kvmexit {

int PossibleCpus() {
  const int cpus = libbpf_num_possible_cpus();
  return cpus > 0 ? cpus : 1;
}

std::size_t BatchEntries(std::size_t entry_bytes) {
  constexpr std::size_t kMaxEntries = 1024;
  constexpr std::size_t kMaxBytes = std::size_t{256} * 1024;
  return std::clamp<std::size_t>(kMaxBytes / std::max<std::size_t>(entry_bytes, 1), 1, kMaxEntries);
}

std::string SumPerCpuRange(int map_fd, std::uint32_t count, int cpus,
                           std::vector<std::uint64_t>* sums) {
  sums->assign(count, 0);
  // No larger than the range either: `lost` has 2 entries.
  const auto chunk = static_cast<std::uint32_t>(std::min<std::size_t>(
      BatchEntries(sizeof(std::uint64_t) * static_cast<std::size_t>(cpus)), std::max(count, 1U)));
  std::vector<std::uint32_t> keys(chunk);
  std::vector<std::uint64_t> values(std::size_t{chunk} * static_cast<std::size_t>(cpus));
  std::uint32_t done = 0;
  std::uint32_t batch_in = 0;
  std::uint32_t batch_out = 0;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  while (done < count) {
    std::uint32_t n = std::min(chunk, count - done);
    // An array's batch continues after the index it last returned.
    const int err = bpf_map_lookup_batch(map_fd, done == 0 ? nullptr : &batch_in, &batch_out,
                                         keys.data(), values.data(), &n, &opts);
    if (err < 0 && err != -ENOENT) {
      if (done == 0 && (err == -EINVAL || err == -ENOTSUP || err == -EOPNOTSUPP)) break;
      return "batch lookup failed: " + ErrnoText(err);
    }
    for (std::uint32_t i = 0; i < n && keys[i] < count; ++i) {
      (*sums)[keys[i]] = SumCpus(&values[std::size_t{i} * static_cast<std::size_t>(cpus)], cpus);
    }
    done += n;
    batch_in = batch_out;
    if (err == -ENOENT || n == 0) return "";
  }
  // Kernels without batch ops: element by element.
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(cpus));
  for (std::uint32_t index = done; index < count; ++index) {
    if (bpf_map_lookup_elem(map_fd, &index, per_cpu.data()) != 0) return ErrnoText(errno);
    (*sums)[index] = SumCpus(per_cpu.data(), cpus);
  }
  return "";
}

std::string SumPerCpuArray(int map_fd, std::uint32_t entries, int cpus, std::uint64_t* total) {
  std::vector<std::uint64_t> sums;
  std::string error = SumPerCpuRange(map_fd, entries, cpus, &sums);
  for (const std::uint64_t sum : sums) *total += sum;
  return error;
}

}  // namespace kvmexit
