// SPDX-License-Identifier: Apache-2.0
// Least privilege: which capabilities are kept for which host (pure), and,
// as root, what DropCapabilities leaves a process with and that the BPF
// program still loads, attaches and has its maps read and deleted with only
// the kept set. Drops happen in forked children: this process keeps its own.
#include "app/privileges.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <optional>
#include <cerrno>
#include <filesystem>
#include <functional>
#include <future>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "source/bpf_exit_source.h"
#include "temp_dir.h"
#include "util/file_text.h"
#include "util/text.h"
#include "util/unique_fd.h"

namespace kvmexit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// --- CapabilitiesToKeep ------------------------------------------------------

TEST(CapabilitiesToKeepTest, RootOnAnUpstreamKernelKeepsOnlyBpfAndPerfmon) {
  EXPECT_THAT(CapabilitiesToKeep(PrivilegeNeeds{}), ElementsAre(CAP_PERFMON, CAP_BPF));
}

TEST(CapabilitiesToKeepTest, NonRootAlsoKeepsDacReadSearchForTracefs) {
  EXPECT_THAT(CapabilitiesToKeep(PrivilegeNeeds{.root = false}),
              ElementsAre(CAP_DAC_READ_SEARCH, CAP_PERFMON, CAP_BPF));
}

TEST(CapabilitiesToKeepTest, DebianParanoidThreeKeepsSysAdminOnlyForTheClassicTracepoint) {
  // perf_event_open, which only the classic tracepoint uses, wants it there.
  EXPECT_THAT(
      CapabilitiesToKeep(PrivilegeNeeds{.perf_event_paranoid = 3, .hook = KernelHook::kTracepoint}),
      ElementsAre(CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF));
  EXPECT_THAT(
      CapabilitiesToKeep(PrivilegeNeeds{.perf_event_paranoid = 2, .hook = KernelHook::kTracepoint}),
      ElementsAre(CAP_PERFMON, CAP_BPF));
  // auto attaches raw_tp without it; raw_tp never opens a perf event.
  for (const KernelHook hook : {KernelHook::kAuto, KernelHook::kRawTp}) {
    EXPECT_THAT(CapabilitiesToKeep(PrivilegeNeeds{.perf_event_paranoid = 3, .hook = hook}),
                ElementsAre(CAP_PERFMON, CAP_BPF));
  }
}

TEST(CapabilitiesToKeepTest, ForcedTpBtfKeepsSysAdminForModuleBtf) {
  EXPECT_THAT(CapabilitiesToKeep(PrivilegeNeeds{.hook = KernelHook::kTpBtf}),
              ElementsAre(CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF));
  EXPECT_THAT(CapabilitiesToKeep(PrivilegeNeeds{.hook = KernelHook::kTracepoint}),
              ElementsAre(CAP_PERFMON, CAP_BPF));
  EXPECT_THAT(CapabilitiesToKeep(PrivilegeNeeds{.root = false, .hook = KernelHook::kRawTp}),
              ElementsAre(CAP_DAC_READ_SEARCH, CAP_PERFMON, CAP_BPF));
}

TEST(ProbePrivilegeNeedsTest, ReadsTheRunningSystem) {
  const PrivilegeNeeds needs = ProbePrivilegeNeeds(KernelHook::kTracepoint);
  EXPECT_EQ(needs.root, ::geteuid() == 0);
  const FileText paranoid = ReadFileText("/proc/sys/kernel/perf_event_paranoid");
  ASSERT_EQ(paranoid.error, 0);
  EXPECT_EQ(needs.perf_event_paranoid, ParseDecimal<int>(Trim(paranoid.text)));
  EXPECT_EQ(needs.hook, KernelHook::kTracepoint);
}

// --- DropCapabilities, in a child process ------------------------------------

// Runs `body` in a forked child (single-threaded, like the exporter before
// its threads start); returns what it returned ("" for success) or how it died.
std::string InChild(const std::function<std::string()>& body) {
  std::array<int, 2> fds{};
  if (::pipe(fds.data()) != 0) return "pipe failed";
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    read_end.reset();
    std::string result;
    try {
      result = body();
    } catch (const std::exception& error) {
      result = std::string("threw: ") + error.what();
    }
    const ssize_t written = ::write(write_end.get(), result.data(), result.size());
    ::_exit(written == static_cast<ssize_t>(result.size()) ? 0 : 1);
  }
  write_end.reset();
  std::string result;
  std::array<char, 4096> buffer{};
  ssize_t n = 0;
  while ((n = ::read(read_end.get(), buffer.data(), buffer.size())) > 0) {
    result.append(buffer.data(), static_cast<std::size_t>(n));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return "child died: status " + std::to_string(status);
  return result;
}

// "CapEff" -> its value in /proc/self/status, e.g. "000000c000000000".
std::string StatusField(std::string_view field) {
  const FileText status = ReadFileText("/proc/self/status");
  for (const auto line : Split(status.text, '\n')) {
    if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':') {
      return std::string(Trim(line.substr(field.size() + 1)));
    }
  }
  return "";
}

std::optional<std::uint64_t> ParseHex(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// What a root process should look like after keeping {CAP_BPF, CAP_PERFMON}.
std::string CheckDroppedToBpfAndPerfmon() {
  std::string wrong;
  for (const auto& [field, want] :
       {std::pair{"CapEff", "000000c000000000"}, std::pair{"CapPrm", "000000c000000000"},
        std::pair{"CapBnd", "000000c000000000"}, std::pair{"CapInh", "0000000000000000"},
        std::pair{"CapAmb", "0000000000000000"}, std::pair{"NoNewPrivs", "1"}}) {
    if (const std::string got = StatusField(field); got != want) {
      wrong += std::string(field) + "=" + got + " (want " + want + ") ";
    }
  }
  return wrong;
}

class DropCapabilitiesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: it checks what root keeps";
  }
};

TEST_F(DropCapabilitiesTest, LeavesExactlyTheKeptSetEverywhere) {
  EXPECT_EQ(InChild([] {
              if (std::string error = DropCapabilities({CAP_BPF, CAP_PERFMON}); !error.empty()) {
                return error;
              }
              return CheckDroppedToBpfAndPerfmon();
            }),
            "");
}

TEST_F(DropCapabilitiesTest, ADroppedCapabilityIsReallyGone) {
  test_util::TempDir dir;
  const std::string file = (dir.path() / "owned-by-root").string();
  ASSERT_TRUE(UniqueFd(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)).valid());
  EXPECT_EQ(InChild([&] {
              // Before: root may give a file away (CAP_CHOWN).
              if (::chown(file.c_str(), 65534, 65534) != 0) return std::string("chown before");
              if (::chown(file.c_str(), 0, 0) != 0) return std::string("chown back");
              if (std::string error = DropCapabilities({CAP_BPF, CAP_PERFMON}); !error.empty()) {
                return error;
              }
              if (::chown(file.c_str(), 65534, 65534) == 0 || errno != EPERM) {
                return std::string("chown still allowed after the drop");
              }
              return std::string();
            }),
            "");
}

TEST_F(DropCapabilitiesTest, RefusesWhileAnotherThreadRuns) {
  EXPECT_EQ(InChild([] {
              const std::string before = StatusField("CapEff");
              std::promise<void> release;
              std::thread other([done = release.get_future()]() mutable { done.wait(); });
              const std::string error = DropCapabilities({CAP_BPF, CAP_PERFMON});
              release.set_value();
              other.join();
              if (error.find("2 threads") == std::string::npos)
                return "no refusal: '" + error + "'";
              // Nothing dropped: the other thread would have kept everything.
              const std::string after = StatusField("CapEff");
              return after == before ? std::string() : "dropped anyway: " + before + " -> " + after;
            }),
            "");
}

TEST_F(DropCapabilitiesTest, LiftsTheMemlockLimitBeforeDroppingSysResource) {
  const auto effective = ParseHex(StatusField("CapEff"));
  if (!effective || (*effective & (std::uint64_t{1} << CAP_SYS_RESOURCE)) == 0) {
    GTEST_SKIP() << "this root lacks CAP_SYS_RESOURCE (CapEff " << StatusField("CapEff") << ")";
  }
  EXPECT_EQ(InChild([] {
              const rlimit small{65536, 65536};
              if (::setrlimit(RLIMIT_MEMLOCK, &small) != 0) return std::string("setrlimit");
              if (std::string error = DropCapabilities({CAP_BPF, CAP_PERFMON}); !error.empty()) {
                return error;
              }
              rlimit now{};
              ::getrlimit(RLIMIT_MEMLOCK, &now);
              return now.rlim_cur == RLIM_INFINITY && now.rlim_max == RLIM_INFINITY
                         ? std::string()
                         : "memlock limit " + std::to_string(now.rlim_cur);
            }),
            "");
}

// The measurement behind the kept set: with only CAP_BPF and CAP_PERFMON a
// root process still loads and attaches the program (what a retry does when
// kvm is loaded late) and reads and deletes map entries.
TEST_F(DropCapabilitiesTest, BpfAndPerfmonAreEnoughToAttachReadAndDelete) {
  if (!std::filesystem::exists("/sys/kernel/tracing/events/kvm/kvm_exit")) {
    GTEST_SKIP() << "no kvm:kvm_exit tracepoint on this kernel";
  }
  if (ReadFileText("/proc/sys/kernel/perf_event_paranoid").text.starts_with("3")) {
    GTEST_SKIP() << "perf_event_paranoid 3: perf_event_open also wants CAP_SYS_ADMIN here";
  }
  EXPECT_EQ(InChild([] {
              if (std::string error = DropCapabilities({CAP_BPF, CAP_PERFMON}); !error.empty()) {
                return error;
              }
              BpfExitSource source(BpfSourceOptions{.hook = KernelHook::kTracepoint});
              if (std::string error = source.Attach(); !error.empty()) return "attach: " + error;
              const vm_exit_key key{.tgid = 4242, .vcpu_id = 0, .isa = 2, .exit_reason = 123};
              if (std::string error = source.FillForTesting({{key, 7}}); !error.empty()) {
                return "fill: " + error;
              }
              ExitSnapshot snapshot;
              if (std::string error = source.Read(&snapshot); !error.empty()) {
                return "read: " + error;
              }
              if (snapshot.vm_counts.empty()) return std::string("read: no entries");
              if (source.Remove({key}).size() != 1) return std::string("remove failed");
              return CheckDroppedToBpfAndPerfmon();
            }),
            "");
}

}  // namespace
}  // namespace kvmexit
