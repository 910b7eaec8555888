// SPDX-License-Identifier: Apache-2.0
// How the BPF program hooks kvm:kvm_exit: the BPF source's vocabulary, kept in
// a header of its own so that the configuration can name a hook without the
// BPF source depending on the configuration (or the other way round).
#pragma once

#include <optional>
#include <string_view>
#include <utility>

namespace kvmexit {

enum class KernelHook {
  kAuto,        // tp_btf with CAP_SYS_ADMIN, else raw_tp; tracepoint where neither loads
  kTpBtf,       // the raw tracepoint, BTF-typed; reads the exit reason from kvm's vCPU structs
  kRawTp,       // the same raw tracepoint attached by name: CAP_BPF and CAP_PERFMON suffice
  kTracepoint,  // the classic tracepoint and its stable record format
};

// The names used in config (kernel.hook) and logs.
inline constexpr std::string_view kKernelHookNames = "auto, tp_btf, raw_tp or tracepoint";

// Each hook with its name, once: parsing and naming both read this table.
inline constexpr std::pair<KernelHook, std::string_view> kKernelHookTable[] = {
    {KernelHook::kAuto, "auto"},
    {KernelHook::kTpBtf, "tp_btf"},
    {KernelHook::kRawTp, "raw_tp"},
    {KernelHook::kTracepoint, "tracepoint"},
};

inline std::optional<KernelHook> ParseKernelHook(std::string_view name) {
  for (const auto& [hook, hook_name] : kKernelHookTable) {
    if (name == hook_name) return hook;
  }
  return std::nullopt;
}

inline std::string_view KernelHookName(KernelHook hook) {
  for (const auto& [table_hook, hook_name] : kKernelHookTable) {
    if (hook == table_hook) return hook_name;
  }
  return "";
}

}  // namespace kvmexit
