// SPDX-License-Identifier: Apache-2.0
#include "identity/qemu_cmdline.h"

#include <cctype>
#include <utility>

#include "util/text.h"

namespace kvmexit {
namespace {

std::string UuidFromSmbios(const std::vector<std::string>& argv) {
  for (std::size_t i = 1; i + 1 < argv.size(); ++i) {
    if (argv[i] != "-smbios" && argv[i] != "--smbios") continue;
    const auto elements = SplitQemuOptionList(argv[i + 1]);
    if (QemuOptionValue(elements, "type") == "1") {
      if (auto uuid = CanonicalUuid(QemuOptionValue(elements, "uuid").value_or(""));
          !uuid.empty()) {
        return uuid;
      }
    }
  }
  return {};
}

// libvirt gives every QEMU it starts a secret object with the fixed alias
// "masterKey0" (its key for the other secrets), in either -object syntax:
// `secret,id=masterKey0,...` or JSON `{"qom-type":"secret","id":"masterKey0",...}`.
// `-name guest=NAME` is no such sign: it is plain QEMU syntax, which people
// and scripts write too, and a QEMU they start is not libvirt's.
bool DefinesLibvirtMasterKey(const std::vector<std::string>& argv) {
  for (std::size_t i = 1; i + 1 < argv.size(); ++i) {
    if (argv[i] != "-object" && argv[i] != "--object") continue;
    const std::string_view object = argv[i + 1];
    if (object.find("id=masterKey0") != std::string_view::npos ||
        object.find("\"id\":\"masterKey0\"") != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

QemuCmdline ParseQemuCmdline(const std::vector<std::string>& argv) {
  QemuCmdline qemu;
  if (const auto value = LastOptionValue(argv, {"-name", "--name"}, false)) {
    const auto elements = SplitQemuOptionList(*value);
    // QEMU's implied key: a first element without '=' is the guest name.
    if (elements.front().find('=') == std::string::npos) qemu.name = elements.front();
    if (auto guest = QemuOptionValue(elements, "guest")) qemu.name = std::move(*guest);
  }
  qemu.started_by_libvirt = DefinesLibvirtMasterKey(argv);
  qemu.uuid = CanonicalUuid(LastOptionValue(argv, {"-uuid", "--uuid"}, false).value_or(""));
  if (qemu.uuid.empty()) qemu.uuid = UuidFromSmbios(argv);
  const auto vmid = LastOptionValue(argv, {"-id", "--id"}, false);
  if (vmid && IsDigits(*vmid)) qemu.proxmox_vmid = *vmid;
  return qemu;
}

bool LooksLikeQemu(const ProcessInfo& process, const QemuCmdline& qemu) {
  const std::string_view program = process.argv.empty() ? "" : Basename(process.argv.front());
  const auto qemu_named = [](std::string_view name) {
    return name.find("qemu") != std::string_view::npos || name == "kvm";
  };
  return qemu_named(program) || qemu_named(process.comm) || !qemu.name.empty() ||
         !qemu.uuid.empty();
}

std::optional<std::string_view> LastOptionValue(const std::vector<std::string>& argv,
                                                std::initializer_list<std::string_view> names,
                                                bool allow_equals) {
  std::optional<std::string_view> value;
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string_view arg = argv[i];
    for (const auto name : names) {
      if (arg == name && i + 1 < argv.size()) {
        value = argv[i + 1];
      } else if (allow_equals && arg.size() > name.size() && arg.starts_with(name) &&
                 arg[name.size()] == '=') {
        value = arg.substr(name.size() + 1);
      }
    }
  }
  return value;
}

std::vector<std::string> SplitQemuOptionList(std::string_view text) {
  std::vector<std::string> elements(1);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != ',') {
      elements.back() += text[i];
    } else if (i + 1 < text.size() && text[i + 1] == ',') {
      elements.back() += ',';
      ++i;
    } else {
      elements.emplace_back();
    }
  }
  return elements;
}

std::optional<std::string> QemuOptionValue(const std::vector<std::string>& elements,
                                           std::string_view key) {
  for (const auto& element : elements) {
    const auto equals = element.find('=');
    if (equals != std::string::npos && std::string_view(element).substr(0, equals) == key) {
      return element.substr(equals + 1);
    }
  }
  return std::nullopt;
}

std::string CanonicalUuid(std::string_view text) {
  text = Trim(text);
  if (text.size() != 36) return {};
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dash_position = i == 8 || i == 13 || i == 18 || i == 23;
    const bool ok =
        dash_position ? text[i] == '-' : std::isxdigit(static_cast<unsigned char>(text[i]));
    if (!ok) return {};
  }
  return ToLower(text);
}

}  // namespace kvmexit
