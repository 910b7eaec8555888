// SPDX-License-Identifier: Apache-2.0
// vCPU time: the /proc task parsers, the split into modes, the monotonic
// accounts (new, ended and reused threads, reused pids) and the sampler over a
// fake /proc tree. The real kernel's figures: tests/integration/vcpu_time_test.
#include "model/vcpu_time.h"

#include <gtest/gtest.h>

#include "identity/process_info.h"
#include "render/exposition_writer.h"
#include "render/vcpu_time_metrics.h"
#include "source/task_times.h"
#include "temp_dir.h"

namespace kvmexit {
namespace {

using test_util::TempDir;
using test_util::WriteFile;

constexpr std::uint64_t kNsPerTick = 10'000'000;  // USER_HZ 100
constexpr std::uint64_t kSecond = 1'000'000'000;

// A task stat line (52 fields, as Linux 6.1 writes) with the given start time
// (field 22) and guest time (field 43) in ticks.
std::string TaskStat(std::uint32_t tid, std::uint64_t start_ticks, std::uint64_t guest_ticks,
                     std::string_view comm = "CPU 0/KVM") {
  std::string text = std::to_string(tid) + " (" + std::string(comm) + ") S";
  for (int field = 4; field <= 52; ++field) {
    text += ' ';
    text += field == 22   ? std::to_string(start_ticks)
            : field == 43 ? std::to_string(guest_ticks)
                          : std::string("0");
  }
  return text + "\n";
}

TaskTimes Reading(std::uint32_t tid, std::uint64_t start_ticks, std::uint64_t guest_ticks,
                  std::uint64_t on_cpu_ns, std::uint64_t wait_ns, std::uint64_t now_ns) {
  return TaskTimes{.tid = tid,
                   .stat = {.start_ticks = start_ticks, .guest_ticks = guest_ticks},
                   .sched = {.on_cpu_ns = on_cpu_ns, .wait_ns = wait_ns},
                   .read_at_boot_ns = now_ns};
}

std::uint64_t Sum(const VcpuModeNs& ns) { return ns[0] + ns[1] + ns[2] + ns[3]; }

TEST(ParseTaskStatTimesTest, ReadsStartAndGuestTime) {
  const auto times = ParseTaskStatTimes(TaskStat(42, 1234, 567, "a) (b"));
  ASSERT_TRUE(times);
  EXPECT_EQ(times->start_ticks, 1234u);
  EXPECT_EQ(times->guest_ticks, 567u);
}

TEST(ParseTaskStatTimesTest, RejectsShortOrMalformedText) {
  EXPECT_FALSE(ParseTaskStatTimes(""));
  EXPECT_FALSE(ParseTaskStatTimes("1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555"));
  std::string bad = TaskStat(1, 5, 777);
  bad.replace(bad.find(" 777 "), 5, " -7 ");
  EXPECT_FALSE(ParseTaskStatTimes(bad));
}

TEST(ParseSchedStatTest, ReadsOnCpuAndRunDelay) {
  const auto sched = ParseSchedStat("123456789 987654 321\n");
  ASSERT_TRUE(sched);
  EXPECT_EQ(sched->on_cpu_ns, 123456789u);
  EXPECT_EQ(sched->wait_ns, 987654u);
  EXPECT_FALSE(ParseSchedStat("12\n"));
  EXPECT_FALSE(ParseSchedStat("a b c\n"));
}

TEST(SplitModesTest, FourModesAddUpToTheWallTime) {
  // Started at 1 s after boot, read at 11 s: 10 s of wall time; 6 s on a CPU
  // of which 4 s in guest mode, 1 s waiting, so 3 s asleep.
  const VcpuModeNs ns =
      SplitModes(Reading(7, 100, 400, 6 * kSecond, 1 * kSecond, 11 * kSecond), kNsPerTick);
  EXPECT_EQ(ns[static_cast<std::size_t>(VcpuMode::kGuest)], 4 * kSecond);
  EXPECT_EQ(ns[static_cast<std::size_t>(VcpuMode::kHost)], 2 * kSecond);
  EXPECT_EQ(ns[static_cast<std::size_t>(VcpuMode::kWaiting)], 1 * kSecond);
  EXPECT_EQ(ns[static_cast<std::size_t>(VcpuMode::kSleeping)], 3 * kSecond);
  EXPECT_EQ(Sum(ns), 10 * kSecond);
}

TEST(SplitModesTest, TickSampledGuestTimeNeverExceedsTheOnCpuTime) {
  // 5 ticks of guest time sampled, but only 45 ms on a CPU (exact): guest is
  // cut to 45 ms, host 0, and the sum is still the wall time.
  const VcpuModeNs ns = SplitModes(Reading(7, 0, 5, 45'000'000, 0, kSecond), kNsPerTick);
  EXPECT_EQ(ns[0], 45'000'000u);
  EXPECT_EQ(ns[1], 0u);
  EXPECT_EQ(Sum(ns), kSecond);
}

TEST(SplitModesTest, SleepingIsNeverNegative) {
  // The start time has tick resolution: a thread read in its first tick.
  const VcpuModeNs ns = SplitModes(Reading(7, 100, 1, 20'000'000, 0, kSecond + 1), kNsPerTick);
  EXPECT_EQ(ns[static_cast<std::size_t>(VcpuMode::kSleeping)], 0u);
}

TEST(VcpuTimeAccountsTest, CountsOnlyThreadsThatHaveRunInGuestMode) {
  VcpuTimeAccounts accounts;
  const VcpuTimeProcess vm{.tgid = 100, .start_ticks = 50};
  accounts.Update(vm,
                  {Reading(100, 50, 0, 3 * kSecond, 0, 10 * kSecond),  // the main thread
                   Reading(101, 60, 200, 3 * kSecond, kSecond, 10 * kSecond)},
                  kNsPerTick);
  const auto view = accounts.View();
  ASSERT_EQ(view.count(100), 1u);
  ASSERT_EQ(view.at(100).threads.size(), 1u);
  EXPECT_EQ(view.at(100).threads[0].tid, 101u);
  EXPECT_EQ(Sum(view.at(100).total), 10 * kSecond - 60 * kNsPerTick);
}

TEST(VcpuTimeAccountsTest, CountersNeverGoBackAndCatchUpExactly) {
  VcpuTimeAccounts accounts;
  const VcpuTimeProcess vm{.tgid = 100, .start_ticks = 0};
  // Guest time sampled a tick ahead: host reads 0 ...
  accounts.Update(vm, {Reading(101, 0, 10, 95'000'000, 0, kSecond)}, kNsPerTick);
  EXPECT_EQ(accounts.View().at(100).total[1], 0u);
  // ... then host would step back (guest 2 ticks more, on-CPU 10 ms more): it holds.
  accounts.Update(vm, {Reading(101, 0, 12, 105'000'000, 0, 2 * kSecond)}, kNsPerTick);
  EXPECT_EQ(accounts.View().at(100).total[1], 0u);
  EXPECT_EQ(accounts.View().at(100).total[0], 105'000'000u);
  // ... and is exact again once the reading passes it.
  accounts.Update(vm, {Reading(101, 0, 12, 150'000'000, 0, 3 * kSecond)}, kNsPerTick);
  EXPECT_EQ(accounts.View().at(100).total[1], 30'000'000u);
  EXPECT_EQ(Sum(accounts.View().at(100).total), 3 * kSecond);
}

TEST(VcpuTimeAccountsTest, AnEndedThreadKeepsItsLastReading) {
  VcpuTimeAccounts accounts;
  const VcpuTimeProcess vm{.tgid = 100, .start_ticks = 0};
  accounts.Update(vm,
                  {Reading(101, 0, 100, 2 * kSecond, 0, 5 * kSecond),
                   Reading(102, 0, 100, 2 * kSecond, 0, 5 * kSecond)},
                  kNsPerTick);
  accounts.Update(vm, {Reading(101, 0, 200, 3 * kSecond, 0, 9 * kSecond)}, kNsPerTick);
  const auto view = accounts.View().at(100);
  ASSERT_EQ(view.threads.size(), 2u);
  EXPECT_EQ(Sum(view.threads[1].ns), 5 * kSecond);  // tid 102, frozen at its end
  EXPECT_EQ(Sum(view.total), 14 * kSecond);
}

TEST(VcpuTimeAccountsTest, AReusedTidStartsAThreadAndKeepsTheOldOnesTime) {
  VcpuTimeAccounts accounts;
  const VcpuTimeProcess vm{.tgid = 100, .start_ticks = 0};
  accounts.Update(vm, {Reading(101, 0, 100, 2 * kSecond, 0, 5 * kSecond)}, kNsPerTick);
  accounts.Update(vm, {Reading(101, 800, 10, kSecond, 0, 10 * kSecond)}, kNsPerTick);
  const auto view = accounts.View().at(100);
  EXPECT_EQ(Sum(view.threads[0].ns), 2 * kSecond);
  EXPECT_EQ(Sum(view.total), 7 * kSecond);
}

TEST(VcpuTimeAccountsTest, KeepDropsUnlistedVmsAndReusedPids) {
  VcpuTimeAccounts accounts;
  accounts.Update({.tgid = 100, .start_ticks = 5}, {Reading(101, 5, 1, kSecond, 0, kSecond)},
                  kNsPerTick);
  accounts.Update({.tgid = 200, .start_ticks = 5}, {Reading(201, 5, 1, kSecond, 0, kSecond)},
                  kNsPerTick);
  accounts.Keep({{.tgid = 100, .start_ticks = 6}, {.tgid = 300, .start_ticks = 1}});
  EXPECT_TRUE(accounts.View().empty());
}

class VcpuTimeSamplerTest : public ::testing::Test {
 protected:
  void Task(std::uint32_t tgid, std::uint32_t tid, std::uint64_t start, std::uint64_t guest,
            std::string_view schedstat) {
    const auto dir = proc_.path() / std::to_string(tgid) / "task" / std::to_string(tid);
    WriteFile(dir / "stat", TaskStat(tid, start, guest));
    WriteFile(dir / "schedstat", schedstat);
  }
  TempDir proc_;
};

TEST_F(VcpuTimeSamplerTest, ReadsVcpuThreadsAndKeepsEndedVms) {
  const std::uint64_t ticks = static_cast<std::uint64_t>(ClockTicksPerSecond());
  Task(100, 100, 1, 0, "1000 0 1\n");                        // the VMM's main thread
  Task(100, 101, 1, 2 * ticks, "3000000000 500000000 9\n");  // a vCPU: 2 s guest
  Task(200, 200, 7, 0, "1 0 1\n");
  VcpuTimeSampler sampler(proc_.path().string());
  sampler.Sample({{.tgid = 100, .start_ticks = 1}, {.tgid = 200, .start_ticks = 7}});
  auto view = sampler.View();
  ASSERT_EQ(view.count(100), 1u);
  const VcpuModeNs& ns = view.at(100).total;
  EXPECT_EQ(ns[0], 2 * kSecond);
  EXPECT_EQ(ns[1], kSecond);
  EXPECT_EQ(ns[2], kSecond / 2);
  EXPECT_EQ(view.at(200).threads.size(), 0u);  // no vCPU thread yet: an empty account

  // The process has gone: its account stays while it is listed as ended ...
  std::filesystem::remove_all(proc_.path() / "100");
  sampler.Sample({{.tgid = 100, .start_ticks = 1, .ended = true}});
  ASSERT_EQ(sampler.View().count(100), 1u);
  EXPECT_EQ(sampler.View().at(100).total[0], 2 * kSecond);
  // ... and goes with it.
  sampler.Sample({});
  EXPECT_TRUE(sampler.View().empty());
}

TEST_F(VcpuTimeSamplerTest, AReusedPidIsNotRead) {
  Task(100, 100, 99, 5, "1000000000 0 1\n");  // started at 99, the VM at 1
  VcpuTimeSampler sampler(proc_.path().string());
  sampler.Sample({{.tgid = 100, .start_ticks = 1}});
  EXPECT_TRUE(sampler.View().empty());
}

TEST(WriteVcpuTimeFamiliesTest, WritesFourModesPerVmAndPerThread) {
  VmView view;
  VmProcess process;
  view.vms.push_back({.vm = "alpha", .pid = "100", .process = &process});
  view.vms.push_back({.vm = "other", .pid = ""});
  std::map<std::uint32_t, VcpuTimeVm> accounts;
  accounts[100] = {.total = {kSecond, 2 * kSecond, kSecond / 4, 0},
                   .threads = {{.tid = 101, .ns = {kSecond, 2 * kSecond, kSecond / 4, 0}}}};
  ExpositionWriter out;
  WriteVcpuTimeFamilies(view, accounts, /*per_vcpu=*/true, out);
  const std::string& text = out.text();
  EXPECT_NE(text.find("kvm_vm_vcpu_seconds_total{vm=\"alpha\",pid=\"100\",mode=\"guest\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("kvm_vm_vcpu_seconds_total{vm=\"alpha\",pid=\"100\",mode=\"waiting\"} 0.25"),
            std::string::npos);
  EXPECT_NE(text.find("kvm_vm_vcpu_seconds_total{vm=\"alpha\",pid=\"100\",mode=\"sleeping\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("kvm_vcpu_thread_seconds_total{vm=\"alpha\",pid=\"100\",tid=\"101\","
                      "mode=\"host\"} 2\n"),
            std::string::npos);
  EXPECT_EQ(text.find("vm=\"other\""), std::string::npos);

  ExpositionWriter per_vm_only;
  WriteVcpuTimeFamilies(view, accounts, /*per_vcpu=*/false, per_vm_only);
  EXPECT_EQ(per_vm_only.text().find("kvm_vcpu_thread_seconds_total"), std::string::npos);
}

}  // namespace
}  // namespace kvmexit
