// SPDX-License-Identifier: Apache-2.0
// Fuzzes process and cgroup parsing and VM naming: everything IdentifyVm
// (exporter/identity/vm_identity.cpp) combines, on a ProcessInfo built from the input
// instead of /proc, so nothing real is read.
//
// Input: the three /proc/PID files the exporter reads, separated by "\n@@\n":
//   /proc/PID/cgroup text  \n@@\n  /proc/PID/cmdline (NUL-separated)  \n@@\n  /proc/PID/stat
// Missing parts are empty. The seeds in corpus/fuzz_vm_identity/ are real VMMs'.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "fuzz_check.h"
#include "identity/cgroup_layout.h"
#include "identity/label_value.h"
#include "identity/naming_rules.h"
#include "identity/other_vmm.h"
#include "identity/process_info.h"
#include "identity/qemu_cmdline.h"
#include "identity/vm_identity.h"
#include "util/text.h"

namespace {

using kvmexit::fuzz::Check;

// The input's parts, at most `count`; the last one takes the rest.
std::vector<std::string_view> SplitParts(std::string_view input, std::size_t count) {
  constexpr std::string_view kSeparator = "\n@@\n";
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < count) {
    const std::size_t at = input.find(kSeparator);
    if (at == std::string_view::npos) break;
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + kSeparator.size());
  }
  parts.push_back(input);
  parts.resize(count);
  return parts;
}

// /proc/PID/cmdline: arguments each ended by a NUL (the last NUL may be missing).
std::vector<std::string> SplitCmdline(std::string_view cmdline) {
  std::vector<std::string> argv;
  while (!cmdline.empty()) {
    const std::size_t nul = cmdline.find('\0');
    argv.emplace_back(cmdline.substr(0, nul));
    cmdline.remove_prefix(nul == std::string_view::npos ? cmdline.size() : nul + 1);
  }
  return argv;
}

// Rules of the kinds sites write (README's example among them), with groups
// that may or may not take part, so substitution and the empty-name rule run.
const std::vector<kvmexit::NamingRule>& Rules() {
  using Source = kvmexit::NamingRule::Source;
  static const std::vector<kvmexit::NamingRule> rules = {
      {Source::kCmdline, "-name guest=tenant-([a-z0-9]+)", "tenant-$1"},
      {Source::kCgroup, "machine-qemu\\\\x2d(\\d+)\\\\x2d([^.]*)\\.scope|/vm-(x)?([0-9]+)", "$2$3"},
      {Source::kCmdline, "--vm-name[= ](\\S+)", "  $1\t"},
  };
  return rules;
}

bool IsKnownPlatform(std::string_view platform) {
  constexpr std::array kPlatforms = {
      kvmexit::kPlatformLibvirt,  kvmexit::kPlatformQemu,        kvmexit::kPlatformProxmox,
      kvmexit::kPlatformKubevirt, kvmexit::kPlatformFirecracker, kvmexit::kPlatformCloudHypervisor,
      kvmexit::kPlatformCrosvm,   kvmexit::kPlatformRule,        kvmexit::kPlatformProcess};
  return std::find(kPlatforms.begin(), kPlatforms.end(), platform) != kPlatforms.end();
}

// A VM name as IdentifyVm gives it: clean, bounded, and neither empty nor padded.
void CheckName(std::string_view name, const char* what) {
  Check(kvmexit::fuzz::IsCleanLabelValue(name, kvmexit::kMaxVmLabelBytes), what);
  Check(name == kvmexit::Trim(name), what);
}

void CheckUuid(std::string_view uuid) {
  if (uuid.empty()) return;
  Check(kvmexit::CanonicalUuid(uuid) == uuid, "a VM uuid that is not canonical");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = SplitParts(std::string_view(reinterpret_cast<const char*>(data), size), 3);

  kvmexit::ProcessInfo process;
  process.pid = 4242;
  process.cgroup = kvmexit::SelectCgroupPath(parts[0]);
  process.argv = SplitCmdline(parts[1]);
  if (const auto stat = kvmexit::ParseProcStat(parts[2])) {
    process.comm = stat->comm;
    process.start_ticks = stat->start_ticks;
  }

  // Each source alone, as IdentifyVm calls it.
  const auto qemu = kvmexit::ParseQemuCmdline(process.argv);
  CheckUuid(qemu.uuid);
  Check(qemu.proxmox_vmid.empty() || kvmexit::IsDigits(qemu.proxmox_vmid),
        "a Proxmox vmid that is not a number (it becomes a file name)");
  (void)kvmexit::LooksLikeQemu(process, qemu);
  (void)kvmexit::KubevirtName(qemu.name);
  for (const auto& argument : process.argv) {
    const auto elements = kvmexit::SplitQemuOptionList(argument);
    (void)kvmexit::QemuOptionValue(elements, "guest");
    CheckUuid(kvmexit::CanonicalUuid(argument));
  }

  const auto cgroup = kvmexit::ParseCgroupLayout(process.cgroup);
  if (cgroup.kind == kvmexit::CgroupVm::Kind::kProxmox) {
    Check(kvmexit::IsDigits(cgroup.id), "a Proxmox vmid that is not a number (a file name)");
  }
  (void)kvmexit::NameFromCgroup(cgroup);

  const auto other_vmm = kvmexit::DetectOtherVmm(process);
  (void)kvmexit::OtherVmmId(other_vmm, process.argv);

  // Raw, like every source's name: IdentifyVm bounds it below.
  const auto rule_name = kvmexit::NameFromRules(Rules(), process);
  Check(rule_name.empty() || !kvmexit::Trim(rule_name).empty(), "a naming rule gave a blank name");

  // The combination: "" as the Proxmox root reads no file.
  static const std::vector<kvmexit::NamingRule> kNoRules;
  for (const auto* rules : {&Rules(), &kNoRules}) {
    const auto identity = kvmexit::IdentifyVm(process, *rules, "");
    Check(!identity.name.empty(), "IdentifyVm gave an empty name");
    CheckName(identity.name, "IdentifyVm gave an unclean name");
    CheckUuid(identity.uuid);
    Check(IsKnownPlatform(identity.platform), "IdentifyVm gave an unknown platform");
  }
  return 0;
}
