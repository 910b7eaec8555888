// SPDX-License-Identifier: Apache-2.0
#include "model/drilldown_follower.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

namespace kvmexit {
namespace {

using namespace std::chrono_literals;
using Switch = DrilldownFollower::Switch;

constexpr std::uint32_t kIo = 0x7b;    // SVM io
constexpr std::uint32_t kNpf = 0x400;  // SVM npf
constexpr std::uint32_t kHlt = 0x78;   // SVM hlt

VmExitCount Count(std::uint32_t tgid, std::uint32_t reason, std::uint64_t count,
                  std::uint32_t vcpu = KVM_EXIT_ALL_VCPUS) {
  return {vm_exit_key{tgid, vcpu, KVM_EXIT_ISA_SVM, reason}, count};
}

// io follows io exits; userspace follows io and npf exits.
DrilldownFollower MakeFollower(std::chrono::milliseconds hold = 10s) {
  return DrilldownFollower({DrilldownTrigger{DrilldownKind::kIo, {{KVM_EXIT_ISA_SVM, kIo}}},
                            DrilldownTrigger{DrilldownKind::kUserspace,
                                             {{KVM_EXIT_ISA_SVM, kIo}, {KVM_EXIT_ISA_SVM, kNpf}}}},
                           /*threshold=*/500, hold);
}

std::vector<DrilldownKind> KindsOf(const std::vector<Switch>& switches, bool attach) {
  std::vector<DrilldownKind> kinds;
  for (const Switch& change : switches) {
    if (change.attach == attach) kinds.push_back(change.kind);
  }
  return kinds;
}

TEST(DrilldownFollower, AttachesAtTheFirstIntervalAVmIsOverTheThreshold) {
  DrilldownFollower follower = MakeFollower();
  const auto t0 = DrilldownFollower::Clock::time_point{} + 1h;
  // The first sample has nothing to compare with.
  EXPECT_TRUE(follower.Sample({Count(100, kIo, 1'000'000)}, t0).empty());
  // 400 io exits/s: calm.
  EXPECT_TRUE(follower.Sample({Count(100, kIo, 1'000'400)}, t0 + 1s).empty());
  // 600/s over one second, summed over the VM's vCPUs: a storm for io and userspace.
  const auto switches = follower.Sample(
      {Count(100, kIo, 1'000'700, 0), Count(100, kIo, 300, 1), Count(100, kHlt, 9'000'000)},
      t0 + 2s);
  EXPECT_EQ(KindsOf(switches, true),
            (std::vector<DrilldownKind>{DrilldownKind::kIo, DrilldownKind::kUserspace}));
  ASSERT_FALSE(switches.empty());
  EXPECT_DOUBLE_EQ(switches[0].rate, 600.0);
}

TEST(DrilldownFollower, ARateIsOneVmsNotTheHostsSum) {
  DrilldownFollower follower = MakeFollower();
  const auto t0 = DrilldownFollower::Clock::time_point{} + 1h;
  follower.Sample({Count(1, kIo, 0), Count(2, kIo, 0)}, t0);
  // 300/s each: 600/s on the host, but no VM over 500.
  EXPECT_TRUE(follower.Sample({Count(1, kIo, 300), Count(2, kIo, 300)}, t0 + 1s).empty());
}

TEST(DrilldownFollower, AReasonOfOneKindOnlyAttachesThatKind) {
  DrilldownFollower follower = MakeFollower();
  const auto t0 = DrilldownFollower::Clock::time_point{} + 1h;
  follower.Sample({Count(7, kNpf, 0)}, t0);
  EXPECT_EQ(KindsOf(follower.Sample({Count(7, kNpf, 5'000)}, t0 + 1s), true),
            (std::vector<DrilldownKind>{DrilldownKind::kUserspace}));
}

TEST(DrilldownFollower, DetachesOnlyAfterTheHoldBelowTheThreshold) {
  DrilldownFollower follower = MakeFollower(/*hold=*/10s);
  const auto t0 = DrilldownFollower::Clock::time_point{} + 1h;
  follower.Sample({Count(9, kIo, 0)}, t0);
  for (const Switch& change : follower.Sample({Count(9, kIo, 1'000)}, t0 + 1s)) {
    follower.Confirm(change.kind, change.attach, t0 + 1s);
  }
  EXPECT_TRUE(follower.attached(DrilldownKind::kIo));
  // Calm from t0 + 1 s on: nothing to do before the hold has passed...
  for (int second = 2; second <= 10; ++second) {
    EXPECT_TRUE(follower.Sample({Count(9, kIo, 1'000)}, t0 + std::chrono::seconds(second)).empty())
        << second;
  }
  // ...and a storm again in between restarts it.
  EXPECT_TRUE(follower.Sample({Count(9, kIo, 2'000)}, t0 + 11s).empty());
  EXPECT_TRUE(follower.Sample({Count(9, kIo, 2'000)}, t0 + 20s).empty());
  const auto switches = follower.Sample({Count(9, kIo, 2'000)}, t0 + 21s);
  EXPECT_EQ(KindsOf(switches, false),
            (std::vector<DrilldownKind>{DrilldownKind::kIo, DrilldownKind::kUserspace}));
  for (const Switch& change : switches) follower.Confirm(change.kind, change.attach, t0 + 21s);
  EXPECT_FALSE(follower.attached(DrilldownKind::kIo));
  EXPECT_TRUE(follower.Sample({Count(9, kIo, 2'000)}, t0 + 22s).empty());
}

TEST(DrilldownFollower, AFailedAttachIsTriedAgainAtTheNextSample) {
  DrilldownFollower follower = MakeFollower();
  const auto t0 = DrilldownFollower::Clock::time_point{} + 1h;
  follower.Sample({Count(9, kIo, 0)}, t0);
  ASSERT_FALSE(follower.Sample({Count(9, kIo, 1'000)}, t0 + 1s).empty());
  follower.Confirm(DrilldownKind::kIo, false, t0 + 1s);
  EXPECT_EQ(KindsOf(follower.Sample({Count(9, kIo, 2'000)}, t0 + 2s), true).front(),
            DrilldownKind::kIo);
}

TEST(DrilldownFollower, AKindAdoptedAttachedIsHeldThenDetached) {
  DrilldownFollower follower = MakeFollower(/*hold=*/5s);
  const auto t0 = DrilldownFollower::Clock::time_point{} + 1h;
  follower.Confirm(DrilldownKind::kIo, true, t0);
  follower.Sample({Count(9, kIo, 0)}, t0);
  EXPECT_TRUE(follower.Sample({Count(9, kIo, 10)}, t0 + 4s).empty());
  EXPECT_EQ(KindsOf(follower.Sample({Count(9, kIo, 20)}, t0 + 5s), false),
            (std::vector<DrilldownKind>{DrilldownKind::kIo}));
}

TEST(DrilldownFollower, AVmFirstSeenCountsFromZeroAndAReusedPidFromItsNewCounts) {
  DrilldownFollower follower = MakeFollower();
  const auto t0 = DrilldownFollower::Clock::time_point{} + 1h;
  follower.Sample({Count(9, kIo, 50'000)}, t0);
  // VM 10 appears with 800 exits in its first second.
  EXPECT_EQ(
      KindsOf(follower.Sample({Count(9, kIo, 50'000), Count(10, kIo, 800)}, t0 + 1s), true).size(),
      2U);
  // VM 9's counters taken back, its pid reused: 100 new exits are not a storm.
  DrilldownFollower again = MakeFollower();
  again.Sample({Count(9, kIo, 50'000)}, t0);
  EXPECT_TRUE(again.Sample({Count(9, kIo, 100)}, t0 + 1s).empty());
}

TEST(DrilldownFollower, WithoutTriggersItNeverSwitches) {
  DrilldownFollower follower;
  const auto t0 = DrilldownFollower::Clock::time_point{} + 1h;
  follower.Sample({Count(9, kIo, 0)}, t0);
  EXPECT_TRUE(follower.Sample({Count(9, kIo, 1'000'000)}, t0 + 1s).empty());
  EXPECT_FALSE(follower.follows(DrilldownKind::kIo));
}

}  // namespace
}  // namespace kvmexit
