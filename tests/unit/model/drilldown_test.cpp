// SPDX-License-Identifier: Apache-2.0
// Drill-down folding (which items keep a series, what goes into "other").
#include "model/drilldown.h"

#include <gtest/gtest.h>

#include <linux/kvm.h>

#include <algorithm>
#include <cerrno>
#include <numeric>

namespace kvmexit {
namespace {

constexpr std::uint32_t kIo = KVM_DRILLDOWN_IO;

DrilldownItem Out(std::uint16_t port) { return {kIo, port | KVM_DRILLDOWN_IO_WRITE}; }
DrilldownItem In(std::uint16_t port) { return {kIo, port}; }

SortedDrilldownCounts Counts(std::vector<std::pair<DrilldownItem, std::uint64_t>> items) {
  std::sort(items.begin(), items.end());
  SortedDrilldownCounts counts;
  for (const auto& [item, count] : items) counts.Append(item, count);
  return counts;
}

std::uint64_t Total(const FoldedDrilldown& folded) {
  return folded.own.Total() + folded.other.Total();
}

TEST(DrilldownFold, OtherKeepsDirectionFaultAndErrnoButNotTheItem) {
  EXPECT_EQ(
      OtherItem({KVM_DRILLDOWN_MSR, 0x1b | KVM_DRILLDOWN_MSR_WRITE | KVM_DRILLDOWN_MSR_FAULT}),
      (DrilldownItem{KVM_DRILLDOWN_MSR, KVM_DRILLDOWN_MSR_WRITE | KVM_DRILLDOWN_MSR_FAULT}));
  EXPECT_EQ(OtherItem({KVM_DRILLDOWN_MMIO, 0xfee00 | KVM_DRILLDOWN_MMIO_WRITE}),
            (DrilldownItem{KVM_DRILLDOWN_MMIO, KVM_DRILLDOWN_MMIO_WRITE}));
  EXPECT_EQ(OtherItem({KVM_DRILLDOWN_HYPERCALL, 11}), (DrilldownItem{KVM_DRILLDOWN_HYPERCALL, 0}));
  EXPECT_EQ(OtherItem({KVM_DRILLDOWN_USERSPACE, KVM_EXIT_INTR | std::uint64_t{EINTR} << 32}),
            (DrilldownItem{KVM_DRILLDOWN_USERSPACE, std::uint64_t{EINTR} << 32}));
}

TEST(DrilldownFold, WithinMaxKeysEveryItemHasItsOwnSeries) {
  const SortedDrilldownCounts counts = Counts({{Out(0x3f8), 300}, {In(0x3f8), 200}, {In(0x60), 5}});
  std::vector<DrilldownItem> own;
  AdmitDrilldownItems(counts, 4, own);
  EXPECT_EQ(own.size(), 3U);
  const FoldedDrilldown folded = FoldDrilldown(counts, {}, own);
  EXPECT_EQ(folded.own, counts);
  EXPECT_TRUE(folded.other.empty());
}

TEST(DrilldownFold, BeyondMaxKeysTheLargestAreAdmittedAndTheRestSumExactlyIntoOther) {
  std::vector<std::pair<DrilldownItem, std::uint64_t>> items;
  for (std::uint16_t port = 0x100; port < 0x10a; ++port) items.emplace_back(Out(port), port - 0xff);
  items.emplace_back(In(0x109), 5);
  const SortedDrilldownCounts counts = Counts(items);
  std::vector<DrilldownItem> own;
  AdmitDrilldownItems(counts, 4, own);
  ASSERT_EQ(own.size(), 4U);
  EXPECT_EQ(own, (std::vector<DrilldownItem>{Out(0x106), Out(0x107), Out(0x108), Out(0x109)}));
  const FoldedDrilldown folded = FoldDrilldown(counts, {}, own);
  EXPECT_EQ(folded.own.size(), 4U);
  EXPECT_EQ(Total(folded), counts.Total());
  // "other" keeps the direction: writes 1+...+6 = 21, the one read 5.
  EXPECT_EQ(folded.other.at(DrilldownItem{kIo, KVM_DRILLDOWN_IO_WRITE}), 21U);
  EXPECT_EQ(folded.other.at(DrilldownItem{kIo, 0}), 5U);
}

TEST(DrilldownFold, AnItemKeepsItsSeriesWhenOthersOvertakeIt) {
  std::vector<DrilldownItem> own;
  AdmitDrilldownItems(Counts({{Out(0x80), 10}, {Out(0x81), 9}}), 2, own);
  ASSERT_EQ(own, (std::vector<DrilldownItem>{Out(0x80), Out(0x81)}));
  // A newcomer far larger than both: no series flaps, it goes into other.
  const SortedDrilldownCounts later = Counts({{Out(0x80), 10}, {Out(0x81), 9}, {Out(0x3f8), 1000}});
  AdmitDrilldownItems(later, 2, own);
  EXPECT_EQ(own, (std::vector<DrilldownItem>{Out(0x80), Out(0x81)}));
  const FoldedDrilldown folded = FoldDrilldown(later, {}, own);
  EXPECT_EQ(folded.other.at(DrilldownItem{kIo, KVM_DRILLDOWN_IO_WRITE}), 1000U);
  EXPECT_EQ(Total(folded), 1019U);
}

TEST(DrilldownFold, CountsTheBpfProgramFoldedGoToOtherToo) {
  const SortedDrilldownCounts counts = Counts({{Out(0x80), 10}, {In(0x60), 3}});
  std::vector<DrilldownItem> own;
  AdmitDrilldownItems(counts, 1, own);
  // What BPF counted in its "other" slots is keyed by OtherItem already.
  const SortedDrilldownCounts folded_in_bpf =
      Counts({{OtherItem(Out(0x1234)), 40}, {OtherItem(In(0x1234)), 2}});
  const FoldedDrilldown folded = FoldDrilldown(counts, folded_in_bpf, own);
  EXPECT_EQ(folded.own.size(), 1U);
  EXPECT_EQ(folded.other.at(DrilldownItem{kIo, KVM_DRILLDOWN_IO_WRITE}), 40U);
  EXPECT_EQ(folded.other.at(DrilldownItem{kIo, 0}), 5U);
  EXPECT_EQ(Total(folded), 55U);
}

// The slot table the BPF program counts into (bpf/kvm_exit.h), run here on one CPU.
TEST(DrilldownSlots, EachItemHasOneSlotUntilTheTableIsFull) {
  drilldown_items items{};
  constexpr std::uint64_t kSlotsNr = KVM_DRILLDOWN_ITEM_SLOTS;
  for (std::uint64_t port = 0; port < kSlotsNr; ++port) {
    // Neighbouring items, each twice: the second finds the slot the first claimed.
    ASSERT_EQ(kvm_drilldown_add(items.items, KVM_DRILLDOWN_ITEM_SLOTS, port + 1, 1), 0);
    ASSERT_EQ(kvm_drilldown_add(items.items, KVM_DRILLDOWN_ITEM_SLOTS, port + 1, port), 0);
  }
  std::vector<std::uint64_t> seen;
  for (const drilldown_slot& slot : items.items) {
    ASSERT_NE(slot.slot, 0U);
    EXPECT_EQ(slot.count, slot.slot);  // item + 1 == 1 + item: both adds landed in it
    seen.push_back(slot.slot);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
  // Full: a new item is refused (the program then counts it in `other`), a known one is not.
  EXPECT_EQ(kvm_drilldown_add(items.items, KVM_DRILLDOWN_ITEM_SLOTS, kSlotsNr + 1, 1), -1);
  EXPECT_EQ(kvm_drilldown_add(items.items, KVM_DRILLDOWN_ITEM_SLOTS, 7, 1), 0);
}

TEST(DrilldownSlots, OtherItemsOfEveryKindFitTheOtherSlots) {
  // msr keeps direction and fault: 4 items, the most of any kind but userspace (one per errno).
  drilldown_items items{};
  for (std::uint64_t flags = 0; flags < 4; ++flags) {
    const std::uint64_t other = kvm_drilldown_other_item(KVM_DRILLDOWN_MSR, 0x1b | flags << 32) + 1;
    ASSERT_EQ(kvm_drilldown_add(items.other, KVM_DRILLDOWN_OTHER_SLOTS, other, 1), 0);
  }
  EXPECT_EQ(std::count_if(std::begin(items.other), std::end(items.other),
                          [](const drilldown_slot& slot) { return slot.slot != 0; }),
            4);
}

TEST(DrilldownFold, EqualCountsAreAdmittedLowestItemFirst) {
  std::vector<DrilldownItem> own;
  AdmitDrilldownItems(Counts({{Out(0x90), 7}, {Out(0x20), 7}, {Out(0x50), 7}}), 2, own);
  EXPECT_EQ(own, (std::vector<DrilldownItem>{Out(0x20), Out(0x50)}));
}

TEST(DrilldownFold, FoldAllSumsEveryItemIntoOther) {
  FoldedDrilldown into;
  FoldAllDrilldown(Counts({{Out(0x80), 10}, {In(0x60), 3}}), into);
  FoldAllDrilldown(Counts({{Out(0x81), 1}}), into);
  EXPECT_TRUE(into.own.empty());
  EXPECT_EQ(into.other.at(DrilldownItem{kIo, KVM_DRILLDOWN_IO_WRITE}), 11U);
  EXPECT_EQ(into.other.at(DrilldownItem{kIo, 0}), 3U);
}

}  // namespace
}  // namespace kvmexit
