// SPDX-License-Identifier: Apache-2.0
#include "model/vm_tracker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <stdexcept>
#include <vector>

namespace kvmexit {
namespace {

using namespace std::chrono_literals;
using WallClock = VmTracker::WallClock;

// Pids above the kernel's pid_max, so pidfd_open fails and the tracker falls
// back to the start-ticks reader these tests control.
constexpr std::uint32_t kPidA = 5'000'001;
constexpr std::uint32_t kPidB = 5'000'002;
constexpr std::uint32_t kPidC = 5'000'003;
constexpr ReasonKey kIo{KVM_EXIT_ISA_SVM, 0x7b};
constexpr ReasonKey kHlt{KVM_EXIT_ISA_SVM, 0x78};

class FakeProcesses {
 public:
  void Start(std::uint32_t pid, std::string name, std::uint64_t ticks, double start_time) {
    live_[pid] = VmProcess{.identity = {.name = std::move(name), .uuid = "", .platform = "qemu"},
                           .start_ticks = ticks,
                           .start_time_seconds = start_time};
  }
  void End(std::uint32_t pid) { live_.erase(pid); }

  ProcessResolver Resolver() {
    return [this](std::uint32_t pid) -> std::optional<VmProcess> {
      ++resolutions;
      auto it = live_.find(pid);
      if (it == live_.end()) return std::nullopt;
      return it->second;
    };
  }
  StartTicksReader Ticks() {
    return [this](std::uint32_t pid) -> std::optional<std::uint64_t> {
      auto it = live_.find(pid);
      if (it == live_.end()) return std::nullopt;
      return it->second.start_ticks;
    };
  }
  int resolutions = 0;

 private:
  std::map<std::uint32_t, VmProcess> live_;
};

VmExitCount Entry(std::uint32_t tgid, ReasonKey reason, std::uint64_t count,
                  std::uint32_t vcpu = KVM_EXIT_ALL_VCPUS) {
  return {vm_exit_key{tgid, vcpu, reason.isa, reason.code}, count};
}

double Seconds(WallClock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

class VmTrackerTest : public ::testing::Test {
 protected:
  // Every closed boot window's total lands in closed_boots_.
  VmTracker MakeTracker(VmTrackerOptions options = {}) {
    options.on_boot_window_closed = [this](std::uint64_t exits) { closed_boots_.push_back(exits); };
    return VmTracker(options, processes_.Resolver(), processes_.Ticks());
  }
  FakeProcesses processes_;
  std::vector<std::uint64_t> closed_boots_;
  WallClock::time_point attach_ = WallClock::time_point{} + 1'000'000s;
};

TEST_F(VmTrackerTest, HostTotalsAddLiveEntriesAndOverflow) {
  processes_.Start(kPidA, "alpha", 1, Seconds(attach_) + 1);
  VmTracker tracker = MakeTracker();
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 100), Entry(kPidA, kHlt, 1)};
  snapshot.overflow = {{kIo, 7}};
  tracker.Observe(snapshot, attach_ + 2s, attach_);
  const VmView view = tracker.View(snapshot);
  EXPECT_EQ(view.host_totals.at(kIo), 107u);
  EXPECT_EQ(view.host_totals.at(kHlt), 1u);
  ASSERT_EQ(view.vms.size(), 1u);
  EXPECT_EQ(view.vms[0].vm, "alpha");
  EXPECT_EQ(view.vms[0].pid, std::to_string(kPidA));
  EXPECT_EQ(view.vms[0].counts.at(kIo), 100u);
}

// The vCPU time sampler reads the VMs that get their own series: the first
// max_vms seen, ended ones marked so that their accounts are kept unread.
TEST_F(VmTrackerTest, OwnSeriesProcessesAreTheFirstMaxVmsWithTheirEnd) {
  processes_.Start(kPidA, "alpha", 11, 0);
  processes_.Start(kPidB, "beta", 22, 0);
  processes_.Start(kPidC, "gamma", 33, 0);
  VmTracker tracker = MakeTracker({.max_vms = 2, .grace_period = 60s});
  ExitSnapshot first;
  first.vm_counts = {Entry(kPidC, kIo, 1), Entry(kPidB, kIo, 1)};
  tracker.Observe(first, attach_ + 1s, attach_);
  ExitSnapshot all;
  all.vm_counts = {Entry(kPidA, kIo, 1), Entry(kPidB, kIo, 1), Entry(kPidC, kIo, 1)};
  tracker.Observe(all, attach_ + 2s, attach_);
  processes_.End(kPidB);
  tracker.Observe(all, attach_ + 3s, attach_);

  const std::vector<VcpuTimeProcess> processes = tracker.OwnSeriesProcesses();
  ASSERT_EQ(processes.size(), 2u);  // alpha came third: folded, not read
  EXPECT_EQ(processes[0].tgid, kPidB);
  EXPECT_EQ(processes[0].start_ticks, 22u);
  EXPECT_TRUE(processes[0].ended);
  EXPECT_EQ(processes[1].tgid, kPidC);
  EXPECT_EQ(processes[1].start_ticks, 33u);
  EXPECT_FALSE(processes[1].ended);
}

TEST_F(VmTrackerTest, ResolvesEachProcessOnce) {
  processes_.Start(kPidA, "alpha", 1, 0);
  VmTracker tracker = MakeTracker();
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 1)};
  for (int i = 0; i < 5; ++i) tracker.Observe(snapshot, attach_ + 1s * i, attach_);
  EXPECT_EQ(processes_.resolutions, 1);
}

TEST_F(VmTrackerTest, EndedVmIsKeptForGraceThenRetiredWithoutMovingHostTotals) {
  processes_.Start(kPidA, "alpha", 1, 0);
  processes_.Start(kPidB, "beta", 2, 0);
  VmTracker tracker = MakeTracker({.grace_period = 60s});
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 100), Entry(kPidB, kIo, 50), Entry(kPidB, kHlt, 1)};
  tracker.Observe(snapshot, attach_ + 1s, attach_);
  const ReasonCounts before = tracker.View(snapshot).host_totals;

  processes_.End(kPidB);
  tracker.Observe(snapshot, attach_ + 2s, attach_);
  EXPECT_TRUE(tracker.ExpiredKeys(snapshot, attach_ + 30s).empty());
  EXPECT_EQ(tracker.View(snapshot).vms.size(), 2u);  // still shown during the grace period

  const std::vector<vm_exit_key> expired = tracker.ExpiredKeys(snapshot, attach_ + 63s);
  ASSERT_EQ(expired.size(), 2u);
  for (const vm_exit_key& key : expired) EXPECT_EQ(key.tgid, kPidB);
  // The source keeps the removed counts in its retired counts.
  ExitSnapshot after;
  after.vm_counts = {Entry(kPidA, kIo, 100)};
  after.retired = {{kIo, 50}, {kHlt, 1}};
  const VmView view = tracker.View(after);
  EXPECT_EQ(view.host_totals, before);
  ASSERT_EQ(view.vms.size(), 1u);
  EXPECT_EQ(view.vms[0].vm, "alpha");
  EXPECT_EQ(view.tracked_vms, 1u);
}

TEST_F(VmTrackerTest, ReusedPidIsANewVmAndRetiresTheOldOneAtOnce) {
  processes_.Start(kPidA, "old", 1, 0);
  VmTracker tracker = MakeTracker({.grace_period = 3600s});
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 10)};
  tracker.Observe(snapshot, attach_ + 1s, attach_);
  processes_.End(kPidA);
  processes_.Start(kPidA, "new", 999, 0);
  tracker.Observe(snapshot, attach_ + 2s, attach_);
  EXPECT_EQ(tracker.ExpiredKeys(snapshot, attach_ + 2s).size(), 1u);
  ExitSnapshot fresh;
  fresh.vm_counts = {Entry(kPidA, kIo, 3)};
  fresh.retired = {{kIo, 10}};
  tracker.Observe(fresh, attach_ + 3s, attach_);
  const VmView view = tracker.View(fresh);
  ASSERT_EQ(view.vms.size(), 1u);
  EXPECT_EQ(view.vms[0].vm, "new");
  EXPECT_EQ(view.vms[0].counts.at(kIo), 3u);
  EXPECT_EQ(view.host_totals.at(kIo), 13u);
}

TEST_F(VmTrackerTest, VmsBeyondMaxAreFoldedIntoOther) {
  processes_.Start(kPidA, "alpha", 1, 0);
  processes_.Start(kPidB, "beta", 2, 0);
  processes_.Start(kPidC, "gamma", 3, 0);
  VmTracker tracker = MakeTracker({.max_vms = 1});
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 1)};
  tracker.Observe(snapshot, attach_ + 1s, attach_);  // alpha is seen first
  snapshot.vm_counts = {Entry(kPidC, kIo, 30), Entry(kPidA, kIo, 1), Entry(kPidB, kIo, 20)};
  tracker.Observe(snapshot, attach_ + 2s, attach_);
  const VmView view = tracker.View(snapshot);
  ASSERT_EQ(view.vms.size(), 2u);
  EXPECT_EQ(view.vms[0].vm, "alpha");
  EXPECT_EQ(view.vms[1].vm, "other");
  EXPECT_EQ(view.vms[1].pid, "");
  EXPECT_EQ(view.vms[1].counts.at(kIo), 50u);
  EXPECT_EQ(view.folded_vms, 2u);
}

TEST_F(VmTrackerTest, PerVcpuCountsAreGroupedUnderTheirVm) {
  processes_.Start(kPidA, "alpha", 1, 0);
  VmTracker tracker = MakeTracker();
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 10, 0), Entry(kPidA, kIo, 20, 1),
                        Entry(kPidA, kHlt, 1, 1)};
  tracker.Observe(snapshot, attach_ + 1s, attach_);
  const VmView view = tracker.View(snapshot);
  ASSERT_EQ(view.vms.size(), 1u);
  EXPECT_EQ(view.vms[0].counts.at(kIo), 30u);
  EXPECT_EQ(view.vms[0].per_vcpu.at({0, kIo}), 10u);
  EXPECT_EQ(view.vms[0].per_vcpu.at({1, kIo}), 20u);
  EXPECT_EQ(view.vms[0].per_vcpu.at({1, kHlt}), 1u);
}

TEST_F(VmTrackerTest, BootWindowGrowsThenFreezesAndIsReportedOnce) {
  const double start = Seconds(attach_) + 10;
  processes_.Start(kPidA, "alpha", 1, start);
  VmTracker tracker = MakeTracker({.boot_window = 60s});
  const auto at = [&](double seconds_after_start) {
    return attach_ + 10s +
           std::chrono::duration_cast<WallClock::duration>(
               std::chrono::duration<double>(seconds_after_start));
  };
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 4000)};
  tracker.Observe(snapshot, at(5), attach_);
  snapshot.vm_counts = {Entry(kPidA, kIo, 9000), Entry(kPidA, kHlt, 1)};
  tracker.Observe(snapshot, at(59), attach_);
  VmView view = tracker.View(snapshot);
  ASSERT_EQ(view.boots.size(), 1u);
  EXPECT_FALSE(view.boots[0].closed);
  EXPECT_EQ(view.boots[0].counts.at(kIo), 9000u);
  EXPECT_TRUE(closed_boots_.empty());

  snapshot.vm_counts = {Entry(kPidA, kIo, 50'000), Entry(kPidA, kHlt, 1)};
  tracker.Observe(snapshot, at(61), attach_);
  tracker.Observe(snapshot, at(62), attach_);
  view = tracker.View(snapshot);
  EXPECT_TRUE(view.boots[0].closed);
  EXPECT_EQ(view.boots[0].counts.at(kIo), 9000u);  // frozen at the last in-window sample
  EXPECT_THAT(closed_boots_, ::testing::ElementsAre(9001u));
  tracker.Observe(snapshot, at(70), attach_);
  EXPECT_THAT(closed_boots_, ::testing::ElementsAre(9001u));  // once, not at every sample
}

// Seen in the nested suite: a VM that ended inside its window had its boot
// figure frozen at the sample before its end, missing its last exits.
TEST_F(VmTrackerTest, VmEndingInsideItsBootWindowKeepsEveryExit) {
  const double start = Seconds(attach_) + 10;
  processes_.Start(kPidA, "alpha", 1, start);
  VmTracker tracker = MakeTracker({.grace_period = 60s, .boot_window = 60s});
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 4000)};
  tracker.Observe(snapshot, attach_ + 11s, attach_);  // seen mid-burst
  // The burst ends, the guest halts and the VMM exits between two samples.
  snapshot.vm_counts = {Entry(kPidA, kIo, 9000), Entry(kPidA, kHlt, 1)};
  processes_.End(kPidA);
  tracker.Observe(snapshot, attach_ + 12s, attach_);  // the end is noticed
  tracker.Observe(snapshot, attach_ + 13s, attach_);  // read after the end: final
  const VmView view = tracker.View(snapshot);
  ASSERT_EQ(view.boots.size(), 1u);
  EXPECT_TRUE(view.boots[0].closed);
  EXPECT_EQ(view.boots[0].counts.at(kIo), 9000u);
  EXPECT_EQ(view.boots[0].counts.at(kHlt), 1u);
  EXPECT_THAT(closed_boots_, ::testing::ElementsAre(9001u));
}

// With no grace period the VM is removed when its end is noticed: its window
// closes then, with the counts of that last snapshot, and is observed once.
TEST_F(VmTrackerTest, VmRemovedAtOnceStillClosesItsBootWindow) {
  processes_.Start(kPidA, "alpha", 1, Seconds(attach_) + 10);
  VmTracker tracker = MakeTracker({.grace_period = 0s, .boot_window = 60s});
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 4000)};
  tracker.Observe(snapshot, attach_ + 11s, attach_);
  snapshot.vm_counts = {Entry(kPidA, kIo, 9000), Entry(kPidA, kHlt, 1)};
  processes_.End(kPidA);
  tracker.Observe(snapshot, attach_ + 12s, attach_);
  EXPECT_EQ(tracker.ExpiredKeys(snapshot, attach_ + 12s).size(), 2u);
  EXPECT_THAT(closed_boots_, ::testing::ElementsAre(9001u));
}

TEST_F(VmTrackerTest, VmStartedBeforeAttachHasNoBootWindow) {
  processes_.Start(kPidA, "alpha", 1, Seconds(attach_) - 5);
  VmTracker tracker = MakeTracker();
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 10)};
  tracker.Observe(snapshot, attach_ + 1s, attach_);
  EXPECT_TRUE(tracker.View(snapshot).boots.empty());
}

// A restarted exporter that adopted the pinned counts first sees a VM that
// started while it was down: counting ran from the VM's start, so its window
// is known while it is still open, and unknown (no figure, not 0) once its
// end passed unobserved.
TEST_F(VmTrackerTest, VmFirstSeenInsideItsWindowHasItsBootFigure) {
  processes_.Start(kPidA, "alpha", 1, Seconds(attach_) + 100);
  VmTracker tracker = MakeTracker({.boot_window = 60s});
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 700)};
  tracker.Observe(snapshot, attach_ + 150s, attach_);
  const VmView view = tracker.View(snapshot);
  ASSERT_EQ(view.boots.size(), 1u);
  EXPECT_EQ(view.boots[0].counts.at(kIo), 700u);
}

TEST_F(VmTrackerTest, VmFirstSeenAfterItsWindowHasNoBootFigure) {
  processes_.Start(kPidA, "alpha", 1, Seconds(attach_) + 100);
  VmTracker tracker = MakeTracker({.boot_window = 60s});
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 700)};
  tracker.Observe(snapshot, attach_ + 161s, attach_);
  tracker.Observe(snapshot, attach_ + 162s, attach_);
  EXPECT_TRUE(tracker.View(snapshot).boots.empty());
  EXPECT_TRUE(closed_boots_.empty());
}

TEST(SnapshotByVmTest, HostTotalsIncludeRetiredCounts) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {{{7, 0xffffffffU, 2, 0x7b}, 5}};
  snapshot.overflow = {{{2, 0x7b}, 3}};
  snapshot.retired = {{{2, 0x7b}, 100}, {{2, 0x78}, 1}};
  const SnapshotByVm by_vm(snapshot);
  EXPECT_EQ(by_vm.totals.at({2, 0x7b}), 108u);
  EXPECT_EQ(by_vm.totals.at({2, 0x78}), 1u);
}

TEST(SnapshotByVmTest, GroupsEntriesByVmWithReasonsInOrder) {
  ExitSnapshot snapshot;
  // In the BPF hash's arbitrary order, as a map read returns them.
  snapshot.vm_counts = {Entry(kPidB, kIo, 5, 1), Entry(kPidA, kIo, 10, 0), Entry(kPidB, kHlt, 2, 0),
                        Entry(kPidA, kHlt, 1, 0), Entry(kPidB, kIo, 4, 0)};
  snapshot.overflow = {{kIo, 100}};
  const SnapshotByVm by_vm(snapshot);
  ASSERT_EQ(by_vm.vms.size(), 2u);
  EXPECT_EQ(by_vm.vms[0].tgid, kPidA);
  EXPECT_EQ(by_vm.vms[1].tgid, kPidB);
  // kHlt (0x78) sorts before kIo (0x7b); vCPUs are summed per reason.
  std::vector<ReasonKey> reasons;
  for (const auto& [reason, count] : by_vm.vms[1].counts) reasons.push_back(reason);
  EXPECT_EQ(reasons, (std::vector<ReasonKey>{kHlt, kIo}));
  EXPECT_EQ(by_vm.vms[1].counts.at(kIo), 9u);
  EXPECT_EQ(by_vm.vms[1].counts.at(kHlt), 2u);
  std::vector<VcpuReason> vcpu_keys;
  for (const auto& [key, count] : by_vm.vms[1].per_vcpu) vcpu_keys.push_back(key);
  EXPECT_EQ(vcpu_keys, (std::vector<VcpuReason>{{0, kHlt}, {0, kIo}, {1, kIo}}));
  EXPECT_EQ(by_vm.totals, (ReasonCounts{{kHlt, 3}, {kIo, 119}}));
}

TEST(SnapshotByVmTest, EntriesWithoutVcpuStayOutOfThePerVcpuCounts) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 10), Entry(kPidA, kHlt, 1)};
  const SnapshotByVm by_vm(snapshot);
  ASSERT_EQ(by_vm.vms.size(), 1u);
  EXPECT_TRUE(by_vm.vms[0].per_vcpu.empty());
  EXPECT_EQ(by_vm.vms[0].counts.Total(), 11u);
}

TEST(SortedCountsTest, AddMergesAndSumsSharedKeys) {
  SortedReasonCounts a;
  a.Append(kHlt, 1);
  a.Append(kIo, 2);
  a.Append(kIo, 3);  // an equal key appended again is summed
  SortedReasonCounts b;
  b.Append({KVM_EXIT_ISA_SVM, 0x72}, 7);
  b.Append(kIo, 10);
  a.Add(b);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a.at({KVM_EXIT_ISA_SVM, 0x72}), 7u);
  EXPECT_EQ(a.at(kHlt), 1u);
  EXPECT_EQ(a.at(kIo), 15u);
  EXPECT_EQ(a.Total(), 23u);
  EXPECT_THROW(a.at({KVM_EXIT_ISA_VMX, 12}), std::out_of_range);
}

TEST_F(VmTrackerTest, VmsEndingTogetherAreRetiredInOnePass) {
  processes_.Start(kPidA, "alpha", 1, 0);
  processes_.Start(kPidB, "beta", 2, 0);
  processes_.Start(kPidC, "gamma", 3, 0);
  VmTracker tracker = MakeTracker({.grace_period = 10s});
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 1), Entry(kPidB, kIo, 2), Entry(kPidC, kIo, 3),
                        Entry(kPidC, kHlt, 4), Entry(kPidA, kHlt, 5)};
  tracker.Observe(snapshot, attach_ + 1s, attach_);
  processes_.End(kPidA);
  processes_.End(kPidC);
  tracker.Observe(snapshot, attach_ + 2s, attach_);
  const std::vector<vm_exit_key> expired = tracker.ExpiredKeys(snapshot, attach_ + 20s);
  std::multiset<std::uint32_t> tgids;
  for (const vm_exit_key& key : expired) tgids.insert(key.tgid);
  EXPECT_EQ(tgids, (std::multiset<std::uint32_t>{kPidA, kPidA, kPidC, kPidC}));
  EXPECT_EQ(tracker.View(snapshot).tracked_vms, 1u);
}

TEST_F(VmTrackerTest, FoldedVmsAddTheirPerVcpuCountsToOther) {
  processes_.Start(kPidA, "alpha", 1, 0);
  processes_.Start(kPidB, "beta", 2, 0);
  processes_.Start(kPidC, "gamma", 3, 0);
  VmTracker tracker = MakeTracker({.max_vms = 1});
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 1, 0), Entry(kPidB, kIo, 20, 0), Entry(kPidB, kHlt, 2, 1),
                        Entry(kPidC, kIo, 30, 0), Entry(kPidC, kIo, 3, 1)};
  tracker.Observe(snapshot, attach_ + 1s, attach_);
  const VmView view = tracker.View(snapshot);
  ASSERT_EQ(view.vms.size(), 2u);
  EXPECT_EQ(view.vms[0].vm, "alpha");
  const VmSeries& other = view.vms[1];
  EXPECT_EQ(other.vm, "other");
  EXPECT_EQ(other.process, nullptr);
  EXPECT_EQ(other.counts.at(kIo), 53u);
  EXPECT_EQ(other.counts.at(kHlt), 2u);
  EXPECT_EQ(other.per_vcpu.at({0, kIo}), 50u);
  EXPECT_EQ(other.per_vcpu.at({1, kIo}), 3u);
  EXPECT_EQ(other.per_vcpu.at({1, kHlt}), 2u);
  EXPECT_EQ(other.per_vcpu.size(), 3u);
}

TEST_F(VmTrackerTest, ReidentifyRenamesRunningVmsButNotEndedOrReusedOnes) {
  processes_.Start(kPidA, "alpha", 1, 0);
  processes_.Start(kPidB, "beta", 2, 0);
  processes_.Start(kPidC, "gamma", 3, 0);
  VmTracker tracker = MakeTracker({.grace_period = 3600s});
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 1), Entry(kPidB, kIo, 2), Entry(kPidC, kIo, 3)};
  tracker.Observe(snapshot, attach_ + 1s, attach_);
  processes_.End(kPidB);
  tracker.Observe(snapshot, attach_ + 2s, attach_);  // beta is noticed as ended
  processes_.End(kPidC);
  processes_.Start(kPidC, "reused", 99, 0);  // gamma's pid now names another process

  // The new rules name every process differently.
  FakeProcesses renamed;
  renamed.Start(kPidA, "alpha-renamed", 1, 0);
  renamed.Start(kPidB, "beta-renamed", 2, 0);
  renamed.Start(kPidC, "reused-renamed", 99, 0);
  tracker.Reidentify(renamed.Resolver());

  const VmView view = tracker.View(snapshot);
  ASSERT_EQ(view.vms.size(), 3u);
  EXPECT_EQ(view.vms[0].vm, "alpha-renamed");
  EXPECT_EQ(view.vms[1].vm, "beta");   // ended: its process cannot be read again
  EXPECT_EQ(view.vms[2].vm, "gamma");  // not the process first seen
  EXPECT_EQ(view.vms[0].counts.at(kIo), 1u);
}

TEST_F(VmTrackerTest, ReidentifyResolvesNewVmsWithTheNewResolver) {
  VmTracker tracker = MakeTracker();
  FakeProcesses renamed;
  renamed.Start(kPidA, "from-new-rules", 1, 0);
  processes_.Start(kPidA, "from-old-rules", 1, 0);
  tracker.Reidentify(renamed.Resolver());
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 1)};
  tracker.Observe(snapshot, attach_ + 1s, attach_);
  const VmView view = tracker.View(snapshot);
  ASSERT_EQ(view.vms.size(), 1u);
  EXPECT_EQ(view.vms[0].vm, "from-new-rules");
}

TEST_F(VmTrackerTest, SetLimitsChangesFoldingGraceAndBootWindow) {
  processes_.Start(kPidA, "alpha", 1, Seconds(attach_) + 1);
  processes_.Start(kPidB, "beta", 2, Seconds(attach_) + 1);
  VmTracker tracker = MakeTracker({.max_vms = 10, .grace_period = 3600s, .boot_window = 3600s});
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, kIo, 5), Entry(kPidB, kIo, 7)};
  tracker.Observe(snapshot, attach_ + 2s, attach_);
  EXPECT_EQ(tracker.View(snapshot).folded_vms, 0u);

  tracker.SetLimits(1, 10s, 30s);
  EXPECT_EQ(tracker.View(snapshot).folded_vms, 1u);
  // Both boot windows (an hour long before) close at 30 s now.
  tracker.Observe(snapshot, attach_ + 40s, attach_);
  EXPECT_THAT(closed_boots_, ::testing::UnorderedElementsAre(5u, 7u));
  // An ended VM is retired after the new 10 s grace period, not the old hour.
  processes_.End(kPidB);
  tracker.Observe(snapshot, attach_ + 41s, attach_);
  EXPECT_EQ(tracker.ExpiredKeys(snapshot, attach_ + 52s).size(), 1u);
}

}  // namespace
}  // namespace kvmexit
