// SPDX-License-Identifier: Apache-2.0
// VM identity: which VM a VMM process (a tgid counted by the BPF program) is,
// named the way its platform names it. IdentifyVm only combines the sources,
// each in its own file, in a fixed precedence: the site's naming rules
// (naming_rules.h), the QEMU/libvirt command line (qemu_cmdline.h), cgroup
// layouts and Proxmox's VM configuration (cgroup_layout.h), other VMMs' own
// ids (other_vmm.h), else the process name. Kept small (no config
// header) because vm_tracker.h includes it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "identity/platform.h"
#include "identity/process_info.h"

namespace kvmexit {

struct NamingRule;  // naming_rules.h

// Who a VM is. `name` is the vm label of every per-VM series; the other
// fields are labels of kvm_vm_info (WriteVmIdentity in exit_metrics.cpp).
struct VmIdentity {
  std::string name;      // never empty
  std::string uuid;      // lowercase canonical UUID, or "" when the VMM has none
  std::string platform;  // one of the kPlatform* values

  bool operator==(const VmIdentity&) const = default;
};

// Names the VM. `pve_root` is the Proxmox cluster filesystem root ("/etc/pve");
// `<pve_root>/qemu-server/<vmid>.conf` gives a Proxmox VM's name when readable.
// Never throws: every name is a bounded, valid UTF-8 label value.
VmIdentity IdentifyVm(const ProcessInfo& process, const std::vector<NamingRule>& rules,
                      const std::string& pve_root) noexcept;

}  // namespace kvmexit
