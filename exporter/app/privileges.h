// SPDX-License-Identifier: Apache-2.0
// Least privilege: once the exporter has tried to attach, it drops every
// capability except what a later attach (kvm loaded after the exporter
// started) needs, for the rest of the run. docs/security.md says which
// capability is used by what, and when.
#pragma once

#include <sys/capability.h>

#include <cstdint>
#include <string>
#include <vector>

#include "source/kernel_hook.h"

namespace kvmexit {

// What decides the kept set. ProbePrivilegeNeeds reads it from the running
// system; tests build it by hand.
struct PrivilegeNeeds {
  bool root = true;             // effective uid 0: owns tracefs and /etc/pve
  int perf_event_paranoid = 2;  // sysctl kernel.perf_event_paranoid
  KernelHook hook = KernelHook::kAuto;
};

PrivilegeNeeds ProbePrivilegeNeeds(KernelHook hook);

// The capabilities to keep, ascending:
// - CAP_BPF, CAP_PERFMON: load the program and attach it (bpf(); raw_tp
//   attaches by name with BPF_RAW_TRACEPOINT_OPEN, the classic tracepoint
//   with perf_event_open);
// - CAP_SYS_ADMIN only where the configured hook needs it: kernel.hook
//   tp_btf (libbpf lists the kernel's BTF objects with BPF_BTF_GET_NEXT_ID to
//   find kvm's, which wants CAP_SYS_ADMIN), or tracepoint with
//   perf_event_paranoid > 2 (Debian/Ubuntu kernels refuse perf_event_open
//   without it). auto and raw_tp never need it: a later attach under auto
//   without it uses raw_tp;
// - CAP_DAC_READ_SEARCH when not root: tracefs is root-only (0700), and so
//   are Proxmox's VM configs (0640 root:www-data).
// Never CAP_NET_BIND_SERVICE: the listening socket is bound before the drop.
std::vector<cap_value_t> CapabilitiesToKeep(const PrivilegeNeeds& needs);

// Leaves the process with the capabilities of `keep` it holds, in its
// effective and permitted sets; clears the inheritable and ambient sets;
// removes every other capability from the bounding set (when it holds
// CAP_SETPCAP; without it, no_new_privs still stops any exec from gaining
// one); sets no_new_privs. With CAP_SYS_RESOURCE it first lifts
// RLIMIT_MEMLOCK, which BPF maps need on kernels before 5.11, so that a late
// attach does not need CAP_SYS_RESOURCE. Logs the kept set once. Returns ""
// or why not.
// Capabilities belong to threads: it refuses to run while other threads exist.
std::string DropCapabilities(const std::vector<cap_value_t>& keep);

}  // namespace kvmexit
