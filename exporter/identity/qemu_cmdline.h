// SPDX-License-Identifier: Apache-2.0
// QEMU and libvirt command lines: the VM's name (-name), UUID (-uuid, else
// -smbios type=1,uuid=) and Proxmox vmid (-id), read the way QEMU parses its
// own options, plus the option syntax other sources share (QEMU option lists,
// where ",," is a literal comma, and last-one-wins option lookup). These
// functions may throw std::bad_alloc only; IdentifyVm catches it.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "identity/process_info.h"

namespace kvmexit {

struct QemuCmdline {
  std::string name;                 // -name guest=NAME or -name NAME
  bool started_by_libvirt = false;  // an -object defines libvirt's master key, "masterKey0"
  std::string uuid;                 // -uuid, else -smbios type=1,uuid=
  std::string proxmox_vmid;         // -id N: an option only Proxmox's QEMU has
};

// What a QEMU command line says about its VM; fields are "" where it says nothing.
QemuCmdline ParseQemuCmdline(const std::vector<std::string>& argv);

// Whether the process is QEMU: named like it ("qemu-system-x86_64", "qemu-kvm",
// Debian's and Proxmox's "kvm"), or given a QEMU name or UUID.
bool LooksLikeQemu(const ProcessInfo& process, const QemuCmdline& qemu);

// The value of the last `-opt VALUE` / `--opt VALUE` (and `--opt=VALUE` when
// `allow_equals`) among argv[1..]: like QEMU and most CLIs, the last one wins.
// The view points into `argv`.
std::optional<std::string_view> LastOptionValue(const std::vector<std::string>& argv,
                                                std::initializer_list<std::string_view> names,
                                                bool allow_equals);

// QEMU option lists: "a,key=value,flag", where ",," is a literal comma.
std::vector<std::string> SplitQemuOptionList(std::string_view text);

// The value of the first `key=value` element of a split option list.
std::optional<std::string> QemuOptionValue(const std::vector<std::string>& elements,
                                           std::string_view key);

// Canonical lowercase 8-4-4-4-12 hex UUID, or "" when `text` is not one.
std::string CanonicalUuid(std::string_view text);

}  // namespace kvmexit
