// Drill-down folding (which items keep a series, what goes into "other") and labels.
#include "drilldown.h"

#include <gtest/gtest.h>

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

TEST(DrilldownLabels, PortIsFourLowercaseHexDigits) {
  EXPECT_EQ(IoPortLabel(0x3f8), "0x03f8");
  EXPECT_EQ(IoPortLabel(0), "0x0000");
  EXPECT_EQ(IoPortLabel(0xffff), "0xffff");
  EXPECT_EQ(IoPortLabel(Out(0xCF8).item), "0x0cf8");  // the direction bit is not part of it
  EXPECT_STREQ(IoDirectionLabel(Out(0x60).item), "write");
  EXPECT_STREQ(IoDirectionLabel(In(0x60).item), "read");
}

TEST(DrilldownFold, WithinMaxKeysEveryItemHasItsOwnSeries) {
  const SortedDrilldownCounts counts = Counts({{Out(0x3f8), 300}, {In(0x3f8), 200}, {In(0x60), 5}});
  std::vector<DrilldownItem> own;
  AdmitDrilldownItems(counts, 4, own);
  EXPECT_EQ(own.size(), 3U);
  const FoldedDrilldown folded = FoldDrilldown(counts, own);
  EXPECT_EQ(folded.own, counts);
  EXPECT_TRUE(folded.other.empty());
}

TEST(DrilldownFold, BeyondMaxKeysTheLargestAreAdmittedAndTheRestSumExactlyIntoOther) {
  std::vector<std::pair<DrilldownItem, std::uint64_t>> items;
  for (std::uint16_t port = 0x100; port < 0x10a; ++port) items.push_back({Out(port), port - 0xff});
  items.push_back({In(0x109), 5});
  const SortedDrilldownCounts counts = Counts(items);
  std::vector<DrilldownItem> own;
  AdmitDrilldownItems(counts, 4, own);
  ASSERT_EQ(own.size(), 4U);
  EXPECT_EQ(own, (std::vector<DrilldownItem>{Out(0x106), Out(0x107), Out(0x108), Out(0x109)}));
  const FoldedDrilldown folded = FoldDrilldown(counts, own);
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
  const FoldedDrilldown folded = FoldDrilldown(later, own);
  EXPECT_EQ(folded.other.at(DrilldownItem{kIo, KVM_DRILLDOWN_IO_WRITE}), 1000U);
  EXPECT_EQ(Total(folded), 1019U);
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
