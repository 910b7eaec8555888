// SPDX-License-Identifier: Apache-2.0
#include "source/program_table.h"

#include <algorithm>

#include "kvm_exit.skel.h"

namespace kvmexit {

ProgramTable MakeProgramTable(kvm_exit_bpf& skeleton, bool exit_handling_time,
                              const std::vector<DrilldownKind>& drilldown) {
  auto& progs = skeleton.progs;
  auto& links = skeleton.links;
#define KVMEXIT_PROGRAM_ROW(name)                     \
  {progs.name, progs.name##_btf, progs.name##_raw}, { \
    &links.name, &links.name##_btf, &links.name##_raw \
  }
  const auto drilldown_on = [&](DrilldownKind kind) {
    return std::find(drilldown.begin(), drilldown.end(), kind) != drilldown.end();
  };
  const auto drill_hint = [](DrilldownKind kind) {
    return "; or remove " + std::string(DrilldownKindName(kind)) + " from collector.drilldown";
  };
  ProgramTable rows = {{
      {KVMEXIT_PROGRAM_ROW(time_kvm_entry), "kvm_entry", exit_handling_time,
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
  return rows;
}

bpf_program* ExitProgram(const kvm_exit_bpf& skeleton, KernelHook hook) {
  const std::array<bpf_program*, 3> programs = {skeleton.progs.count_kvm_exit,
                                                skeleton.progs.count_kvm_exit_btf,
                                                skeleton.progs.count_kvm_exit_raw};
  return programs[ProgramColumn(hook)];
}

}  // namespace kvmexit
