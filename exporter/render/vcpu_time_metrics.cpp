// SPDX-License-Identifier: Apache-2.0
#include "render/vcpu_time_metrics.h"

#include <array>
#include <string>
#include <vector>

#include "util/text.h"

namespace kvmexit {
namespace {

constexpr double kNanosecondsPerSecond = 1e9;

const std::array<std::string, kVcpuModes>& ModeLabels() {
  static const std::array<std::string, kVcpuModes> labels = [] {
    std::array<std::string, kVcpuModes> rendered;
    for (std::size_t m = 0; m < kVcpuModes; ++m) {
      rendered[m] = RenderLabels({{"mode", kVcpuModeNames[m]}});
    }
    return rendered;
  }();
  return labels;
}

// The view's VMs that have an account, with their rendered vm and pid labels.
struct AccountedVm {
  std::string labels;
  const VcpuTimeVm* account = nullptr;
};

std::vector<AccountedVm> Accounted(const VmView& view,
                                   const std::map<std::uint32_t, VcpuTimeVm>& accounts) {
  std::vector<AccountedVm> vms;
  for (const VmSeries& series : view.vms) {
    if (series.process == nullptr) continue;  // the folded bucket, or an unknown VM
    const auto tgid = ParseDecimal<std::uint32_t>(series.pid);
    if (!tgid) continue;
    const auto account = accounts.find(*tgid);
    // No vCPU thread seen yet (or a kernel that accounts no guest time, such
    // as kvm_pvm's): no series rather than four zeros that would read "idle".
    if (account == accounts.end() || account->second.threads.empty()) continue;
    vms.push_back({RenderLabels({{"vm", series.vm}, {"pid", series.pid}}), &account->second});
  }
  return vms;
}

}  // namespace

void WriteVcpuTimeFamilies(const VmView& view, const std::map<std::uint32_t, VcpuTimeVm>& accounts,
                           bool per_vcpu, ExpositionWriter& out) {
  const std::vector<AccountedVm> vms = Accounted(view, accounts);
  const auto& modes = ModeLabels();
  constexpr std::string_view kVmName = "kvm_vm_vcpu_seconds_total";
  out.Family(kVmName,
             "Wall-clock seconds of the VM's vCPU threads by mode: guest (in guest mode), host "
             "(on a CPU outside guest mode), waiting (runnable, waiting for a host CPU), "
             "sleeping (neither). The modes add up to the threads' wall time since they started "
             "(collector.vcpu_time).",
             MetricType::kCounter);
  for (const AccountedVm& vm : vms) {
    for (std::size_t m = 0; m < kVcpuModes; ++m) {
      out.Sample(kVmName, {vm.labels, modes[m]},
                 static_cast<double>(vm.account->total[m]) / kNanosecondsPerSecond);
    }
  }
  if (!per_vcpu) return;
  constexpr std::string_view kThreadName = "kvm_vcpu_thread_seconds_total";
  out.Family(kThreadName,
             "Wall-clock seconds of each vCPU thread (tid) by mode, as kvm_vm_vcpu_seconds_total "
             "(collector.vcpu_time with collector.per_vcpu).",
             MetricType::kCounter);
  for (const AccountedVm& vm : vms) {
    for (const VcpuTimeVm::Thread& thread : vm.account->threads) {
      const std::string tid = RenderLabels({{"tid", std::to_string(thread.tid)}});
      for (std::size_t m = 0; m < kVcpuModes; ++m) {
        out.Sample(kThreadName, {vm.labels, tid, modes[m]},
                   static_cast<double>(thread.ns[m]) / kNanosecondsPerSecond);
      }
    }
  }
}

}  // namespace kvmexit
