// SPDX-License-Identifier: Apache-2.0
// What the running kernel offers the programs: BTF, tracefs and the
// kvm:kvm_exit tracepoint (without them nothing loads), and which KVM vendor
// module is loaded (tp_btf and raw_tp read its vCPU structs).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace kvmexit {

bool PathExists(const std::string& path);

// "" when the programs can load, else a message naming the missing piece and
// what to do. Mounts tracefs at `tracefs_root` when it is not mounted.
std::string CheckKernelSupport(const std::string& tracefs_root);

// The KVM vendor module whose vCPU structs tp_btf reads.
struct VendorModule {
  std::uint32_t isa;  // KVM_EXIT_ISA_*
  const char* name;   // whose BTF has its structs: kvm_amd, kvm_intel, or vmlinux (arm64: built in)
};

// kvm_amd or kvm_intel as `sys_root`/module lists it; nullopt when neither is
// loaded. arm64: KVM itself, once its device is registered.
std::optional<VendorModule> FindVendorModule(const std::string& sys_root);

}  // namespace kvmexit
