// SPDX-License-Identifier: Apache-2.0
// What the kernel says of the BPF programs' own cost, summed over the
// programs attached. Its own header so that the self-metrics renderer does
// not include the loader (and libbpf) to know three numbers.
#pragma once

#include <cstdint>

namespace kvmexit {

struct BpfProgramStats {
  std::uint64_t run_count = 0;  // only counted while kernel.bpf_stats_enabled=1
  std::uint64_t run_time_ns = 0;
  std::uint64_t missed = 0;  // runs the kernel skipped (recursion guard); counted from Linux 6.7
};

}  // namespace kvmexit
