// SPDX-License-Identifier: Apache-2.0
// Other VMMs: Firecracker, cloud-hypervisor and crosvm, recognised by their
// program name, and the VM id each carries on its own command line
// (Firecracker's --id, cloud-hypervisor's --api-socket path, crosvm's
// --syslog-tag or --socket path); their command lines are never read as
// QEMU's. These functions may throw std::bad_alloc only; IdentifyVm catches it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "identity/process_info.h"

namespace kvmexit {

enum class OtherVmm { kNone, kFirecracker, kCloudHypervisor, kCrosvm };

// Which of the other VMMs the process is, by argv[0]'s file name or comm.
OtherVmm DetectOtherVmm(const ProcessInfo& process);

// The VmIdentity::platform value of `vmm` (kPlatformProcess for kNone).
std::string_view OtherVmmPlatform(OtherVmm vmm);

// The VM id on the command line of `vmm`, unsanitised; "" when it has none.
std::string OtherVmmId(OtherVmm vmm, const std::vector<std::string>& argv);

}  // namespace kvmexit
