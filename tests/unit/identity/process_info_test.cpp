// SPDX-License-Identifier: Apache-2.0
// Process reading: /proc/PID/stat and /proc/PID/cgroup parsing, and a fake
// /proc tree for missing and zombie processes. Real processes are read in
// vm_identity_test (RealProcessTest).
#include "identity/process_info.h"

#include <sstream>

#include <gtest/gtest.h>

#include "temp_dir.h"

namespace kvmexit {
namespace {

namespace fs = std::filesystem;
using test_util::TempDir;
using test_util::WriteFile;

// /proc/PID/cmdline contents: each argument NUL-terminated.
std::string Cmdline(const std::vector<std::string>& argv) {
  std::string text;
  for (const auto& arg : argv) text.append(arg).push_back('\0');
  return text;
}

// ---------------------------------------------------------------------------
// /proc/PID/stat and /proc/PID/cgroup parsing

TEST(ParseProcStatTest, ReadsStateThreadsAndStartTime) {
  const auto stat = ParseProcStat(
      "1234 (qemu-system-x86) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 7 0 "
      "987654 1000000 200 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 3 0 0 0 0 0\n");
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->comm, "qemu-system-x86");
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->num_threads, 7);
  EXPECT_EQ(stat->start_ticks, 987654u);
}

TEST(ParseProcStatTest, CommMayContainSpacesAndParentheses) {
  const auto stat =
      ParseProcStat("77 (a) (b) c) R 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0");
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->comm, "a) (b) c");
  EXPECT_EQ(stat->state, 'R');
  EXPECT_EQ(stat->start_ticks, 555u);
}

TEST(ParseProcStatTest, RejectsMalformedText) {
  EXPECT_FALSE(ParseProcStat(""));
  EXPECT_FALSE(ParseProcStat("1 (x S 1 2 3"));
  EXPECT_FALSE(ParseProcStat("1 (x) S 1 2 3"));
  EXPECT_FALSE(ParseProcStat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 notanumber"));
}

TEST(SelectCgroupPathTest, PrefersTheUnifiedHierarchy) {
  EXPECT_EQ(SelectCgroupPath("0::/machine.slice/machine-qemu\\x2d1\\x2dvm.scope/libvirt\n"),
            "/machine.slice/machine-qemu\\x2d1\\x2dvm.scope/libvirt");
  EXPECT_EQ(SelectCgroupPath("12:memory:/other\n1:name=systemd:/sys\n0::/unified\n"), "/unified");
}

TEST(SelectCgroupPathTest, FallsBackToNameSystemdThenOtherV1Lines) {
  EXPECT_EQ(SelectCgroupPath("4:memory:/mem\n9:name=systemd:/qemu.slice/100.scope\n0::/\n"),
            "/qemu.slice/100.scope");
  EXPECT_EQ(SelectCgroupPath("4:cpu,cpuacct:/kubepods/pod1/c\n3:memory:/kubepods/pod1/c\n"),
            "/kubepods/pod1/c");
  EXPECT_EQ(SelectCgroupPath("0::/\n"), "/");
  EXPECT_EQ(SelectCgroupPath(""), "");
}

TEST(SelectCgroupPathTest, KeepsColonsInsideThePath) {
  EXPECT_EQ(SelectCgroupPath("0::/a:b/c\n"), "/a:b/c");
}

// ---------------------------------------------------------------------------
// A fake /proc tree

class FakeProcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(proc() / "stat", "cpu  1 2 3\nintr 1 2 3\nbtime 1700000000\n");
  }

  fs::path proc() const { return root_.path() / "proc"; }

  void WriteProcess(std::uint32_t pid, std::uint64_t start_ticks, std::string_view cmdline,
                    char state = 'S', std::string_view comm = "qemu-system-x86") {
    const auto dir = proc() / std::to_string(pid);
    std::ostringstream stat;
    stat << pid << " (" << comm << ") " << state << " 1 " << pid << " " << pid
         << " 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 " << start_ticks << " 1000 10\n";
    WriteFile(dir / "stat", stat.str());
    WriteFile(dir / "cmdline", cmdline);
    WriteFile(dir / "cgroup", "0::/machine.slice/machine-qemu\\x2d1\\x2dscoped.scope\n");
  }

  TempDir root_;
};

TEST_F(FakeProcTest, ReadsProcessInfo) {
  WriteProcess(321, 4500, Cmdline({"qemu-system-x86_64", "", "-name", "guest=vm-a"}));
  const auto info = ReadProcessInfo(proc().string(), 321);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->pid, 321u);
  EXPECT_EQ(info->comm, "qemu-system-x86");
  EXPECT_EQ(info->argv,
            (std::vector<std::string>{"qemu-system-x86_64", "", "-name", "guest=vm-a"}));
  EXPECT_EQ(info->cgroup, "/machine.slice/machine-qemu\\x2d1\\x2dscoped.scope");
  EXPECT_EQ(info->start_ticks, 4500u);
  EXPECT_EQ(ReadStartTicks(proc().string(), 321), 4500u);
}

TEST_F(FakeProcTest, MissingAndZombieProcessesAreGone) {
  EXPECT_FALSE(ReadProcessInfo(proc().string(), 999));
  WriteProcess(322, 4600, "", 'Z');
  EXPECT_FALSE(ReadProcessInfo(proc().string(), 322));
  EXPECT_FALSE(ReadStartTicks(proc().string(), 322));
}

TEST(ClockTicksPerSecondTest, IsPositive) { EXPECT_GT(ClockTicksPerSecond(), 0); }

}  // namespace
}  // namespace kvmexit
