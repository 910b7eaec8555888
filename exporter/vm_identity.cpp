// SPDX-License-Identifier: Apache-2.0
#include "vm_identity.h"

#include <algorithm>
#include <iterator>

#include "cgroup_layout.h"
#include "config.h"
#include "label_value.h"
#include "naming_rules.h"
#include "other_vmm.h"
#include "qemu_cmdline.h"

namespace kvmexit {
namespace {

// Another VMM's own name wins, then the manager whose cgroup the VM is in,
// then what the QEMU command line shows of its manager.
std::string_view Platform(const ProcessInfo& process, const QemuCmdline& qemu,
                          const CgroupVm& cgroup, OtherVmm other_vmm) {
  if (other_vmm != OtherVmm::kNone) return OtherVmmPlatform(other_vmm);
  switch (cgroup.kind) {
    case CgroupVm::Kind::kKubernetesPod:
      return kPlatformKubevirt;
    case CgroupVm::Kind::kProxmox:
      return kPlatformProxmox;
    case CgroupVm::Kind::kLibvirtMachine:
      return kPlatformLibvirt;
    case CgroupVm::Kind::kNone:
      break;
  }
  if (!qemu.proxmox_vmid.empty()) return kPlatformProxmox;
  if (qemu.libvirt_style) return kPlatformLibvirt;
  return LooksLikeQemu(process, qemu) ? kPlatformQemu : kPlatformProcess;
}

VmIdentity Identify(const ProcessInfo& process, const std::vector<NamingRule>& rules,
                    const std::string& pve_root) {
  const auto other_vmm = DetectOtherVmm(process);
  const auto qemu = other_vmm == OtherVmm::kNone ? ParseQemuCmdline(process.argv) : QemuCmdline{};
  const auto cgroup = ParseCgroupLayout(process.cgroup);
  const auto vmid = cgroup.kind == CgroupVm::Kind::kProxmox ? cgroup.id : qemu.proxmox_vmid;
  const auto proxmox = ReadProxmoxConfig(pve_root, vmid);

  VmIdentity identity;
  identity.uuid = qemu.uuid.empty() ? proxmox.uuid : qemu.uuid;
  identity.platform = Platform(process, qemu, cgroup, other_vmm);
  if (identity.name = NameFromRules(rules, process); !identity.name.empty()) {
    identity.platform = kPlatformRule;
    return identity;
  }

  // The first non-empty name wins, in this order.
  const std::string candidates[] = {
      TrimmedLabelValue(identity.platform == kPlatformKubevirt ? KubevirtName(qemu.name)
                                                               : qemu.name),
      NameFromCgroup(cgroup),
      ProxmoxName(vmid, proxmox),
      TrimmedLabelValue(OtherVmmId(other_vmm, process.argv)),
      TrimmedLabelValue(process.comm),
  };
  const auto chosen = std::find_if(std::begin(candidates), std::end(candidates),
                                   [](const std::string& name) { return !name.empty(); });
  identity.name = chosen != std::end(candidates) ? *chosen : "pid-" + std::to_string(process.pid);
  return identity;
}

}  // namespace

VmIdentity IdentifyVm(const ProcessInfo& process, const std::vector<NamingRule>& rules,
                      const std::string& pve_root) noexcept {
  try {
    return Identify(process, rules, pve_root);
  } catch (...) {
    // Only an allocation failure gets here; a name is still owed.
    VmIdentity fallback;
    fallback.name = "pid-" + std::to_string(process.pid);
    fallback.platform = kPlatformProcess;
    return fallback;
  }
}

}  // namespace kvmexit
