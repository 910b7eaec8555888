// SPDX-License-Identifier: Apache-2.0
// How the BPF program hooks kvm:kvm_exit: the BPF source's vocabulary, kept in
// a header of its own so that the configuration can name a hook without the
// BPF source depending on the configuration (or the other way round).
#pragma once

#include <optional>
#include <string_view>

namespace kvmexit {

enum class KernelHook {
  kAuto,        // tp_btf with CAP_SYS_ADMIN, else raw_tp; tracepoint where neither loads
  kTpBtf,       // the raw tracepoint, BTF-typed; reads the exit reason from kvm's vCPU structs
  kRawTp,       // the same raw tracepoint attached by name: CAP_BPF and CAP_PERFMON suffice
  kTracepoint,  // the classic tracepoint and its stable record format
};

// The names used in config (kernel.hook) and logs.
inline constexpr std::string_view kKernelHookNames = "auto, tp_btf, raw_tp or tracepoint";

inline std::optional<KernelHook> ParseKernelHook(std::string_view name) {
  if (name == "auto") return KernelHook::kAuto;
  if (name == "tp_btf") return KernelHook::kTpBtf;
  if (name == "raw_tp") return KernelHook::kRawTp;
  if (name == "tracepoint") return KernelHook::kTracepoint;
  return std::nullopt;
}

inline std::string_view KernelHookName(KernelHook hook) {
  switch (hook) {
    case KernelHook::kAuto:
      return "auto";
    case KernelHook::kTpBtf:
      return "tp_btf";
    case KernelHook::kRawTp:
      return "raw_tp";
    case KernelHook::kTracepoint:
      return "tracepoint";
  }
  return "";
}

}  // namespace kvmexit
