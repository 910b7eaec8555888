// SPDX-License-Identifier: Apache-2.0
// The text exposition writer: escaping, number formatting, label sets and
// histogram layout, checked against the exact text the format requires.
#include "render/exposition_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace kvmexit {
namespace {

std::string Double(double value) {
  std::string text;
  AppendDouble(text, value);
  return text;
}

TEST(ExpositionWriterTest, FamilyHeaderNamesHelpAndType) {
  ExpositionWriter out;
  out.Family("kvm_exits_total", "Exits by reason.", MetricType::kCounter);
  out.Family("kvm_vm_info", "Identity; always 1.", MetricType::kGauge);
  EXPECT_EQ(out.text(),
            "# HELP kvm_exits_total Exits by reason.\n"
            "# TYPE kvm_exits_total counter\n"
            "# HELP kvm_vm_info Identity; always 1.\n"
            "# TYPE kvm_vm_info gauge\n");
}

TEST(ExpositionWriterTest, HelpEscapesBackslashAndNewlineButNotQuotes) {
  ExpositionWriter out;
  out.Family("m", "a \\ b\nc \"d\"", MetricType::kGauge);
  EXPECT_EQ(out.text(), "# HELP m a \\\\ b\\nc \"d\"\n# TYPE m gauge\n");
}

TEST(ExpositionWriterTest, LabelValuesAreEscaped) {
  EXPECT_EQ(RenderLabels({{"vm", "we\"ird\\name\nx"}}), "vm=\"we\\\"ird\\\\name\\nx\"");
  EXPECT_EQ(RenderLabels({{"vm", "web01"}, {"pid", "42"}}), "vm=\"web01\",pid=\"42\"");
  EXPECT_EQ(RenderLabels({{"vm", ""}}), "vm=\"\"");
  EXPECT_EQ(RenderLabels({}), "");
  // Multi-byte UTF-8 passes through untouched.
  EXPECT_EQ(RenderLabels({{"vm", "caf\xc3\xa9"}}), "vm=\"caf\xc3\xa9\"");
}

TEST(ExpositionWriterTest, LabelSetsAreJoinedAndEmptyOnesSkipped) {
  const std::string vm = RenderLabels({{"vm", "web01"}, {"pid", "42"}});
  const std::string reason = RenderLabels({{"isa", "vmx"}, {"reason", "HLT"}, {"code", "12"}});
  ExpositionWriter out;
  out.Sample("kvm_vm_exits_total", {vm, reason}, std::uint64_t{5});
  out.Sample("kvm_vm_exits_total", {"", vm, ""}, std::uint64_t{6});
  out.Sample("kvm_exit_lost_exits_total", {}, std::uint64_t{0});
  out.Sample("kvm_exit_lost_exits_total", {""}, std::uint64_t{0});
  EXPECT_EQ(out.text(),
            "kvm_vm_exits_total{vm=\"web01\",pid=\"42\",isa=\"vmx\",reason=\"HLT\",code=\"12\"} 5\n"
            "kvm_vm_exits_total{vm=\"web01\",pid=\"42\"} 6\n"
            "kvm_exit_lost_exits_total 0\n"
            "kvm_exit_lost_exits_total 0\n");
}

TEST(ExpositionWriterTest, IntegersAreWrittenExactly) {
  ExpositionWriter out;
  out.Sample("a", {}, std::uint64_t{0});
  out.Sample("b", {}, std::uint64_t{9'007'199'254'740'993});  // 2^53 + 1: not a double
  out.Sample("c", {}, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(out.text(), "a 0\nb 9007199254740993\nc 18446744073709551615\n");
}

TEST(ExpositionWriterTest, DoublesAreShortestRoundTrip) {
  EXPECT_EQ(Double(0.0), "0");
  EXPECT_EQ(Double(1.0), "1");
  EXPECT_EQ(Double(250.0), "250");
  EXPECT_EQ(Double(0.1), "0.1");
  EXPECT_EQ(Double(2.0 / 3.0), "0.6666666666666666");
  EXPECT_EQ(Double(1700000000.5), "1700000000.5");
  EXPECT_EQ(Double(-1.25), "-1.25");
  for (const double value : {0.1, 2.0 / 3.0, 1e-300, 1.7976931348623157e308, 123456.789}) {
    EXPECT_EQ(std::stod(Double(value)), value) << Double(value);
  }
}

TEST(ExpositionWriterTest, NonFiniteDoublesUseTheFormatsSpelling) {
  EXPECT_EQ(Double(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(Double(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(Double(-std::numeric_limits<double>::infinity()), "-Inf");
}

TEST(ExpositionWriterTest, DoubleSamplesCarryLabels) {
  ExpositionWriter out;
  out.Sample("kvm_vm_start_time_seconds", {RenderLabels({{"vm", "a"}})}, 1700000000.5);
  EXPECT_EQ(out.text(), "kvm_vm_start_time_seconds{vm=\"a\"} 1700000000.5\n");
}

TEST(ExpositionWriterTest, TakeHandsOverTheTextAndEmptiesTheWriter) {
  ExpositionWriter out(1024);
  out.Sample("a", {}, std::uint64_t{1});
  EXPECT_EQ(out.Take(), "a 1\n");
  EXPECT_EQ(out.text(), "");
  out.Sample("b", {}, std::uint64_t{2});
  EXPECT_EQ(out.Take(), "b 2\n");
}

}  // namespace
}  // namespace kvmexit
