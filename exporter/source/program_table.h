// SPDX-License-Identifier: Apache-2.0
// Every BPF program of the skeleton in one table: a row per tracepoint, a
// column per hook. A new program (its three hook variants in bpf/) is a new
// row here; loading and attaching follow the table.
#pragma once

#include <linux/types.h>  // kvm_exit.h's __u32, __u64

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "kvm_exit.h"
#include "source/bpf_source_options.h"
#include "source/drilldown_kind.h"
#include "source/kernel_hook.h"

struct bpf_link;
struct bpf_program;
struct kvm_exit_bpf;

namespace kvmexit {

// The column of a hook's program in the program table: tracepoint 0, tp_btf 1, raw_tp 2.
constexpr std::size_t ProgramColumn(KernelHook hook) {
  return hook == KernelHook::kTpBtf ? 1 : hook == KernelHook::kRawTp ? 2 : 0;
}

// One tracepoint's programs, one per hook.
struct ProgramRow {
  std::array<bpf_program*, 3> programs;
  std::array<bpf_link**, 3> links;  // where the skeleton keeps each program's link
  const char* tracepoint;
  bool on;               // loaded (and attached at start unless follows_storms) with these options
  bool follows_storms;   // a drill-down kind attached only on demand (collector.drilldown_auto)
  std::string off_hint;  // how to do without it, when attaching it fails
};

// In attach order: the programs that note what the exit program reads
// (arm64's running vCPU) and the entry program before the exit program, so
// that no exit is stamped before its entry can complete it; the exit program
// last, so that a failure leaves nothing half attached.
using ProgramTable = std::array<ProgramRow, 3 + KVM_DRILLDOWN_KIND_NR>;

// The rows of `skeleton`'s programs for `options`. The exit program is always
// on; the kvm_entry program only with exit_handling_time; each drill-down
// program only when its kind is in drilldown or in drilldown_follow
// (follows_storms); on arm64, the running vCPU's only with per_vcpu.
ProgramTable MakeProgramTable(kvm_exit_bpf& skeleton, const BpfSourceOptions& options);

// The row of drill-down kind `kind` in `table`.
const ProgramRow& DrilldownRow(const ProgramTable& table, DrilldownKind kind);

// The kvm_exit program of `hook`: the one every exit runs.
bpf_program* ExitProgram(const kvm_exit_bpf& skeleton, KernelHook hook);

}  // namespace kvmexit
