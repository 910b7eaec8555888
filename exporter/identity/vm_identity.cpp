// SPDX-License-Identifier: Apache-2.0
#include "identity/vm_identity.h"

#include <string>

#include "identity/cgroup_layout.h"
#include "identity/label_value.h"
#include "identity/naming_rules.h"
#include "identity/other_vmm.h"
#include "identity/qemu_cmdline.h"

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
  if (qemu.started_by_libvirt) return kPlatformLibvirt;
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

  // Every source's name as the source found it, in precedence order: text
  // from outside the exporter, of any length and alphabet. Each passes through
  // TrimmedLabelValue here and nowhere else, so no source can hand a label an
  // unbounded or invalid value (fuzz_vm_identity found one source after
  // another doing so while each source sanitized its own).
  const std::string candidates[] = {
      NameFromRules(rules, process),
      identity.platform == kPlatformKubevirt ? KubevirtName(qemu.name) : qemu.name,
      NameFromCgroup(cgroup),
      ProxmoxName(vmid, proxmox),
      OtherVmmId(other_vmm, process.argv),
      process.comm,
  };
  for (const std::string& candidate : candidates) {
    identity.name = TrimmedLabelValue(candidate);
    if (identity.name.empty()) continue;
    if (&candidate == &candidates[0]) identity.platform = kPlatformRule;
    return identity;
  }
  identity.name = "pid-" + std::to_string(process.pid);
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
