#include "vm_identity.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <functional>
#include <regex>
#include <utility>

#include "file_text.h"
#include "text.h"
#include "unique_fd.h"

namespace kvmexit {
namespace {

constexpr std::size_t kMaxStatBytes = 4096;
constexpr std::size_t kMaxCmdlineBytes = 256 * 1024;
constexpr std::size_t kMaxCgroupBytes = 64 * 1024;
constexpr std::size_t kMaxConfigFileBytes = 1024 * 1024;

// libstdc++'s std::regex matches by recursion, 400-700 bytes of stack per
// input character for `.*` or `(.|\n)*`: a long command line would overflow a
// normal thread stack and crash the daemon. Rules therefore run on a thread
// with a large (lazily committed) stack, over a bounded text. The bound also
// caps the time of an unanchored leading `.*` that does not match, which is
// quadratic in the text length (seconds at this size, minutes unbounded).
constexpr std::size_t kMaxRuleTextBytes = 16 * 1024;
constexpr std::size_t kRuleThreadStackBytes = 256 * 1024 * 1024;
// Used only if that thread cannot be created: small enough for any stack.
constexpr std::size_t kMaxInlineRuleTextBytes = 2 * 1024;

std::optional<unsigned char> ParseHexByte(std::string_view two_digits) {
  unsigned value = 0;
  const auto* end = two_digits.data() + two_digits.size();
  const auto [ptr, ec] = std::from_chars(two_digits.data(), end, value, 16);
  if (two_digits.size() != 2 || ec != std::errc() || ptr != end) return std::nullopt;
  return static_cast<unsigned char>(value);
}

// ---------------------------------------------------------------------------
// Reading files

UniqueFd OpenProcessDirectory(const std::string& proc_root, std::uint32_t pid) {
  const std::string path = proc_root + "/" + std::to_string(pid);
  return UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

// An exited process lingers as a zombie until reaped; it runs no VM any more.
// A zombie thread-group leader whose other threads still run is still alive.
bool HasExited(const ProcStat& stat) {
  return (stat.state == 'Z' || stat.state == 'X' || stat.state == 'x') && stat.num_threads <= 1;
}

std::optional<ProcStat> ReadLiveStatAt(int dir_fd) {
  const FileText file = ReadFileAt(dir_fd, "stat", kMaxStatBytes);
  if (file.error != 0) return std::nullopt;
  auto stat = ParseProcStat(file.text);
  if (!stat || HasExited(*stat)) return std::nullopt;
  return stat;
}

std::vector<std::string> SplitCmdline(std::string_view raw) {
  // Arguments are NUL-terminated; the last terminator yields no argument.
  if (!raw.empty() && raw.back() == '\0') raw.remove_suffix(1);
  if (raw.empty()) return {};
  std::vector<std::string> argv;
  for (const auto arg : Split(raw, '\0')) argv.emplace_back(arg);
  return argv;
}

// ---------------------------------------------------------------------------
// Command-line options

// The value of the last `-opt VALUE` / `--opt VALUE` (and `--opt=VALUE` when
// `allow_equals`) among argv[1..]: like QEMU and most CLIs, the last one wins.
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

// QEMU option lists: "a,key=value,flag", where ",," is a literal comma.
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

// Canonical lowercase 8-4-4-4-12 hex UUID, or "" when `text` is not one.
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

struct QemuCmdline {
  std::string name;            // -name guest=NAME or -name NAME
  bool libvirt_style = false;  // `guest=` key: what libvirt (and KubeVirt's libvirt) write
  std::string uuid;            // -uuid, else -smbios type=1,uuid=
  std::string proxmox_vmid;    // -id N: an option only Proxmox's QEMU has
};

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

QemuCmdline ParseQemuCmdline(const std::vector<std::string>& argv) {
  QemuCmdline qemu;
  if (const auto value = LastOptionValue(argv, {"-name", "--name"}, false)) {
    const auto elements = SplitQemuOptionList(*value);
    // QEMU's implied key: a first element without '=' is the guest name.
    if (elements.front().find('=') == std::string::npos) qemu.name = elements.front();
    if (auto guest = QemuOptionValue(elements, "guest")) {
      qemu.name = std::move(*guest);
      qemu.libvirt_style = true;
    }
  }
  qemu.uuid = CanonicalUuid(LastOptionValue(argv, {"-uuid", "--uuid"}, false).value_or(""));
  if (qemu.uuid.empty()) qemu.uuid = UuidFromSmbios(argv);
  const auto vmid = LastOptionValue(argv, {"-id", "--id"}, false);
  if (vmid && IsDigits(*vmid)) qemu.proxmox_vmid = *vmid;
  return qemu;
}

// ---------------------------------------------------------------------------
// Other VMMs

enum class OtherVmm { kNone, kFirecracker, kCloudHypervisor, kCrosvm };

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

// ---------------------------------------------------------------------------
// cgroup layouts

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

struct CgroupVm {
  enum class Kind { kNone, kLibvirtMachine, kProxmox, kKubernetesPod };
  Kind kind = Kind::kNone;
  std::string name;  // libvirt machine: the domain name
  std::string id;    // Proxmox: vmid; Kubernetes: pod UID
};

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
std::string NormalizePodUid(std::string_view uid) {
  const bool valid = uid.size() >= 8 && std::all_of(uid.begin(), uid.end(), [](char c) {
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

CgroupVm ParseCgroupLayout(std::string_view path) {
  const auto components = SplitNonEmpty(path, '/');
  if (auto vm = LibvirtMachine(components)) return *vm;
  if (auto vm = ProxmoxScope(components)) return *vm;
  if (auto vm = KubernetesPod(components)) return *vm;
  return {};
}

// ---------------------------------------------------------------------------
// Proxmox VM configuration

struct ProxmoxConfig {
  std::string name;
  std::string uuid;
};

// "<pve_root>/qemu-server/<vmid>.conf": "key: value" lines; snapshot and
// pending sections ("[name]") follow the current configuration and are ignored.
ProxmoxConfig ReadProxmoxConfig(const std::string& pve_root, const std::string& vmid) {
  ProxmoxConfig config;
  if (pve_root.empty() || vmid.empty()) return config;
  const std::string path = pve_root + "/qemu-server/" + vmid + ".conf";
  const FileText file = ReadFileAt(AT_FDCWD, path.c_str(), kMaxConfigFileBytes);
  if (file.error != 0) return config;
  for (const auto raw_line : Split(file.text, '\n')) {
    const auto line = Trim(raw_line);
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

// ---------------------------------------------------------------------------
// User rules

// Runs `work` on a thread with a kRuleThreadStackBytes stack. False when no
// such thread could be created (the work did not run).
bool RunOnLargeStack(const std::function<void()>& work) {
  pthread_attr_t attributes;
  if (pthread_attr_init(&attributes) != 0) return false;
  const bool sized = pthread_attr_setstacksize(&attributes, kRuleThreadStackBytes) == 0;
  pthread_t thread;
  auto trampoline = [](void* argument) -> void* {
    try {
      (*static_cast<const std::function<void()>*>(argument))();
    } catch (...) {
      // An exception must not cross the thread boundary: the work's result stays unset.
    }
    return nullptr;
  };
  const bool started = sized && pthread_create(&thread, &attributes, trampoline,
                                               const_cast<std::function<void()>*>(&work)) == 0;
  pthread_attr_destroy(&attributes);
  if (started) pthread_join(thread, nullptr);
  return started;
}

std::string CleanName(std::string_view text) { return SanitizeLabelValue(Trim(text)); }

std::string JoinArgs(const std::vector<std::string>& argv) {
  std::string joined;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (i > 0) joined += ' ';
    joined += argv[i];
  }
  return joined;
}

// The first rule that matches names the VM; a rule whose name comes out empty
// (say "$2" of a group that did not take part) does not count as a match. A
// rule with an invalid regex never matches (configuration loading reports it).
std::string NameFromRulesOn(const std::vector<NamingRule>& rules, std::string_view cmdline,
                            std::string_view cgroup) noexcept {
  for (const auto& rule : rules) {
    try {
      const std::regex regex(rule.regex, std::regex::ECMAScript);
      const auto text = rule.source == NamingRule::Source::kCgroup ? cgroup : cmdline;
      std::match_results<std::string_view::const_iterator> match;
      if (!std::regex_search(text.begin(), text.end(), match, regex)) continue;
      if (auto name = CleanName(match.format(rule.name)); !name.empty()) return name;
    } catch (...) {
      // std::regex_error, or an allocation failure: skip the rule.
    }
  }
  return {};
}

std::string NameFromRules(const std::vector<NamingRule>& rules, const ProcessInfo& process) {
  if (rules.empty()) return {};
  const auto cmdline = JoinArgs(process.argv);
  const auto bounded = [&](std::string_view text, std::size_t limit) {
    return text.substr(0, limit);
  };
  std::string name;
  const std::function<void()> work = [&] {
    name = NameFromRulesOn(rules, bounded(cmdline, kMaxRuleTextBytes),
                           bounded(process.cgroup, kMaxRuleTextBytes));
  };
  if (!RunOnLargeStack(work)) {
    name = NameFromRulesOn(rules, bounded(cmdline, kMaxInlineRuleTextBytes),
                           bounded(process.cgroup, kMaxInlineRuleTextBytes));
  }
  return name;
}

// ---------------------------------------------------------------------------
// Putting it together

bool LooksLikeQemu(const ProcessInfo& process, const QemuCmdline& qemu) {
  const std::string_view program = process.argv.empty() ? "" : Basename(process.argv.front());
  const auto qemu_named = [](std::string_view name) {
    return name.find("qemu") != std::string_view::npos || name == "kvm";
  };
  return qemu_named(program) || qemu_named(process.comm) || !qemu.name.empty() ||
         !qemu.uuid.empty();
}

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

// KubeVirt names the libvirt domain "<namespace>_<vmi>"; neither part can hold
// '_' (Kubernetes names are DNS labels), so "<namespace>/<vmi>" is exact and
// reads the way kubectl does.
std::string KubevirtName(std::string name) {
  if (const auto underscore = name.find('_'); underscore != std::string::npos) {
    name[underscore] = '/';
  }
  return name;
}

// libvirt machine scopes and Kubernetes pods (Proxmox: see ProxmoxName).
std::string NameFromCgroup(const CgroupVm& cgroup) {
  switch (cgroup.kind) {
    case CgroupVm::Kind::kLibvirtMachine:
      return CleanName(cgroup.name);
    case CgroupVm::Kind::kKubernetesPod:
      return "pod-" + cgroup.id;
    case CgroupVm::Kind::kProxmox:
    case CgroupVm::Kind::kNone:
      break;
  }
  return {};
}

// The name in the VM's configuration, else its vmid, which Proxmox shows beside it.
std::string ProxmoxName(const std::string& vmid, const ProxmoxConfig& config) {
  if (vmid.empty()) return {};
  if (auto name = CleanName(config.name); !name.empty()) return name;
  return "vmid-" + vmid;
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

  const std::string candidates[] = {
      CleanName(identity.platform == kPlatformKubevirt ? KubevirtName(qemu.name) : qemu.name),
      NameFromCgroup(cgroup),
      ProxmoxName(vmid, proxmox),
      CleanName(OtherVmmId(other_vmm, process.argv)),
      CleanName(process.comm),
  };
  const auto chosen = std::find_if(std::begin(candidates), std::end(candidates),
                                   [](const std::string& name) { return !name.empty(); });
  identity.name = chosen != std::end(candidates) ? *chosen : "pid-" + std::to_string(process.pid);
  return identity;
}

// Decodes one UTF-8 character at the start of `text`: its length and code
// point, or length 0 when the bytes there are not valid UTF-8.
std::pair<std::size_t, std::uint32_t> DecodeUtf8(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return {1, lead};
  std::size_t length = 0;
  std::uint32_t code_point = 0, minimum = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, code_point = lead & 0x1F, minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, code_point = lead & 0x0F, minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, code_point = lead & 0x07, minimum = 0x10000;
  } else {
    return {0, 0};
  }
  if (text.size() < length) return {0, 0};
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return {0, 0};
    code_point = (code_point << 6) | (byte(i) & 0x3F);
  }
  const bool overlong = code_point < minimum;
  const bool surrogate = code_point >= 0xD800 && code_point <= 0xDFFF;
  if (overlong || surrogate || code_point > 0x10FFFF) return {0, 0};
  return {length, code_point};
}

bool IsControl(std::uint32_t code_point) {
  return code_point < 0x20 || (code_point >= 0x7F && code_point <= 0x9F);
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API

std::optional<ProcStat> ParseProcStat(std::string_view text) noexcept {
  try {
    const auto open = text.find('(');
    const auto close = text.rfind(')');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
      return std::nullopt;
    }
    // Fields after comm, numbered as in proc(5): fields[0] is field 3 (state).
    const auto fields = SplitNonEmpty(Trim(text.substr(close + 1)), ' ');
    constexpr std::size_t kState = 3 - 3, kNumThreads = 20 - 3, kStartTime = 22 - 3;
    if (fields.size() <= kStartTime || fields[kState].size() != 1) return std::nullopt;
    const auto num_threads = ParseDecimal<std::int64_t>(fields[kNumThreads]);
    const auto start_ticks = ParseDecimal<std::uint64_t>(fields[kStartTime]);
    if (!num_threads || !start_ticks) return std::nullopt;
    return ProcStat{std::string(text.substr(open + 1, close - open - 1)), fields[kState][0],
                    *num_threads, *start_ticks};
  } catch (...) {
    return std::nullopt;
  }
}

std::string SelectCgroupPath(std::string_view proc_cgroup_text) noexcept {
  try {
    std::string unified, systemd, other;
    bool any = false;
    for (const auto line : Split(proc_cgroup_text, '\n')) {
      // "hierarchy-id:controllers:path"; the path itself may contain ':'.
      const auto first = line.find(':');
      const auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
      if (second == std::string_view::npos) continue;
      any = true;
      const auto hierarchy = line.substr(0, first);
      const auto controllers = line.substr(first + 1, second - first - 1);
      const auto path = line.substr(second + 1);
      if (path.empty() || path == "/") continue;
      if (hierarchy == "0" && controllers.empty()) {
        unified = path;
      } else if (controllers == "name=systemd") {
        systemd = path;
      } else if (other.empty()) {
        other = path;
      }
    }
    for (auto* path : {&unified, &systemd, &other}) {
      if (!path->empty()) return std::move(*path);
    }
    return any ? "/" : "";
  } catch (...) {
    return {};
  }
}

std::optional<ProcessInfo> ReadProcessInfo(const std::string& proc_root,
                                           std::uint32_t pid) noexcept {
  try {
    // Every read goes through this handle: should the process exit and its pid
    // be reused meanwhile, the reads fail instead of describing the newcomer.
    const auto dir = OpenProcessDirectory(proc_root, pid);
    if (!dir.valid()) return std::nullopt;
    auto stat = ReadLiveStatAt(dir.get());
    if (!stat) return std::nullopt;
    ProcessInfo info;
    info.pid = pid;
    info.comm = std::move(stat->comm);
    info.start_ticks = stat->start_ticks;
    // A failed read leaves the text empty: a process without a command line or cgroup.
    info.argv = SplitCmdline(ReadFileAt(dir.get(), "cmdline", kMaxCmdlineBytes).text);
    info.cgroup = SelectCgroupPath(ReadFileAt(dir.get(), "cgroup", kMaxCgroupBytes).text);
    // An exit during the reads leaves an empty cmdline: do not name the VM from that.
    if (!ReadLiveStatAt(dir.get())) return std::nullopt;
    return info;
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<std::uint64_t> ReadStartTicks(const std::string& proc_root,
                                            std::uint32_t pid) noexcept {
  try {
    const auto dir = OpenProcessDirectory(proc_root, pid);
    if (!dir.valid()) return std::nullopt;
    const auto stat = ReadLiveStatAt(dir.get());
    if (!stat) return std::nullopt;
    return stat->start_ticks;
  } catch (...) {
    return std::nullopt;
  }
}

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

std::string SanitizeLabelValue(std::string_view text, std::size_t max_bytes) noexcept {
  try {
    std::string out;
    while (!text.empty()) {
      auto [length, code_point] = DecodeUtf8(text);
      const bool replace = length == 0 || IsControl(code_point);
      const std::size_t out_length = replace ? 1 : length;
      if (out.size() + out_length > max_bytes) break;
      if (replace) {
        out += '_';
      } else {
        out.append(text.substr(0, length));
      }
      text.remove_prefix(length == 0 ? 1 : length);
    }
    return out;
  } catch (...) {
    return {};
  }
}

long ClockTicksPerSecond() noexcept {
  static const long ticks = [] {
    const long value = ::sysconf(_SC_CLK_TCK);
    return value > 0 ? value : 100;  // USER_HZ is 100 on every Linux ABI
  }();
  return ticks;
}

}  // namespace kvmexit
