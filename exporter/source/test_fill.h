// SPDX-License-Identifier: Apache-2.0
// Fills the maps as the programs would, for benchmarks and tests that need
// realistic map shapes without running VMs (BpfExitSource::FillForTesting).
#pragma once

#include <string>
#include <vector>

#include "source/counter_pool.h"
#include "source/exit_snapshot.h"

struct kvm_exit_bpf;

namespace kvmexit {

// All counts in shard 0: the per-VM counters (each new key takes a counter from
// `counters` as the program takes one) and the drill-down entries. "" or an
// error message.
std::string FillMapsForTesting(const kvm_exit_bpf& skeleton, CounterPool& counters,
                               const std::vector<VmExitCount>& counts,
                               const std::vector<DrilldownCount>& drilldown);

}  // namespace kvmexit
