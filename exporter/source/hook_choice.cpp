// SPDX-License-Identifier: Apache-2.0
#include "source/hook_choice.h"

#include "util/capabilities.h"

namespace kvmexit {

HookChoice ChooseHooks(KernelHook wanted, const std::string& sys_root) {
  HookChoice choice;
  choice.vendor = FindVendorModule(sys_root);
  const std::optional<VendorModule>& vendor = choice.vendor;
  // Why the raw tracepoint (tp_btf, raw_tp) cannot count here; "" if it can.
  std::string why_not_raw;
  if (wanted == KernelHook::kTracepoint) {
    why_not_raw = "kernel.hook is tracepoint";
  } else if (!vendor) {
    why_not_raw =
        "neither kvm_amd nor kvm_intel is loaded, and tp_btf and raw_tp read the exit reason from "
        "their vCPU structs";
  } else if (!PathExists(sys_root + "/kernel/btf/" + vendor->name)) {
    why_not_raw = "the kernel has no BTF for " + std::string(vendor->name) + " (/sys/kernel/btf/" +
                  vendor->name + " missing: built without CONFIG_DEBUG_INFO_BTF_MODULES)";
  }
  const bool forced_raw = wanted == KernelHook::kTpBtf || wanted == KernelHook::kRawTp;
  if (forced_raw && !why_not_raw.empty()) {
    choice.error = "kernel.hook is " + std::string(KernelHookName(wanted)) + ", but " +
                   why_not_raw + "; or set kernel.hook: tracepoint";
    return choice;
  }
  // tp_btf on a tracepoint of a module: libbpf finds its attach target in
  // the module's BTF, listing the kernel's BTF objects (BPF_BTF_GET_NEXT_ID),
  // which only CAP_SYS_ADMIN may do. Where kvm is built in it is in vmlinux.
  const bool kvm_is_module = PathExists(sys_root + "/kernel/btf/kvm");
  const bool tp_btf_can_attach = !kvm_is_module || HasEffectiveCapability(CAP_SYS_ADMIN);

  std::vector<HookAttempt>& attempts = choice.attempts;
  switch (wanted) {
    case KernelHook::kTpBtf:
    case KernelHook::kRawTp:
      attempts.push_back({wanted, ""});
      break;
    case KernelHook::kTracepoint:
      attempts.push_back({wanted, why_not_raw});
      break;
    case KernelHook::kAuto:
      if (!why_not_raw.empty()) {
        attempts.push_back({KernelHook::kTracepoint, why_not_raw});
        break;
      }
      if (tp_btf_can_attach) {
        attempts.push_back({KernelHook::kTpBtf, ""});
        attempts.push_back({KernelHook::kRawTp, ""});
      } else {
        attempts.push_back({KernelHook::kRawTp,
                            "tp_btf on kvm's module tracepoint needs CAP_SYS_ADMIN, which this "
                            "process lacks; raw_tp needs only CAP_BPF and CAP_PERFMON"});
      }
      attempts.push_back({KernelHook::kTracepoint, ""});
      break;
  }
  return choice;
}

}  // namespace kvmexit
