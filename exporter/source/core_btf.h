// SPDX-License-Identifier: Apache-2.0
// The BTF libbpf relocates the BPF program against (CO-RE), built from the
// world-readable /sys/kernel/btf files so that loading needs no CAP_SYS_ADMIN.
#pragma once

#include <string>
#include <string_view>

#include "util/unique_fd.h"

namespace kvmexit {

// A standalone BTF for CO-RE: vmlinux's types, then those of kvm's module
// BTF, then those of the vendor module's, each module's type ids shifted past
// the ones before it. Given to libbpf as btf_custom_path, it spares libbpf
// listing the kernel's BTF objects to find the module types, which needs
// CAP_SYS_ADMIN; the files under /sys/kernel/btf are world-readable.
struct CoreBtf {
  UniqueFd fd;        // a memfd holding the raw BTF
  std::string path;   // /proc/self/fd/N, or "" when no module BTF is needed or it failed
  std::string error;  // why it could not be built, or ""
  std::string note;   // what it holds: types, bytes, build time (for the log)
};

// Builds it from `btf_dir` (/sys/kernel/btf): vmlinux, kvm (if a module) and
// `vendor_module` (if given and present). Without module BTF, returns no path.
CoreBtf BuildCoreBtf(const std::string& btf_dir, std::string_view vendor_module);

}  // namespace kvmexit
