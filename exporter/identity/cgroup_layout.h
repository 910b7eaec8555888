// SPDX-License-Identifier: Apache-2.0
// cgroup layouts: which VM a process's cgroup path says it runs, for the
// managers that give each VM a cgroup of its own: libvirt (systemd machine
// scopes, or cgroupfs machines), Proxmox ("qemu.slice/<vmid>.scope", with the
// VM's name and UUID from <pve_root>/qemu-server/<vmid>.conf) and Kubernetes
// pods as KubeVirt runs them, under either kubelet cgroup driver. These
// functions may throw std::bad_alloc only; IdentifyVm catches it.
#pragma once

#include <string>
#include <string_view>

namespace kvmexit {

// The VM a cgroup path names, if any.
struct CgroupVm {
  enum class Kind { kNone, kLibvirtMachine, kProxmox, kKubernetesPod };
  Kind kind = Kind::kNone;
  std::string name;  // libvirt machine: the domain name
  std::string id;    // Proxmox: vmid; Kubernetes: pod UID
};

// Recognises the first matching layout (libvirt, then Proxmox, then
// Kubernetes) in a cgroup path such as ProcessInfo::cgroup.
CgroupVm ParseCgroupLayout(std::string_view cgroup_path);

// The VM name a libvirt machine or Kubernetes pod gives ("pod-<uid>" for a
// pod: the pod's name is not in the cgroup); "" for other kinds, Proxmox
// included (see ProxmoxName).
std::string NameFromCgroup(const CgroupVm& cgroup);

// What a Proxmox VM's configuration file says about it; "" where it says nothing.
struct ProxmoxConfig {
  std::string name;
  std::string uuid;  // from `smbios1: uuid=...`, canonical
};

// Reads "<pve_root>/qemu-server/<vmid>.conf". Empty when either argument is
// empty or the file cannot be read (say, the cluster filesystem is not mounted).
ProxmoxConfig ReadProxmoxConfig(const std::string& pve_root, const std::string& vmid);

// A Proxmox VM's name: the one in its configuration, else "vmid-<vmid>", the
// id Proxmox shows beside it; "" when `vmid` is.
std::string ProxmoxName(const std::string& vmid, const ProxmoxConfig& config);

// KubeVirt names the libvirt domain "<namespace>_<vmi>"; neither part can hold
// '_' (Kubernetes names are DNS labels), so "<namespace>/<vmi>" is exact and
// reads the way kubectl does.
std::string KubevirtName(std::string domain_name);

}  // namespace kvmexit
