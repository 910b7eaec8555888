// SPDX-License-Identifier: Apache-2.0
// How the BPF program hooks kvm:kvm_exit: the BPF source's vocabulary, kept in
// a header of its own so that the configuration can name a hook without the
// BPF source depending on the configuration (or the other way round).
#pragma once

#include <optional>
#include <string_view>

namespace kvmexit {

enum class KernelHook {
  kAuto,        // tp_btf where it is verified to count exactly (AMD SVM), else tracepoint
  kTpBtf,       // the raw tracepoint; reads the exit reason from kvm's vCPU structs
  kTracepoint,  // the classic tracepoint and its stable record format
};

// The names used in config (kernel.hook) and logs.
inline constexpr std::string_view kKernelHookNames = "auto, tp_btf or tracepoint";

inline std::optional<KernelHook> ParseKernelHook(std::string_view name) {
  if (name == "auto") return KernelHook::kAuto;
  if (name == "tp_btf") return KernelHook::kTpBtf;
  if (name == "tracepoint") return KernelHook::kTracepoint;
  return std::nullopt;
}

}  // namespace kvmexit
