// SPDX-License-Identifier: Apache-2.0
#include "identity/other_vmm.h"

#include <algorithm>
#include <iterator>

#include "identity/platform.h"
#include "identity/qemu_cmdline.h"
#include "util/text.h"

namespace kvmexit {
namespace {

// A VM name from a control socket path: "/run/ch/web01.sock" -> "web01". Kata
// and others use a fixed file name in a per-VM directory
// ("/run/vc/vm/<id>/clh-api.sock"): then the directory names the VM.
std::string NameFromSocketPath(std::string_view path) {
  const auto file = Basename(path);
  const auto stem = file.substr(0, file.find('.'));
  static constexpr std::string_view kGenericStems[] = {
      "api", "clh-api", "ch", "clh", "ch-api", "crosvm", "control", "socket", "sock", "vm"};
  const bool generic = stem.empty() || std::find(std::begin(kGenericStems), std::end(kGenericStems),
                                                 stem) != std::end(kGenericStems);
  if (!generic) return std::string(stem);
  const auto slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return {};
  return std::string(Basename(path.substr(0, slash)));
}

}  // namespace

OtherVmm DetectOtherVmm(const ProcessInfo& process) {
  const std::string_view program = process.argv.empty() ? "" : Basename(process.argv.front());
  const auto is = [&](std::string_view full_name) {
    // comm is the executable's name cut to 15 bytes.
    return program == full_name || process.comm == full_name.substr(0, 15);
  };
  if (is("firecracker")) return OtherVmm::kFirecracker;
  if (is("cloud-hypervisor")) return OtherVmm::kCloudHypervisor;
  if (is("crosvm")) return OtherVmm::kCrosvm;
  return OtherVmm::kNone;
}

std::string_view OtherVmmPlatform(OtherVmm vmm) {
  switch (vmm) {
    case OtherVmm::kFirecracker:
      return kPlatformFirecracker;
    case OtherVmm::kCloudHypervisor:
      return kPlatformCloudHypervisor;
    case OtherVmm::kCrosvm:
      return kPlatformCrosvm;
    case OtherVmm::kNone:
      break;
  }
  return kPlatformProcess;
}

std::string OtherVmmId(OtherVmm vmm, const std::vector<std::string>& argv) {
  switch (vmm) {
    case OtherVmm::kFirecracker:
      return std::string(LastOptionValue(argv, {"--id"}, true).value_or(""));
    case OtherVmm::kCloudHypervisor: {
      // --api-socket takes a path or "path=...,fd=...".
      const auto value = LastOptionValue(argv, {"--api-socket"}, true);
      if (!value) return {};
      const auto elements = SplitQemuOptionList(*value);
      if (auto path = QemuOptionValue(elements, "path")) return NameFromSocketPath(*path);
      if (value->find('=') != std::string_view::npos) return {};  // fd=N only
      return NameFromSocketPath(*value);
    }
    case OtherVmm::kCrosvm: {
      if (auto tag = LastOptionValue(argv, {"--syslog-tag"}, true)) return std::string(*tag);
      const auto socket = LastOptionValue(argv, {"--socket", "-s"}, true);
      return socket ? NameFromSocketPath(*socket) : std::string();
    }
    case OtherVmm::kNone:
      break;
  }
  return {};
}

}  // namespace kvmexit
