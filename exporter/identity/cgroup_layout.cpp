// SPDX-License-Identifier: Apache-2.0
#include "identity/cgroup_layout.h"

#include <fcntl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <utility>
#include <vector>

#include "identity/qemu_cmdline.h"
#include "util/file_text.h"
#include "util/text.h"

namespace kvmexit {
namespace {

// A Proxmox VM configuration is a few KiB; this bounds a corrupt or hostile one.
constexpr std::size_t kMaxProxmoxConfigBytes = std::size_t{1024} * 1024;

std::optional<unsigned char> ParseHexByte(std::string_view two_digits) {
  unsigned value = 0;
  const auto* end = two_digits.data() + two_digits.size();
  const auto [ptr, ec] = std::from_chars(two_digits.data(), end, value, 16);
  if (two_digits.size() != 2 || ec != std::errc() || ptr != end) return std::nullopt;
  return static_cast<unsigned char>(value);
}

// systemd escapes unit-name bytes as "\xNN" (a '-' in a name becomes "\x2d").
std::string UnescapeSystemd(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size() && text[i + 1] == 'x') {
      if (auto byte = ParseHexByte(text.substr(i + 2, 2))) {
        out += static_cast<char>(*byte);
        i += 3;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

// libvirt names machines "qemu-<domain id>-<domain name>" (older releases:
// "qemu-<domain name>"); the domain name may itself contain dashes.
std::string DomainNameFromMachineName(std::string_view machine) {
  if (!machine.starts_with("qemu-")) return {};
  machine.remove_prefix(5);
  const auto dash = machine.find('-');
  if (dash != std::string_view::npos && IsDigits(machine.substr(0, dash))) {
    machine.remove_prefix(dash + 1);
  }
  return std::string(machine);
}

// systemd: ".../machine-qemu\x2d3\x2dmy\x2dvm.scope[/libvirt/emulator]";
// libvirt without systemd: "/machine/qemu-3-my-vm.libvirt-qemu[/emulator]".
std::optional<CgroupVm> LibvirtMachine(const std::vector<std::string_view>& components) {
  constexpr std::string_view kScopePrefix = "machine-", kScopeSuffix = ".scope";
  constexpr std::string_view kCgroupfsSuffix = ".libvirt-qemu";
  for (const auto component : components) {
    std::string name;
    if (component.starts_with(kScopePrefix) && component.ends_with(kScopeSuffix)) {
      const auto escaped = component.substr(
          kScopePrefix.size(), component.size() - kScopePrefix.size() - kScopeSuffix.size());
      name = DomainNameFromMachineName(UnescapeSystemd(escaped));
    } else if (component.ends_with(kCgroupfsSuffix)) {
      const auto machine = component.substr(0, component.size() - kCgroupfsSuffix.size());
      name = DomainNameFromMachineName(machine);
      if (name.empty()) name = machine;
    }
    if (!name.empty()) return CgroupVm{CgroupVm::Kind::kLibvirtMachine, std::move(name), {}};
  }
  return std::nullopt;
}

// Proxmox: ".../qemu.slice/<vmid>.scope".
std::optional<CgroupVm> ProxmoxScope(const std::vector<std::string_view>& components) {
  constexpr std::string_view kSuffix = ".scope";
  for (std::size_t i = 0; i + 1 < components.size(); ++i) {
    const auto scope = components[i + 1];
    if (components[i] != "qemu.slice" || !scope.ends_with(kSuffix)) continue;
    const auto vmid = scope.substr(0, scope.size() - kSuffix.size());
    if (IsDigits(vmid)) return CgroupVm{CgroupVm::Kind::kProxmox, {}, std::string(vmid)};
  }
  return std::nullopt;
}

// A pod UID as the kubelet writes it into cgroup names: a UUID, or 32 hex
// digits for static pods; the systemd driver turns its dashes into '_'.
// Longer is not a pod: "pod-<uid>" must fit a label without a cut.
std::string NormalizePodUid(std::string_view uid) {
  constexpr std::size_t kMinUidBytes = 8;
  constexpr std::size_t kMaxUidBytes = 36;  // a UUID with its dashes
  const bool valid = uid.size() >= kMinUidBytes && uid.size() <= kMaxUidBytes &&
                     std::all_of(uid.begin(), uid.end(), [](char c) {
                       return std::isxdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_';
                     });
  if (!valid) return {};
  auto normalized = ToLower(uid);
  std::replace(normalized.begin(), normalized.end(), '_', '-');
  return normalized;
}

// cgroupfs driver: ".../kubepods[/burstable|/besteffort]/pod<uid>/<container>";
// systemd driver: ".../kubepods-burstable-pod<uid_with_underscores>.slice/...".
std::optional<CgroupVm> KubernetesPod(const std::vector<std::string_view>& components) {
  constexpr std::string_view kSliceSuffix = ".slice";
  bool under_kubepods = false;
  for (const auto component : components) {
    under_kubepods = under_kubepods || component.find("kubepods") != std::string_view::npos;
    if (!under_kubepods) continue;
    std::string_view uid;
    if (component.ends_with(kSliceSuffix)) {
      const auto pod = component.rfind("-pod");
      if (pod != std::string_view::npos) {
        uid = component.substr(pod + 4, component.size() - pod - 4 - kSliceSuffix.size());
      }
    } else if (component.starts_with("pod")) {
      uid = component.substr(3);
    }
    if (auto normalized = NormalizePodUid(uid); !normalized.empty()) {
      return CgroupVm{CgroupVm::Kind::kKubernetesPod, {}, std::move(normalized)};
    }
  }
  return std::nullopt;
}

}  // namespace

CgroupVm ParseCgroupLayout(std::string_view cgroup_path) {
  const auto components = SplitNonEmpty(cgroup_path, '/');
  if (auto vm = LibvirtMachine(components)) return *vm;
  if (auto vm = ProxmoxScope(components)) return *vm;
  if (auto vm = KubernetesPod(components)) return *vm;
  return {};
}

std::string NameFromCgroup(const CgroupVm& cgroup) {
  switch (cgroup.kind) {
    case CgroupVm::Kind::kLibvirtMachine:
      return cgroup.name;
    case CgroupVm::Kind::kKubernetesPod:
      return "pod-" + cgroup.id;
    case CgroupVm::Kind::kProxmox:
    case CgroupVm::Kind::kNone:
      break;
  }
  return {};
}

ProxmoxConfig ReadProxmoxConfig(const std::string& pve_root, const std::string& vmid) {
  ProxmoxConfig config;
  if (pve_root.empty() || vmid.empty()) return config;
  const std::string path = pve_root + "/qemu-server/" + vmid + ".conf";
  const FileText file = ReadFileAt(AT_FDCWD, path.c_str(), kMaxProxmoxConfigBytes);
  if (file.error != 0) return config;
  for (const auto raw_line : Split(file.text, '\n')) {
    const auto line = Trim(raw_line);
    // "key: value" lines; snapshot and pending sections ("[name]") follow the
    // current configuration and do not describe the running VM.
    if (line.starts_with('[')) break;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const auto key = Trim(line.substr(0, colon));
    const auto value = Trim(line.substr(colon + 1));
    if (key == "name") {
      config.name = value;
    } else if (key == "smbios1") {
      config.uuid = CanonicalUuid(QemuOptionValue(SplitQemuOptionList(value), "uuid").value_or(""));
    }
  }
  return config;
}

std::string ProxmoxName(const std::string& vmid, const ProxmoxConfig& config) {
  if (vmid.empty()) return {};
  if (!Trim(config.name).empty()) return config.name;
  return "vmid-" + vmid;
}

std::string KubevirtName(std::string domain_name) {
  if (const auto underscore = domain_name.find('_'); underscore != std::string::npos) {
    domain_name[underscore] = '/';
  }
  return domain_name;
}

}  // namespace kvmexit
