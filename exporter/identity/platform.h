// SPDX-License-Identifier: Apache-2.0
// The platform label of kvm_vm_info: which kind of VMM or manager runs a VM.
// Its own header because every identity source names its platform, and none
// of them should depend on vm_identity.h, which combines them.
#pragma once

#include <string_view>

namespace kvmexit {

// Values of VmIdentity::platform.
inline constexpr std::string_view kPlatformLibvirt = "libvirt";
inline constexpr std::string_view kPlatformQemu = "qemu";
inline constexpr std::string_view kPlatformProxmox = "proxmox";
inline constexpr std::string_view kPlatformKubevirt = "kubevirt";
inline constexpr std::string_view kPlatformFirecracker = "firecracker";
inline constexpr std::string_view kPlatformCloudHypervisor = "cloud-hypervisor";
inline constexpr std::string_view kPlatformCrosvm = "crosvm";
inline constexpr std::string_view kPlatformRule = "rule";
inline constexpr std::string_view kPlatformProcess = "process";

}  // namespace kvmexit
