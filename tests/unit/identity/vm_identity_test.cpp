// SPDX-License-Identifier: Apache-2.0
// VM identity: how IdentifyVm combines the sources (name precedence and
// platform) for every supported platform layout, on made-up processes and on
// real helper processes whose command line and cgroup look like QEMU/libvirt,
// Proxmox, KubeVirt, Firecracker, cloud-hypervisor, crosvm. Each source's own
// details are tested beside it (process_info_test, qemu_cmdline_test, ...).
#include "identity/vm_identity.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "config/config.h"
#include "identity/label_value.h"
#include "identity/naming_rules.h"
#include "temp_dir.h"
#include "util/text.h"

namespace kvmexit {
namespace {

namespace fs = std::filesystem;

constexpr char kUuid[] = "8f0d4a3e-1c2b-4d5e-9f60-718293a4b5c6";
// The -object libvirt 9.0 gives every QEMU it starts.
constexpr char kLibvirtMasterKey[] =
    R"({"qom-type":"secret","id":"masterKey0","format":"raw",)"
    R"("file":"/var/lib/libvirt/qemu/domain-1-web01/master-key.aes"})";

// ---------------------------------------------------------------------------
// Helpers

using test_util::TempDir;
using test_util::WriteFile;

ProcessInfo Process(std::vector<std::string> argv, std::string cgroup = "/",
                    std::string comm = "") {
  ProcessInfo process;
  process.pid = 4242;
  if (comm.empty() && !argv.empty())
    comm = fs::path(argv.front()).filename().string().substr(0, 15);
  process.comm = std::move(comm);
  process.argv = std::move(argv);
  process.cgroup = std::move(cgroup);
  process.start_ticks = 1000;
  return process;
}

VmIdentity Identify(const ProcessInfo& process, const std::vector<NamingRule>& rules = {},
                    const std::string& pve_root = "/nonexistent/pve") {
  return IdentifyVm(process, rules, pve_root);
}

VmIdentity Expected(std::string name, std::string_view platform, std::string uuid = "") {
  return VmIdentity{std::move(name), std::move(uuid), std::string(platform)};
}

NamingRule Rule(NamingRule::Source source, std::string regex, std::string name) {
  NamingRule rule;
  rule.source = source;
  rule.regex = std::move(regex);
  rule.name = std::move(name);
  // As configuration loading does; an invalid rule stays uncompiled and never matches.
  (void)CompileNamingRule(rule);
  return rule;
}

// A Proxmox cluster filesystem root holding qemu-server/<vmid>.conf files.
void WriteProxmoxConfig(const fs::path& pve_root, std::string_view vmid,
                        std::string_view contents) {
  WriteFile(pve_root / "qemu-server" / (std::string(vmid) + ".conf"), contents);
}

// ---------------------------------------------------------------------------
// QEMU and libvirt command lines

TEST(IdentifyVmTest, LibvirtGuestNameAndUuid) {
  const auto process = Process(
      {"/usr/bin/qemu-system-x86_64", "-name", "guest=web01,debug-threads=on", "-S", "-object",
       kLibvirtMasterKey, "-uuid", "8F0D4A3E-1C2B-4D5E-9F60-718293A4B5C6", "-machine", "q35"});
  EXPECT_EQ(Identify(process), Expected("web01", kPlatformLibvirt, kUuid));
}

// Found on a Debian 12 host: `qemu-system-x86_64 -name guest=NAME` started by
// hand was labelled libvirt's. Outside libvirt's cgroup and without its master
// key it is a plain QEMU, named the same.
TEST(IdentifyVmTest, GuestKeyStartedByHandIsPlainQemu) {
  EXPECT_EQ(Identify(Process(
                {"qemu-system-x86_64", "-enable-kvm", "-name", "guest=byhand", "-uuid", kUuid})),
            Expected("byhand", kPlatformQemu, kUuid));
}

TEST(IdentifyVmTest, PlainQemuName) {
  EXPECT_EQ(Identify(Process({"qemu-system-x86_64", "-enable-kvm", "-name", "plainvm"})),
            Expected("plainvm", kPlatformQemu));
  EXPECT_EQ(Identify(Process({"qemu-kvm", "--name", "plainvm,process=qemu-plain"})),
            Expected("plainvm", kPlatformQemu));
}

TEST(IdentifyVmTest, QemuDoubledCommasAreLiteralCommas) {
  EXPECT_EQ(
      Identify(Process({"qemu-system-x86_64", "-name", "guest=a,,b,,c,debug-threads=on"})).name,
      "a,b,c");
  EXPECT_EQ(Identify(Process({"qemu-system-x86_64", "-name", "x,,y,debug-threads=on"})).name,
            "x,y");
}

TEST(IdentifyVmTest, LastNameOptionWins) {
  EXPECT_EQ(Identify(Process({"qemu-system-x86_64", "-name", "first", "-name", "second"})).name,
            "second");
}

TEST(IdentifyVmTest, InvalidUuidIsDroppedAndSmbiosUuidIsUsed) {
  EXPECT_EQ(Identify(Process({"qemu-system-x86_64", "-name", "a", "-uuid", "not-a-uuid"})).uuid,
            "");
  EXPECT_EQ(Identify(Process({"qemu-system-x86_64", "-name", "a", "-smbios",
                              std::string("type=1,manufacturer=x,uuid=") + kUuid}))
                .uuid,
            kUuid);
}

TEST(IdentifyVmTest, NameOptionWithoutValueIsIgnored) {
  EXPECT_EQ(Identify(Process({"qemu-system-x86_64", "-S", "-name"})),
            Expected("qemu-system-x86", kPlatformQemu));
}

// ---------------------------------------------------------------------------
// cgroup layouts

TEST(IdentifyVmTest, SystemdMachineScopeIsUnescaped) {
  const auto process = Process({"/usr/bin/qemu-system-x86_64", "-S"},
                               "/machine.slice/machine-qemu\\x2d3\\x2dmy\\x2dvm.scope");
  EXPECT_EQ(Identify(process), Expected("my-vm", kPlatformLibvirt));
}

TEST(IdentifyVmTest, SystemdMachineScopeWithLibvirtSubgroupAndOldFormat) {
  EXPECT_EQ(Identify(Process({"qemu-system-x86_64"},
                             "/machine.slice/machine-qemu\\x2d12\\x2ddb\\x2d01.scope/libvirt/"
                             "emulator"))
                .name,
            "db-01");
  EXPECT_EQ(
      Identify(Process({"qemu-system-x86_64"}, "/machine.slice/machine-qemu\\x2dold.scope")).name,
      "old");
}

TEST(IdentifyVmTest, LibvirtCgroupfsMachine) {
  EXPECT_EQ(Identify(Process({"qemu-system-x86_64"}, "/machine/qemu-4-mail.libvirt-qemu/emulator")),
            Expected("mail", kPlatformLibvirt));
}

TEST(IdentifyVmTest, CommandLineNameBeatsCgroupName) {
  const auto process = Process({"qemu-system-x86_64", "-name", "guest=from-cmdline"},
                               "/machine.slice/machine-qemu\\x2d3\\x2dfrom\\x2dscope.scope");
  EXPECT_EQ(Identify(process), Expected("from-cmdline", kPlatformLibvirt));
}

TEST(IdentifyVmTest, ProxmoxScopeNamedFromConfig) {
  TempDir pve;
  WriteProxmoxConfig(pve.path(), "100",
                     "boot: order=scsi0\ncores: 4\nname: db-server\n"
                     "smbios1: uuid=8F0D4A3E-1C2B-4D5E-9F60-718293A4B5C6\n"
                     "\n[before-upgrade]\nname: old-name\n");
  const auto process = Process({"/usr/bin/kvm", "-chardev", "socket"}, "/qemu.slice/100.scope");
  EXPECT_EQ(Identify(process, {}, pve.path().string()),
            Expected("db-server", kPlatformProxmox, kUuid));
}

TEST(IdentifyVmTest, ProxmoxWithoutReadableConfigUsesVmid) {
  const auto process = Process({"/usr/bin/kvm"}, "/qemu.slice/101.scope");
  EXPECT_EQ(Identify(process), Expected("vmid-101", kPlatformProxmox));
}

TEST(IdentifyVmTest, ProxmoxIdOptionWithoutCgroup) {
  TempDir pve;
  WriteProxmoxConfig(pve.path(), "102", "name: from-conf\n");
  EXPECT_EQ(Identify(Process({"/usr/bin/kvm", "-id", "102"}), {}, pve.path().string()),
            Expected("from-conf", kPlatformProxmox));
  // What Proxmox really passes: `-id` and `-name NAME,debug-threads=on`.
  EXPECT_EQ(Identify(Process({"/usr/bin/kvm", "-id", "102", "-name", "cmd-name,debug-threads=on"}),
                     {}, pve.path().string()),
            Expected("cmd-name", kPlatformProxmox));
}

TEST(IdentifyVmTest, KubevirtCgroupfsDriver) {
  const auto process = Process({"/usr/libexec/qemu-kvm"},
                               "/kubepods/burstable/pod0b7e5a3c-96f1-4c1a-8d3b-2f6a1e9c7d40/"
                               "4f1c0e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e");
  EXPECT_EQ(Identify(process),
            Expected("pod-0b7e5a3c-96f1-4c1a-8d3b-2f6a1e9c7d40", kPlatformKubevirt));
}

TEST(IdentifyVmTest, KubevirtSystemdDriverUidUnderscoresBecomeDashes) {
  const auto process = Process({"/usr/libexec/qemu-kvm"},
                               "/kubepods.slice/kubepods-burstable.slice/"
                               "kubepods-burstable-pod0b7e5a3c_96f1_4c1a_8d3b_2f6a1e9c7d40.slice/"
                               "cri-containerd-4f1c0e9d8b7a.scope");
  EXPECT_EQ(Identify(process),
            Expected("pod-0b7e5a3c-96f1-4c1a-8d3b-2f6a1e9c7d40", kPlatformKubevirt));
  const auto guaranteed = Process({"/usr/libexec/qemu-kvm"},
                                  "/kubepods.slice/kubepods-pod0b7e5a3c_96f1.slice/crio-1.scope");
  EXPECT_EQ(Identify(guaranteed).name, "pod-0b7e5a3c-96f1");
}

TEST(IdentifyVmTest, KubevirtPrefersTheDomainNameAsNamespaceSlashName) {
  const auto process = Process(
      {"/usr/libexec/qemu-kvm", "-name", "guest=default_testvm,debug-threads=on", "-uuid", kUuid},
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b7e5a3c_96f1.slice/"
      "cri-containerd-1.scope");
  EXPECT_EQ(Identify(process), Expected("default/testvm", kPlatformKubevirt, kUuid));
}

TEST(IdentifyVmTest, PodOutsideKubepodsIsNotAPod) {
  EXPECT_EQ(Identify(Process({"qemu-system-x86_64"}, "/user.slice/pod0b7e5a3c.slice")),
            Expected("qemu-system-x86", kPlatformQemu));
}

// ---------------------------------------------------------------------------
// Other VMMs

TEST(IdentifyVmTest, FirecrackerId) {
  EXPECT_EQ(
      Identify(Process({"/usr/bin/firecracker", "--api-sock", "/tmp/fc.sock", "--id", "fc-42"})),
      Expected("fc-42", kPlatformFirecracker));
  EXPECT_EQ(Identify(Process({"firecracker", "--id=fc-43"})).name, "fc-43");
  EXPECT_EQ(Identify(Process({"firecracker", "--api-sock", "/tmp/fc.sock"})),
            Expected("firecracker", kPlatformFirecracker));
}

TEST(IdentifyVmTest, FirecrackerIsNotParsedAsQemu) {
  EXPECT_EQ(Identify(Process({"firecracker", "-name", "nope", "--id", "fc-1"})).name, "fc-1");
}

TEST(IdentifyVmTest, CloudHypervisorApiSocket) {
  EXPECT_EQ(Identify(Process({"cloud-hypervisor", "--api-socket", "/run/ch/web02.sock"})),
            Expected("web02", kPlatformCloudHypervisor));
  // Kata: a fixed socket name in a per-sandbox directory.
  EXPECT_EQ(Identify(Process({"/opt/kata/bin/cloud-hypervisor", "--api-socket",
                              "path=/run/vc/vm/sandbox-7/clh-api.sock"}))
                .name,
            "sandbox-7");
  EXPECT_EQ(Identify(Process({"cloud-hypervisor", "--api-socket", "fd=3"})),
            Expected("cloud-hyperviso", kPlatformCloudHypervisor));
}

TEST(IdentifyVmTest, CrosvmSyslogTagOrSocket) {
  EXPECT_EQ(Identify(Process({"crosvm", "run", "--socket", "/run/crosvm/builder.sock", "vmlinux"})),
            Expected("builder", kPlatformCrosvm));
  EXPECT_EQ(
      Identify(Process({"crosvm", "run", "--syslog-tag", "termina", "-s", "/run/a/crosvm.sock"}))
          .name,
      "termina");
  EXPECT_EQ(Identify(Process({"crosvm", "run", "vmlinux"})), Expected("crosvm", kPlatformCrosvm));
}

TEST(IdentifyVmTest, FallsBackToProcessName) {
  EXPECT_EQ(Identify(Process({"/opt/my-vmm", "--foo"}, "/", "my-vmm")),
            Expected("my-vmm", kPlatformProcess));
  EXPECT_EQ(Identify(Process({}, "/", "v\tmm")).name, "v_mm");
  EXPECT_EQ(Identify(Process({}, "/", "")).name, "pid-4242");
}

TEST(IdentifyVmTest, NamesAreCappedAndValidUtf8) {
  const auto name =
      Identify(Process({"qemu-system-x86_64", "-name", "guest=" + std::string(500, 'n') + "\xff"}))
          .name;
  EXPECT_EQ(name, std::string(kMaxVmLabelBytes, 'n'));
}

// Every source, fed an overlong value with an invalid byte and a control
// character in it, gives a bounded clean name: the bound is IdentifyVm's, not
// each source's (fuzz_vm_identity found a 150-digit Proxmox vmid in a cgroup
// after the kubepods pod UID had been bounded at its source).
TEST(IdentifyVmTest, EverySourceIsBoundedAtTheOneExit) {
  const std::string overlong = " " + std::string(300, 'v') + "\x01\xff" + std::string(300, 'w');
  const std::string digits(150, '7');
  TempDir pve;
  WriteProxmoxConfig(pve.path(), "105", "name: " + overlong + "\n");
  struct Case {
    const char* source;
    VmIdentity identity;
    std::string_view platform;
  };
  const Case cases[] = {
      {"qemu -name", Identify(Process({"qemu-system-x86_64", "-name", overlong})), kPlatformQemu},
      {"libvirt guest=",
       Identify(Process({"qemu-system-x86_64", "-name", "guest=" + overlong + ",debug-threads=on",
                         "-object", kLibvirtMasterKey})),
       kPlatformLibvirt},
      {"kubevirt domain",
       Identify(Process({"qemu-kvm", "-name", "guest=ns_" + overlong},
                        "/kubepods/pod0b7e5a3c-96f1-4c1a-8d3b-2f6a1e9c7d40/c")),
       kPlatformKubevirt},
      {"libvirt cgroup scope",
       Identify(Process({}, "/machine.slice/machine-qemu\\x2d1\\x2d" + overlong + ".scope", "x")),
       kPlatformLibvirt},
      {"proxmox cgroup vmid (the fuzz reproducer)",
       Identify(Process({"/usr/bin/kvm"}, "/qemu.slice/" + digits + ".scope")), kPlatformProxmox},
      {"proxmox -id", Identify(Process({"/usr/bin/kvm", "-id", digits})), kPlatformProxmox},
      {"proxmox config name",
       Identify(Process({"/usr/bin/kvm"}, "/qemu.slice/105.scope"), {}, pve.path().string()),
       kPlatformProxmox},
      {"firecracker --id", Identify(Process({"firecracker", "--id", overlong})),
       kPlatformFirecracker},
      {"cloud-hypervisor socket",
       Identify(Process({"cloud-hypervisor", "--api-socket", "/run/" + overlong + ".sock"})),
       kPlatformCloudHypervisor},
      {"crosvm tag", Identify(Process({"crosvm", "run", "--syslog-tag", overlong})),
       kPlatformCrosvm},
      {"naming rule",
       Identify(Process({"qemu-system-x86_64"}),
                {Rule(NamingRule::Source::kCmdline, "qemu", std::string(300, 'r') + "$0\t")}),
       kPlatformRule},
      {"process name", Identify(Process({}, "/", overlong)), kPlatformProcess},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.source);
    const std::string& name = c.identity.name;
    EXPECT_EQ(c.identity.platform, c.platform);
    EXPECT_FALSE(name.empty());
    EXPECT_LE(name.size(), kMaxVmLabelBytes);
    EXPECT_EQ(name, SanitizeLabelValue(name));  // valid UTF-8, no control character
    EXPECT_EQ(name, std::string(Trim(name)));
  }
}

// ---------------------------------------------------------------------------
// User rules

TEST(IdentifyVmTest, RuleWithCaptureGroups) {
  const std::vector<NamingRule> rules = {
      Rule(NamingRule::Source::kCmdline, R"(-drive file=/vm/(\w+)/(\w+)\.img)", "$1-$2")};
  const auto process = Process({"qemu-system-x86_64", "-name", "guest=ignored", "-uuid", kUuid,
                                "-drive", "file=/vm/tenant7/disk0.img,if=virtio"});
  EXPECT_EQ(Identify(process, rules), Expected("tenant7-disk0", kPlatformRule, kUuid));
}

TEST(IdentifyVmTest, FirstMatchingRuleWins) {
  const std::vector<NamingRule> rules = {
      Rule(NamingRule::Source::kCmdline, "no-such-arg", "never"),
      Rule(NamingRule::Source::kCgroup, R"(/tenants/([^/]+)/)", "tenant-$1"),
      Rule(NamingRule::Source::kCmdline, "qemu", "second-match"),
  };
  EXPECT_EQ(Identify(Process({"qemu-system-x86_64"}, "/tenants/acme/vm3"), rules).name,
            "tenant-acme");
  EXPECT_EQ(Identify(Process({"qemu-system-x86_64"}, "/elsewhere"), rules).name, "second-match");
}

TEST(IdentifyVmTest, InvalidOrEmptyRulesAreSkipped) {
  const std::vector<NamingRule> rules = {
      Rule(NamingRule::Source::kCmdline, "([unclosed", "bad"),
      Rule(NamingRule::Source::kCmdline, "(x)?qemu", "$1"),  // group did not take part: ""
  };
  EXPECT_EQ(Identify(Process({"qemu-system-x86_64", "-name", "fallback"}), rules),
            Expected("fallback", kPlatformQemu));
}

// ---------------------------------------------------------------------------
// Real processes

// The first mount of a cgroup hierarchy, from /proc/self/mountinfo: cgroup v2,
// or the v1 hierarchy whose super options contain `v1_option` (e.g. "name=systemd").
std::optional<fs::path> CgroupMount(std::string_view v1_option = "") {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    // "id parent major:minor root mount-point options... - fstype source super-options"
    const auto separator = line.find(" - ");
    if (separator == std::string::npos) continue;
    std::istringstream before(line.substr(0, separator)), after(line.substr(separator + 3));
    std::string id, parent, device, root, mount_point, fstype, source, super_options;
    before >> id >> parent >> device >> root >> mount_point;
    after >> fstype >> source >> super_options;
    const bool wanted = v1_option.empty() ? fstype == "cgroup2"
                                          : fstype == "cgroup" &&
                                                super_options.find(v1_option) != std::string::npos;
    if (wanted) return fs::path(mount_point);
  }
  return std::nullopt;
}

// A cgroup made for one test under a hierarchy's mount point; removed (after
// moving any process left in it back to the root) on destruction.
class TestCgroup {
 public:
  // nullopt (and *why set) when the hierarchy is missing or not writable here.
  static std::optional<fs::path> Create(const fs::path& mount, const fs::path& relative,
                                        std::string* why) {
    std::error_code error;
    fs::create_directories(mount / relative, error);
    if (error) {
      *why = "cannot create cgroup " + (mount / relative).string() + ": " + error.message();
      return std::nullopt;
    }
    return mount / relative;
  }

  TestCgroup(fs::path mount, fs::path top) : mount_(std::move(mount)), top_(std::move(top)) {}
  ~TestCgroup() { Remove(mount_ / top_); }
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;

 private:
  void Remove(const fs::path& dir) {
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(dir, error)) {
      if (entry.is_directory(error)) Remove(entry.path());
    }
    MoveProcessesToRoot(dir);
    // A killed process may take a moment to leave its cgroup.
    for (int attempt = 0; attempt < 100 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  void MoveProcessesToRoot(const fs::path& dir) {
    std::ifstream procs(dir / "cgroup.procs");
    std::string pid;
    while (procs >> pid) {
      std::ofstream root_procs(mount_ / "cgroup.procs");
      root_procs << pid << std::endl;
    }
  }

  fs::path mount_;
  fs::path top_;
};

// A running fake_vmm process exec'd as `program` (a symlink, so comm matches)
// with `argv`, optionally started inside `cgroup_dir`. Killed on destruction.
class FakeVmm {
 public:
  FakeVmm(const fs::path& bin_dir, const std::string& program, std::vector<std::string> argv,
          std::optional<fs::path> cgroup_dir = std::nullopt) {
    const fs::path executable = bin_dir / program;
    if (!fs::exists(fs::symlink_status(executable))) {
      fs::create_symlink(KVMEXIT_FAKE_VMM_PATH, executable);
    }
    Start(executable, std::move(argv), cgroup_dir);
  }
  ~FakeVmm() { Kill(); }
  FakeVmm(const FakeVmm&) = delete;
  FakeVmm& operator=(const FakeVmm&) = delete;

  std::uint32_t pid() const { return static_cast<std::uint32_t>(pid_); }
  const std::string& error() const { return error_; }
  bool running() const { return pid_ > 0; }

  // Kills and reaps: afterwards the pid names no process.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // Kills without reaping: the process stays a zombie.
  void KillLeavingZombie() {
    ::kill(pid_, SIGKILL);
    siginfo_t info{};
    ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT);
  }

 private:
  // The child reports a failure to join the cgroup or to exec through a
  // close-on-exec pipe; EOF means exec succeeded, so /proc shows the new image.
  void Start(const fs::path& executable, std::vector<std::string> argv,
             const std::optional<fs::path>& cgroup_dir) {
    std::vector<char*> raw_argv;
    for (auto& arg : argv) raw_argv.push_back(arg.data());
    raw_argv.push_back(nullptr);
    const std::string procs = cgroup_dir ? (*cgroup_dir / "cgroup.procs").string() : "";
    const std::string path = executable.string();
    const pid_t parent = ::getpid();

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
      error_ = std::string("pipe2: ") + std::strerror(errno);
      return;
    }
    pid_ = ::fork();
    if (pid_ == 0) RunChild(pipe_fds[1], parent, procs, path, raw_argv.data());
    ::close(pipe_fds[1]);
    int child_errno = 0;
    const ssize_t got = ::read(pipe_fds[0], &child_errno, sizeof(child_errno));
    ::close(pipe_fds[0]);
    if (pid_ < 0 || got > 0) {
      error_ = std::string("starting fake VMM: ") + std::strerror(pid_ < 0 ? errno : child_errno);
      Kill();
    }
  }

  // Async-signal-safe calls only: this runs between fork and exec.
  [[noreturn]] static void RunChild(int report_fd, pid_t parent, const std::string& procs,
                                    const std::string& path, char* const* argv) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
    if (::getppid() != parent) ::_exit(127);
    if (!procs.empty()) {
      const int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || ::write(fd, "0", 1) != 1) Report(report_fd);
    }
    ::execv(path.c_str(), argv);
    Report(report_fd);
  }

  [[noreturn]] static void Report(int fd) {
    const int error = errno;
    [[maybe_unused]] const auto written = ::write(fd, &error, sizeof(error));
    ::_exit(127);
  }

  pid_t pid_ = -1;
  std::string error_;
};

class RealProcessTest : public ::testing::Test {
 protected:
  // Starts a fake VMM, failing the test if it could not be started.
  std::unique_ptr<FakeVmm> Start(const std::string& program, std::vector<std::string> argv,
                                 std::optional<fs::path> cgroup_dir = std::nullopt) {
    auto vmm = std::make_unique<FakeVmm>(bin_.path(), program, std::move(argv), cgroup_dir);
    EXPECT_TRUE(vmm->running()) << vmm->error();
    return vmm;
  }

  ProcessInfo Read(const FakeVmm& vmm) {
    auto info = ReadProcessInfo("/proc", vmm.pid());
    EXPECT_TRUE(info) << "pid " << vmm.pid();
    return info.value_or(ProcessInfo{});
  }

  // A per-test cgroup tree under the v2 (or a v1) hierarchy; skips the test
  // when that hierarchy cannot be written here.
  std::optional<fs::path> MakeCgroup(const fs::path& relative, std::string_view v1_option = "") {
    const auto mount = CgroupMount(v1_option);
    if (!mount) {
      skip_reason_ = v1_option.empty() ? "no cgroup v2 hierarchy mounted"
                                       : "no cgroup v1 " + std::string(v1_option) + " hierarchy";
      return std::nullopt;
    }
    const fs::path top = "kvmexit-test-" + std::to_string(::getpid()) + "-" +
                         ::testing::UnitTest::GetInstance()->current_test_info()->name();
    auto dir = TestCgroup::Create(*mount, top / relative, &skip_reason_);
    cgroups_.push_back(std::make_unique<TestCgroup>(*mount, top));
    return dir;
  }

  void TearDown() override {
    cgroups_.clear();  // after the test body's FakeVmm objects died
  }

  std::string pve_root() const { return pve_.path().string(); }

  TempDir bin_;
  TempDir pve_;
  std::string skip_reason_;
  std::vector<std::unique_ptr<TestCgroup>> cgroups_;
};

TEST_F(RealProcessTest, LibvirtCommandLine) {
  const std::vector<std::string> argv = {"/usr/bin/qemu-system-x86_64",
                                         "-name",
                                         "guest=web01,debug-threads=on",
                                         "-S",
                                         "-object",
                                         kLibvirtMasterKey,
                                         "-uuid",
                                         kUuid,
                                         "-machine",
                                         "pc-q35-7.2,usb=off",
                                         "-m",
                                         "2048"};
  const auto vmm = Start("qemu-system-x86_64", argv);
  const auto info = Read(*vmm);
  EXPECT_EQ(info.comm, "qemu-system-x86");  // the kernel keeps 15 bytes of the file name
  EXPECT_EQ(info.argv, argv);
  EXPECT_EQ(IdentifyVm(info, {}, pve_root()), Expected("web01", kPlatformLibvirt, kUuid));
}

TEST_F(RealProcessTest, PlainQemuWithEscapedCommas) {
  const auto vmm = Start("qemu-system-x86_64", {"qemu-system-x86_64", "-enable-kvm", "-name",
                                                "lab,,vm,debug-threads=on"});
  EXPECT_EQ(IdentifyVm(Read(*vmm), {}, pve_root()), Expected("lab,vm", kPlatformQemu));
}

TEST_F(RealProcessTest, SystemdMachineScope) {
  const auto cgroup = MakeCgroup("machine.slice/machine-qemu\\x2d3\\x2dmy\\x2dvm.scope");
  if (!cgroup) GTEST_SKIP() << skip_reason_;
  const auto vmm = Start("qemu-system-x86_64", {"/usr/bin/qemu-system-x86_64", "-S"}, cgroup);
  const auto info = Read(*vmm);
  EXPECT_TRUE(info.cgroup.ends_with("/machine.slice/machine-qemu\\x2d3\\x2dmy\\x2dvm.scope"))
      << info.cgroup;
  EXPECT_EQ(IdentifyVm(info, {}, pve_root()), Expected("my-vm", kPlatformLibvirt));
}

TEST_F(RealProcessTest, ProxmoxScope) {
  const auto cgroup = MakeCgroup("qemu.slice/100.scope");
  if (!cgroup) GTEST_SKIP() << skip_reason_;
  WriteProxmoxConfig(pve_.path(), "100", "cores: 2\nname: db-server\nostype: l26\n");
  const auto named = Start("kvm", {"/usr/bin/kvm", "-chardev", "socket,id=qmp"}, cgroup);
  EXPECT_EQ(IdentifyVm(Read(*named), {}, pve_root()), Expected("db-server", kPlatformProxmox));

  fs::remove(pve_.path() / "qemu-server" / "100.conf");
  EXPECT_EQ(IdentifyVm(Read(*named), {}, pve_root()), Expected("vmid-100", kPlatformProxmox));
}

TEST_F(RealProcessTest, ProxmoxScopeOnCgroupV1) {
  const auto cgroup = MakeCgroup("qemu.slice/105.scope", "name=systemd");
  if (!cgroup) GTEST_SKIP() << skip_reason_;
  WriteProxmoxConfig(pve_.path(), "105", "name: legacy-host\n");
  const auto vmm = Start("kvm", {"/usr/bin/kvm", "-nodefaults"}, cgroup);
  const auto info = Read(*vmm);
  EXPECT_TRUE(info.cgroup.ends_with("/qemu.slice/105.scope")) << info.cgroup;
  EXPECT_EQ(IdentifyVm(info, {}, pve_root()), Expected("legacy-host", kPlatformProxmox));
}

TEST_F(RealProcessTest, KubevirtSystemdDriver) {
  const auto cgroup = MakeCgroup(
      "kubepods.slice/kubepods-burstable.slice/"
      "kubepods-burstable-pod0b7e5a3c_96f1_4c1a_8d3b_2f6a1e9c7d40.slice/"
      "cri-containerd-4f1c0e9d.scope");
  if (!cgroup) GTEST_SKIP() << skip_reason_;
  const auto named = Start(
      "qemu-kvm",
      {"/usr/libexec/qemu-kvm", "-name", "guest=default_testvm,debug-threads=on", "-uuid", kUuid},
      cgroup);
  EXPECT_EQ(IdentifyVm(Read(*named), {}, pve_root()),
            Expected("default/testvm", kPlatformKubevirt, kUuid));
  const auto unnamed = Start("qemu-kvm", {"/usr/libexec/qemu-kvm", "-S"}, cgroup);
  EXPECT_EQ(IdentifyVm(Read(*unnamed), {}, pve_root()),
            Expected("pod-0b7e5a3c-96f1-4c1a-8d3b-2f6a1e9c7d40", kPlatformKubevirt));
}

TEST_F(RealProcessTest, KubevirtCgroupfsDriver) {
  const auto cgroup =
      MakeCgroup("kubepods/besteffort/pod0b7e5a3c-96f1-4c1a-8d3b-2f6a1e9c7d41/4f1c0e9d8b7a");
  if (!cgroup) GTEST_SKIP() << skip_reason_;
  const auto vmm = Start("qemu-kvm", {"/usr/libexec/qemu-kvm", "-S"}, cgroup);
  EXPECT_EQ(IdentifyVm(Read(*vmm), {}, pve_root()),
            Expected("pod-0b7e5a3c-96f1-4c1a-8d3b-2f6a1e9c7d41", kPlatformKubevirt));
}

TEST_F(RealProcessTest, Firecracker) {
  const auto vmm = Start("firecracker", {"firecracker", "--api-sock", "/run/fc/fc-42.socket",
                                         "--id", "fc-42", "--level", "Info"});
  const auto info = Read(*vmm);
  EXPECT_EQ(info.comm, "firecracker");
  EXPECT_EQ(IdentifyVm(info, {}, pve_root()), Expected("fc-42", kPlatformFirecracker));
}

TEST_F(RealProcessTest, CloudHypervisor) {
  const auto vmm =
      Start("cloud-hypervisor", {"cloud-hypervisor", "--api-socket", "path=/run/ch/web03.sock",
                                 "--cpus", "boot=2", "--memory", "size=1G"});
  const auto info = Read(*vmm);
  EXPECT_EQ(info.comm, "cloud-hyperviso");
  EXPECT_EQ(IdentifyVm(info, {}, pve_root()), Expected("web03", kPlatformCloudHypervisor));
}

TEST_F(RealProcessTest, Crosvm) {
  const auto vmm =
      Start("crosvm", {"crosvm", "run", "--socket", "/run/crosvm/builder.sock", "vmlinux"});
  EXPECT_EQ(IdentifyVm(Read(*vmm), {}, pve_root()), Expected("builder", kPlatformCrosvm));
}

TEST_F(RealProcessTest, UnknownVmmIsNamedByProcessName) {
  const auto vmm = Start("my-vmm", {"my-vmm", "--disk", "/vm/a.img"});
  EXPECT_EQ(IdentifyVm(Read(*vmm), {}, pve_root()), Expected("my-vmm", kPlatformProcess));
}

TEST_F(RealProcessTest, UserRule) {
  const std::vector<NamingRule> rules = {
      Rule(NamingRule::Source::kCmdline, R"(-drive file=/vm/(\w+)\.img)", "img-$1")};
  const auto vmm = Start("qemu-system-x86_64", {"qemu-system-x86_64", "-name", "guest=ignored",
                                                "-drive", "file=/vm/tenant7.img,if=virtio"});
  EXPECT_EQ(IdentifyVm(Read(*vmm), rules, pve_root()), Expected("img-tenant7", kPlatformRule));
}

TEST_F(RealProcessTest, ExitedProcessIsGone) {
  auto vmm = Start("qemu-system-x86_64", {"qemu-system-x86_64", "-name", "short"});
  const auto pid = vmm->pid();
  ASSERT_TRUE(ReadProcessInfo("/proc", pid));
  vmm->KillLeavingZombie();
  EXPECT_FALSE(ReadProcessInfo("/proc", pid)) << "a zombie runs no VM";
  EXPECT_FALSE(ReadStartTicks("/proc", pid));
  vmm->Kill();
  EXPECT_FALSE(ReadProcessInfo("/proc", pid));
  EXPECT_FALSE(ReadStartTicks("/proc", pid));
}

}  // namespace
}  // namespace kvmexit
