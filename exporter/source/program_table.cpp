// SPDX-License-Identifier: Apache-2.0
#include "source/program_table.h"

#include <algorithm>

#include "kvm_exit.skel.h"

namespace kvmexit {

namespace {

// arm64's kvm_exit passes no vCPU: per-vCPU counting needs the one
// kvm:kvm_arm_setup_debug notes before each guest entry (bpf/exit_count.bpf.c).
#if defined(__aarch64__)
constexpr bool kExitNamesNoVcpu = true;
#else
constexpr bool kExitNamesNoVcpu = false;
#endif

}  // namespace

ProgramTable MakeProgramTable(kvm_exit_bpf& skeleton, const BpfSourceOptions& options) {
  const std::vector<DrilldownKind>& drilldown = options.drilldown;
  const std::vector<DrilldownKind>& follow = options.drilldown_follow;
  auto& progs = skeleton.progs;
  auto& links = skeleton.links;
#define KVMEXIT_PROGRAM_ROW(name)                     \
  {progs.name, progs.name##_btf, progs.name##_raw}, { \
    &links.name, &links.name##_btf, &links.name##_raw \
  }
  const auto listed = [](const std::vector<DrilldownKind>& kinds, DrilldownKind kind) {
    return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
  };
  const auto drilldown_on = [&](DrilldownKind kind) {
    return listed(drilldown, kind) || listed(follow, kind);
  };
  const auto follows = [&](DrilldownKind kind) {
    return !listed(drilldown, kind) && listed(follow, kind);
  };
  const auto drill_hint = [&](DrilldownKind kind) {
    return "; or remove " + std::string(DrilldownKindName(kind)) + " from " +
           (follows(kind) ? "collector.drilldown_auto.kinds" : "collector.drilldown");
  };
  ProgramTable rows = {{
      {KVMEXIT_PROGRAM_ROW(note_running_vcpu), "kvm_arm_setup_debug",
       kExitNamesNoVcpu && options.per_vcpu, false, "; or set collector.per_vcpu: false"},
      {KVMEXIT_PROGRAM_ROW(time_kvm_entry), "kvm_entry", options.exit_handling_time, false,
       "; or set collector.exit_handling_time: false"},
  // One row per drill-down kind (bpf/drilldown_kinds.def): count_<tracepoint>.
#define DRILLDOWN_KIND(ENUM, Name, config_name, tracepoint, ...)                               \
  {KVMEXIT_PROGRAM_ROW(count_##tracepoint), #tracepoint, drilldown_on(DrilldownKind::k##Name), \
   follows(DrilldownKind::k##Name), drill_hint(DrilldownKind::k##Name)},
#include "drilldown_kinds.def"
#undef DRILLDOWN_KIND
      {KVMEXIT_PROGRAM_ROW(count_kvm_exit), "kvm_exit", true, false, ""},
  }};
#undef KVMEXIT_PROGRAM_ROW
  return rows;
}

const ProgramRow& DrilldownRow(const ProgramTable& table, DrilldownKind kind) {
  // Rows 0 and 1 are the running vCPU's and kvm_entry's; the drill-down rows follow in kind order.
  return table[2 + static_cast<std::size_t>(kind)];
}

bpf_program* ExitProgram(const kvm_exit_bpf& skeleton, KernelHook hook) {
  const std::array<bpf_program*, 3> programs = {skeleton.progs.count_kvm_exit,
                                                skeleton.progs.count_kvm_exit_btf,
                                                skeleton.progs.count_kvm_exit_raw};
  return programs[ProgramColumn(hook)];
}

}  // namespace kvmexit
