// VM identity: which VM a VMM process (the tgid counted by the BPF program) is,
// named the way its platform names it: user rules, QEMU/libvirt command line,
// cgroup layouts (systemd machines, Proxmox, Kubernetes/KubeVirt), other VMMs'
// own ids (Firecracker, cloud-hypervisor, crosvm), else the process name.
//
// Nothing here throws: a process that vanishes while being read is nullopt,
// and every name is a bounded, valid UTF-8 label value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace kvmexit {

// Label values are capped so a hostile or runaway command line cannot blow up series size.
inline constexpr std::size_t kMaxVmLabelBytes = 128;

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

struct VmIdentity {
  std::string name;      // never empty
  std::string uuid;      // lowercase canonical UUID, or "" when the VMM has none
  std::string platform;  // one of the kPlatform* values

  bool operator==(const VmIdentity&) const = default;
};

// What /proc says about a process, read once.
struct ProcessInfo {
  std::uint32_t pid = 0;
  std::string comm;               // as in /proc/PID/stat (kernel-truncated to 15 bytes)
  std::vector<std::string> argv;  // /proc/PID/cmdline split at NULs
  std::string cgroup;             // see SelectCgroupPath
  std::uint64_t start_ticks = 0;  // /proc/PID/stat field 22: clock ticks after boot
};

// The fields of /proc/PID/stat this file needs.
struct ProcStat {
  std::string comm;
  char state = '?';
  std::int64_t num_threads = 0;
  std::uint64_t start_ticks = 0;
};

// Parses /proc/PID/stat text. comm may hold spaces and parentheses, so it ends
// at the LAST ')'. nullopt when malformed.
std::optional<ProcStat> ParseProcStat(std::string_view text) noexcept;

// Picks the cgroup path that names the process from /proc/PID/cgroup text:
// the cgroup v2 line ("0::/...") unless it is the root, else the v1
// name=systemd line, else the first other non-root v1 path; "/" when all are root.
std::string SelectCgroupPath(std::string_view proc_cgroup_text) noexcept;

// Reads /proc/PID/{stat,cmdline,cgroup} under `proc_root` through one directory
// handle, so a pid reused mid-read cannot mix two processes. nullopt when the
// process does not exist or has exited (zombie).
std::optional<ProcessInfo> ReadProcessInfo(const std::string& proc_root,
                                           std::uint32_t pid) noexcept;

// /proc/PID/stat starttime of a live process; nullopt when gone or a zombie.
// Matches VmTracker's StartTicksReader.
std::optional<std::uint64_t> ReadStartTicks(const std::string& proc_root,
                                            std::uint32_t pid) noexcept;

// Names the VM. `pve_root` is the Proxmox cluster filesystem root ("/etc/pve");
// `<pve_root>/qemu-server/<vmid>.conf` gives a Proxmox VM's name when readable.
VmIdentity IdentifyVm(const ProcessInfo& process, const std::vector<NamingRule>& rules,
                      const std::string& pve_root) noexcept;

// Makes `text` a valid UTF-8 label value of at most `max_bytes` bytes: invalid
// bytes and control characters become '_', and a cut never splits a character.
std::string SanitizeLabelValue(std::string_view text,
                               std::size_t max_bytes = kMaxVmLabelBytes) noexcept;

// sysconf(_SC_CLK_TCK): the unit of ProcessInfo::start_ticks.
long ClockTicksPerSecond() noexcept;

}  // namespace kvmexit
