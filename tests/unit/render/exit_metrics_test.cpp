// SPDX-License-Identifier: Apache-2.0
// Metric families built from given map contents, checked in exposition text.
#include "render/exit_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <linux/kvm.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace kvmexit {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr std::uint32_t kPidA = 5'000'101;
constexpr std::uint32_t kPidB = 5'000'102;

ReasonNames FixtureNames() {
  std::ifstream file(std::string(KVMEXIT_FIXTURE_DIR) + "/kvm_exit_format_6.18.txt");
  std::stringstream text;
  text << file.rdbuf();
  std::string error;
  auto names = ReasonNames::FromTracepointFormat(text.str(), &error);
  EXPECT_TRUE(names.has_value()) << error;
  return names ? *names : ReasonNames::FromUapiHeaders();
}

VmExitCount Entry(std::uint32_t tgid, std::uint32_t isa, std::uint32_t code, std::uint64_t count,
                  std::uint32_t vcpu = KVM_EXIT_ALL_VCPUS) {
  return {vm_exit_key{tgid, vcpu, isa, code}, count};
}

class ExitMetricsTest : public ::testing::Test {
 protected:
  std::string Render(const ExitSnapshot& snapshot, const FamilyOptions& options,
                     const RateView& rates = {}) {
    VmTracker tracker(
        VmTrackerOptions{.max_vms = max_vms_, .drilldown_max_keys = options.drilldown_max_keys},
        [name_a = name_a_](std::uint32_t pid) -> std::optional<VmProcess> {
          return VmProcess{
              .identity = {.name = pid == kPidA ? name_a : "db01",
                           .uuid = pid == kPidA ? "6f1c9e2a-0000-4000-8000-000000000001" : "",
                           .platform = "libvirt"},
              .start_ticks = pid,
              .start_time_seconds = 1700000000.5};
        },
        [](std::uint32_t pid) -> std::optional<std::uint64_t> { return pid; });
    const auto now = std::chrono::system_clock::now();
    tracker.Observe(snapshot, now, now);
    ExpositionWriter out;
    WriteExitFamilies(tracker.View(snapshot), rates, names_, options, out);
    return out.Take();
  }

  ReasonNames names_ = FixtureNames();
  std::uint32_t max_vms_ = 1000;
  std::string name_a_ = "web01";
};

// The family named by each `# TYPE` line, in order; fails the test when a
// sample does not belong to the family whose header precedes it.
std::vector<std::string> FamiliesInOrder(const std::string& text) {
  std::vector<std::string> families;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      families.push_back(line.substr(7, line.find(' ', 7) - 7));
    } else if (line.rfind('#', 0) != 0) {
      EXPECT_FALSE(families.empty()) << line;
      if (!families.empty()) EXPECT_EQ(line.rfind(families.back(), 0), 0u) << line;
    }
  }
  return families;
}

TEST_F(ExitMetricsTest, HostCountersCarryKernelNamesAndCodes) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_VMX, 12, 5),
                        Entry(kPidA, KVM_EXIT_ISA_VMX, 10, 7),
                        Entry(kPidB, KVM_EXIT_ISA_VMX, 10, 3)};
  snapshot.overflow = {{{KVM_EXIT_ISA_VMX, 48}, 2}};
  const std::string text = Render(snapshot, {});
  EXPECT_THAT(text, HasSubstr("kvm_exits_total{isa=\"vmx\",reason=\"HLT\",code=\"12\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("kvm_exits_total{isa=\"vmx\",reason=\"CPUID\",code=\"10\"} 10\n"));
  EXPECT_THAT(text,
              HasSubstr("kvm_exits_total{isa=\"vmx\",reason=\"EPT_VIOLATION\",code=\"48\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE kvm_exits_total counter"));
}

TEST_F(ExitMetricsTest, PerVmSeriesNameTheVmAndItsPid) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 1000),
                        Entry(kPidB, KVM_EXIT_ISA_SVM, 0x7b, 10)};
  const std::string text = Render(snapshot, {});
  EXPECT_THAT(text, HasSubstr("kvm_vm_exits_total{vm=\"web01\",pid=\"5000101\",isa=\"svm\","
                              "reason=\"io\",code=\"123\"} 1000\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_exits_total{vm=\"db01\",pid=\"5000102\",isa=\"svm\","
                              "reason=\"io\",code=\"123\"} 10\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_info{vm=\"web01\",pid=\"5000101\",vm_uuid=\"6f1c9e2a-0000-"
                              "4000-8000-000000000001\",platform=\"libvirt\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_start_time_seconds{vm=\"web01\",pid=\"5000101\"} "));
  EXPECT_THAT(text, Not(HasSubstr("kvm_vcpu_exits_total{")));
}

TEST_F(ExitMetricsTest, IoPortSeriesPerVmFoldBeyondMaxKeysIntoOther) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 36),
                        Entry(kPidB, KVM_EXIT_ISA_SVM, 0x7b, 4)};
  snapshot.drilldown_on = true;
  const auto io = [](std::uint32_t tgid, std::uint64_t item, std::uint64_t count) {
    return DrilldownCount{tgid, {KVM_DRILLDOWN_IO, item}, count};
  };
  // Writes to ports the BPF program had no slot left for: counted in its "other" slots.
  const DrilldownCount folded_in_bpf{kPidA, {KVM_DRILLDOWN_IO, KVM_DRILLDOWN_IO_WRITE}, 5, true};
  snapshot.drilldown = {
      io(kPidA, 0x3f8 | KVM_DRILLDOWN_IO_WRITE, 20), io(kPidA, 0x60, 10), io(kPidA, 0x61, 4),
      io(kPidA, 0x80 | KVM_DRILLDOWN_IO_WRITE, 2),   folded_in_bpf,       io(kPidB, 0x70, 4)};
  snapshot.drilldown_lost[KVM_DRILLDOWN_IO] = 3;
  const std::string text =
      Render(snapshot, {.drilldown = {DrilldownKind::kIo}, .drilldown_max_keys = 2});
  EXPECT_THAT(text, HasSubstr("# TYPE kvm_vm_io_port_exits_total counter"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_io_port_exits_total{vm=\"web01\",pid=\"5000101\","
                              "port=\"0x0060\",direction=\"read\"} 10\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_io_port_exits_total{vm=\"web01\",pid=\"5000101\","
                              "port=\"0x03f8\",direction=\"write\"} 20\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_io_port_exits_total{vm=\"web01\",pid=\"5000101\","
                              "port=\"other\",direction=\"read\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_io_port_exits_total{vm=\"web01\",pid=\"5000101\","
                              "port=\"other\",direction=\"write\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_io_port_exits_total{vm=\"db01\",pid=\"5000102\","
                              "port=\"0x0070\",direction=\"read\"} 4\n"));
  EXPECT_THAT(text, Not(HasSubstr("pid=\"5000102\",port=\"other\"")));
  EXPECT_THAT(text, HasSubstr("kvm_drilldown_overflow_events_total{kind=\"io\"} 3\n"));
  FamiliesInOrder(text);
  // Off: neither family.
  EXPECT_THAT(Render(snapshot, {}), Not(HasSubstr("io_port")));
  EXPECT_THAT(Render(snapshot, {}), Not(HasSubstr("kvm_drilldown_overflow")));
}

TEST_F(ExitMetricsTest, EveryDrilldownKindHasItsFamilyWithItsLabelsAndItsOther) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7c, 10)};
  snapshot.drilldown_on = true;
  const auto drill = [](std::uint32_t kind, std::uint64_t item, std::uint64_t count) {
    return DrilldownCount{kPidA, {kind, item}, count};
  };
  snapshot.drilldown = {
      drill(KVM_DRILLDOWN_MSR, 0xc0000080U | KVM_DRILLDOWN_MSR_WRITE, 7),
      drill(KVM_DRILLDOWN_MSR, 0x4b564dffU | KVM_DRILLDOWN_MSR_FAULT, 2),
      drill(KVM_DRILLDOWN_MSR, 0x1bU, 1),  // third: beyond max_keys 2, into other
      drill(KVM_DRILLDOWN_MMIO, 0xfee00U | KVM_DRILLDOWN_MMIO_WRITE, 5),
      drill(KVM_DRILLDOWN_MMIO, 0x20U, 3),
      drill(KVM_DRILLDOWN_HYPERCALL, 1, 4),
      drill(KVM_DRILLDOWN_HYPERCALL, 99, 6),
      drill(KVM_DRILLDOWN_USERSPACE, KVM_EXIT_IO, 30),
      drill(KVM_DRILLDOWN_USERSPACE, KVM_EXIT_INTR | (std::uint64_t{EINTR} << 32), 2),
      drill(KVM_DRILLDOWN_USERSPACE, KVM_EXIT_HLT, 1),
  };
  snapshot.drilldown_lost[KVM_DRILLDOWN_MSR] = 1;
  const std::string text =
      Render(snapshot, {.drilldown = {DrilldownKind::kMsr, DrilldownKind::kMmio,
                                      DrilldownKind::kHypercall, DrilldownKind::kUserspace},
                        .drilldown_max_keys = 2});
  const std::string vm = "{vm=\"web01\",pid=\"5000101\",";
  EXPECT_THAT(text, HasSubstr("kvm_vm_msr_exits_total" + vm +
                              "msr=\"0xc0000080\",name=\"MSR_EFER\",direction=\"write\","
                              "fault=\"false\"} 7\n"));
  EXPECT_THAT(text,
              HasSubstr("kvm_vm_msr_exits_total" + vm +
                        "msr=\"0x4b564dff\",name=\"\",direction=\"read\",fault=\"true\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_msr_exits_total" + vm +
                              "msr=\"other\",name=\"\",direction=\"read\",fault=\"false\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_mmio_exits_total" + vm +
                              "page=\"0xfee00000\",direction=\"write\"} 5\n"));
  EXPECT_THAT(
      text, HasSubstr("kvm_vm_mmio_exits_total" + vm + "page=\"0x20000\",direction=\"read\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_hypercalls_total" + vm +
                              "nr=\"1\",name=\"KVM_HC_VAPIC_POLL_IRQ\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_hypercalls_total" + vm + "nr=\"99\",name=\"\"} 6\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_userspace_exits_total" + vm +
                              "exit_reason=\"KVM_EXIT_IO\",error=\"none\"} 30\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_userspace_exits_total" + vm +
                              "exit_reason=\"KVM_EXIT_INTR\",error=\"EINTR\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_userspace_exits_total" + vm +
                              "exit_reason=\"other\",error=\"none\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("kvm_drilldown_overflow_events_total{kind=\"msr\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("kvm_drilldown_overflow_events_total{kind=\"userspace\"} 0\n"));
  // Only the kinds that are on: no io family, no io overflow sample.
  EXPECT_THAT(text, Not(HasSubstr("kvm_vm_io_port_exits_total")));
  EXPECT_THAT(text, Not(HasSubstr("{kind=\"io\"}")));
  FamiliesInOrder(text);
}

TEST_F(ExitMetricsTest, PerVmFamiliesCanBeSwitchedOff) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 1000)};
  const std::string text = Render(snapshot, {.per_vm = false});
  EXPECT_THAT(text, HasSubstr("kvm_exits_total{isa=\"svm\",reason=\"io\",code=\"123\"} 1000\n"));
  EXPECT_THAT(text, Not(HasSubstr("kvm_vm_exits_total{")));
}

TEST_F(ExitMetricsTest, PerVcpuSeriesWhenEnabled) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x72, 4, 0),
                        Entry(kPidA, KVM_EXIT_ISA_SVM, 0x72, 6, 1)};
  const std::string text = Render(snapshot, {.per_vcpu = true});
  EXPECT_THAT(text, HasSubstr("kvm_vcpu_exits_total{vm=\"web01\",pid=\"5000101\",vcpu=\"1\","
                              "isa=\"svm\",reason=\"cpuid\",code=\"114\"} 6\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_exits_total{vm=\"web01\",pid=\"5000101\",isa=\"svm\","
                              "reason=\"cpuid\",code=\"114\"} 10\n"));
}

TEST_F(ExitMetricsTest, FailedVmEntryAndUnknownCodesStayDistinguishable) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_VMX, 0x80000021, 1),
                        Entry(kPidA, KVM_EXIT_ISA_VMX, 33, 2),
                        Entry(kPidA, KVM_EXIT_ISA_VMX, 999, 3)};
  const std::string text = Render(snapshot, {});
  EXPECT_THAT(text, HasSubstr("kvm_exits_total{isa=\"vmx\",reason=\"INVALID_STATE "
                              "FAILED_VMENTRY\",code=\"2147483681\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("kvm_exits_total{isa=\"vmx\",reason=\"INVALID_STATE\",code=\"33\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("kvm_exits_total{isa=\"vmx\",reason=\"unknown\",code=\"999\"} 3\n"));
}

TEST_F(ExitMetricsTest, RatesAppearOnlyOnceReadyAndCoverEveryKnownReason) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 1000),
                        Entry(kPidA, KVM_EXIT_ISA_SVM, 0x78, 1)};
  EXPECT_THAT(Render(snapshot, {}), Not(HasSubstr("\nkvm_exit_rate_all_per_second ")));
  const RateView rates{
      .ready = true, .per_reason = {{{KVM_EXIT_ISA_SVM, 0x7b}, 250.0}}, .total = 250.0};
  const std::string text = Render(snapshot, {}, rates);
  EXPECT_THAT(text, HasSubstr("kvm_exit_rate_all_per_second 250\n"));
  EXPECT_THAT(text,
              HasSubstr("kvm_exit_rate_per_second{isa=\"svm\",reason=\"io\",code=\"123\"} 250\n"));
  EXPECT_THAT(text,
              HasSubstr("kvm_exit_rate_per_second{isa=\"svm\",reason=\"hlt\",code=\"120\"} 0\n"));
}

TEST_F(ExitMetricsTest, FoldedVmsShareOneOtherSeries) {
  max_vms_ = 1;
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 1000),
                        Entry(kPidB, KVM_EXIT_ISA_SVM, 0x7b, 10)};
  const std::string text = Render(snapshot, {});
  EXPECT_THAT(text, HasSubstr("kvm_vm_exits_total{vm=\"other\",pid=\"\",isa=\"svm\",reason=\"io\","
                              "code=\"123\"} 10\n"));
}

TEST_F(ExitMetricsTest, FamiliesComeInTheirDocumentedOrderEachInOneBlock) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 4, 0),
                        Entry(kPidB, KVM_EXIT_ISA_SVM, 0x78, 6, 1)};
  const RateView rates{.ready = true, .per_reason = {}, .total = 0.0};
  EXPECT_THAT(FamiliesInOrder(Render(snapshot, {.per_vcpu = true}, rates)),
              ::testing::ElementsAre(
                  "kvm_exits_total", "kvm_vm_exits_total", "kvm_vcpu_exits_total", "kvm_vm_info",
                  "kvm_vm_start_time_seconds", "kvm_vm_boot_exits", "kvm_vm_boot_window_closed",
                  "kvm_exit_rate_per_second", "kvm_exit_rate_all_per_second"));
  EXPECT_THAT(FamiliesInOrder(Render(snapshot, {.per_vm = false})),
              ::testing::ElementsAre("kvm_exits_total", "kvm_exit_rate_per_second",
                                     "kvm_exit_rate_all_per_second"));
}

TEST_F(ExitMetricsTest, SeriesGoByVmThenVcpuThenReason) {
  ExitSnapshot snapshot;
  // In the BPF hash's arbitrary order, as a map read returns them.
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 1, 1),
                        Entry(kPidA, KVM_EXIT_ISA_SVM, 0x72, 2, 1),
                        Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 3, 0)};
  const std::string text = Render(snapshot, {.per_vcpu = true});
  const std::string vm = R"(kvm_vcpu_exits_total{vm="web01",pid="5000101",)";
  const std::size_t vcpu0_io =
      text.find(vm + "vcpu=\"0\",isa=\"svm\",reason=\"io\",code=\"123\"} 3\n");
  const std::size_t vcpu1_cpuid =
      text.find(vm + "vcpu=\"1\",isa=\"svm\",reason=\"cpuid\",code=\"114\"} 2\n");
  const std::size_t vcpu1_io =
      text.find(vm + "vcpu=\"1\",isa=\"svm\",reason=\"io\",code=\"123\"} 1\n");
  ASSERT_NE(vcpu0_io, std::string::npos) << text;
  ASSERT_NE(vcpu1_cpuid, std::string::npos) << text;
  ASSERT_NE(vcpu1_io, std::string::npos) << text;
  EXPECT_LT(vcpu0_io, vcpu1_cpuid);
  EXPECT_LT(vcpu1_cpuid, vcpu1_io);
  EXPECT_LT(
      text.find("kvm_vm_exits_total{vm=\"web01\",pid=\"5000101\",isa=\"svm\",reason=\"cpuid\""),
      text.find("kvm_vm_exits_total{vm=\"web01\",pid=\"5000101\",isa=\"svm\",reason=\"io\""));
}

TEST_F(ExitMetricsTest, CountsBeyondDoublePrecisionAreExact) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_VMX, 12, (1ULL << 60) + 1)};
  const std::string text = Render(snapshot, {});
  EXPECT_THAT(text, HasSubstr("kvm_exits_total{isa=\"vmx\",reason=\"HLT\",code=\"12\"} "
                              "1152921504606846977\n"));
}

TEST_F(ExitMetricsTest, VmNamesAreEscapedInEveryFamily) {
  name_a_ = "we\"ird\\vm\nname";
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 7)};
  const std::string text = Render(snapshot, {});
  const std::string labels = R"({vm="we\"ird\\vm\nname",pid="5000101")";
  EXPECT_THAT(text, HasSubstr("kvm_vm_exits_total" + labels + ",isa=\"svm\""));
  EXPECT_THAT(text, HasSubstr("kvm_vm_info" + labels + ",vm_uuid="));
  EXPECT_THAT(text, HasSubstr("kvm_vm_start_time_seconds" + labels + "} 1700000000.5\n"));
}

TEST_F(ExitMetricsTest, FoldedVmsShareOnePerVcpuOtherSeries) {
  max_vms_ = 1;
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 1000, 0),
                        Entry(kPidB, KVM_EXIT_ISA_SVM, 0x7b, 10, 0),
                        Entry(kPidB, KVM_EXIT_ISA_SVM, 0x7b, 5, 1)};
  const std::string text = Render(snapshot, {.per_vcpu = true});
  EXPECT_THAT(text, HasSubstr("kvm_vcpu_exits_total{vm=\"other\",pid=\"\",vcpu=\"0\",isa=\"svm\","
                              "reason=\"io\",code=\"123\"} 10\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vcpu_exits_total{vm=\"other\",pid=\"\",vcpu=\"1\",isa=\"svm\","
                              "reason=\"io\",code=\"123\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("kvm_vm_exits_total{vm=\"other\",pid=\"\",isa=\"svm\",reason=\"io\","
                              "code=\"123\"} 15\n"));
  EXPECT_THAT(text, Not(HasSubstr("kvm_vm_info{vm=\"other\"")));
}

// ---- Exit handling time ----------------------------------------------------

ExitTimeHistogram Histogram(std::initializer_list<std::pair<std::size_t, std::uint64_t>> buckets,
                            std::uint64_t sum_ns) {
  ExitTimeHistogram hist;
  for (const auto& [index, count] : buckets) {
    hist.buckets.at(index) = count;
    hist.count += count;
  }
  hist.sum_ns = sum_ns;
  return hist;
}

// The lines of `text` that start with `prefix`.
std::vector<std::string> LinesStartingWith(const std::string& text, const std::string& prefix) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) lines.push_back(line);
  }
  return lines;
}

TEST(ExitTimeBucketBoundTest, PowersOfTwoMicrosecondsUpToAboutOneSecond) {
  EXPECT_DOUBLE_EQ(ExitTimeBucketBound(0), 1e-6);
  EXPECT_DOUBLE_EQ(ExitTimeBucketBound(12), 0.004096);
  EXPECT_DOUBLE_EQ(ExitTimeBucketBound(KVM_EXIT_TIME_BUCKETS - 1), 1.048576);
}

TEST(IsIdleReasonTest, OnlyTheHaltOfEachIsaIsIdle) {
  EXPECT_TRUE(IsIdleReason({KVM_EXIT_ISA_SVM, 0x78}));   // hlt
  EXPECT_TRUE(IsIdleReason({KVM_EXIT_ISA_VMX, 12}));     // HLT
  EXPECT_FALSE(IsIdleReason({KVM_EXIT_ISA_SVM, 12}));    // SVM code 12 is a CR write, not HLT
  EXPECT_FALSE(IsIdleReason({KVM_EXIT_ISA_VMX, 0x78}));  // nor is VMX 120 the SVM hlt
  EXPECT_FALSE(IsIdleReason({KVM_EXIT_ISA_SVM, 0x7b}));  // io
  EXPECT_FALSE(IsIdleReason({KVM_EXIT_ISA_VMX, 30}));    // IO_INSTRUCTION
  EXPECT_FALSE(IsIdleReason({KVM_EXIT_ISA_VMX, 12 | KVM_EXIT_VMX_FAILED_VMENTRY}));
  EXPECT_TRUE(IsIdleReason({KVM_EXIT_ISA_ARM64, 0x01}));   // WFx
  EXPECT_FALSE(IsIdleReason({KVM_EXIT_ISA_ARM64, 0x24}));  // DABT_LOW
  EXPECT_FALSE(IsIdleReason({KVM_EXIT_ISA_VMX, 0x01}));    // EXTERNAL_INTERRUPT
}

TEST_F(ExitMetricsTest, HandlingTimeHistogramIsCumulativeWithInfEqualToCountAndSumInSeconds) {
  ExitSnapshot snapshot;
  // 1 exit <= 1 us, 3 in (2.048, 4.096] ms, 2 beyond 1.048576 s; 5.5 s in all.
  snapshot.exit_time[{KVM_EXIT_ISA_SVM, 0x7b}] =
      Histogram({{0, 1}, {12, 3}, {KVM_EXIT_TIME_BUCKETS, 2}}, 5'500'000'000);
  const std::string text = Render(snapshot, {.exit_handling_time = true});
  const std::string labels = R"(isa="svm",reason="io",code="123",idle="false")";
  const std::string bucket = "kvm_exit_handling_seconds_bucket{" + labels;
  EXPECT_THAT(text, HasSubstr("# TYPE kvm_exit_handling_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr(bucket + ",le=\"1e-06\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(bucket + ",le=\"2e-06\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(bucket + ",le=\"0.002048\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(bucket + ",le=\"0.004096\"} 4\n"));
  EXPECT_THAT(text, HasSubstr(bucket + ",le=\"1.048576\"} 4\n"));
  EXPECT_THAT(text, HasSubstr(bucket + ",le=\"+Inf\"} 6\n"));
  EXPECT_THAT(text, HasSubstr("kvm_exit_handling_seconds_sum{" + labels + "} 5.5\n"));
  EXPECT_THAT(text, HasSubstr("kvm_exit_handling_seconds_count{" + labels + "} 6\n"));
  // 21 finite buckets and +Inf, each rising or level.
  const std::vector<std::string> lines = LinesStartingWith(text, bucket);
  ASSERT_EQ(lines.size(), KVM_EXIT_TIME_BUCKETS + 1U);
  std::uint64_t previous = 0;
  for (const std::string& line : lines) {
    const std::uint64_t value = std::stoull(line.substr(line.rfind(' ') + 1));
    EXPECT_GE(value, previous) << line;
    previous = value;
  }
}

TEST_F(ExitMetricsTest, HandlingTimeOfHaltIsLabelledIdle) {
  ExitSnapshot snapshot;
  snapshot.exit_time[{KVM_EXIT_ISA_SVM, 0x78}] = Histogram({{20, 1}}, 1'000'000'000);
  snapshot.exit_time[{KVM_EXIT_ISA_VMX, 12}] = Histogram({{20, 1}}, 1'000'000'000);
  snapshot.exit_time[{KVM_EXIT_ISA_VMX, 10}] = Histogram({{3, 1}}, 5'000);
  const std::string text = Render(snapshot, {.exit_handling_time = true});
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(kvm_exit_handling_seconds_count{isa="svm",reason="hlt",code="120",idle="true"} 1)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(kvm_exit_handling_seconds_count{isa="vmx",reason="HLT",code="12",idle="true"} 1)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(kvm_exit_handling_seconds_count{isa="vmx",reason="CPUID",code="10",idle="false"} 1)"));
}

TEST_F(ExitMetricsTest, PerVmHandlingSecondsSumVcpusAndFoldIntoOther) {
  max_vms_ = 1;
  ExitSnapshot snapshot;
  snapshot.vm_counts = {
      Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 10, 0), Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 20, 1),
      Entry(kPidA, KVM_EXIT_ISA_SVM, 0x78, 1, 0), Entry(kPidB, KVM_EXIT_ISA_SVM, 0x7b, 5, 0)};
  snapshot.vm_time_ns = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 1'000'000'000, 0),
                         Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 500'000'000, 1),
                         Entry(kPidA, KVM_EXIT_ISA_SVM, 0x78, 2'000'000'000, 0),
                         Entry(kPidB, KVM_EXIT_ISA_SVM, 0x7b, 250'000'000, 0)};
  const std::string text = Render(snapshot, {.per_vcpu = true, .exit_handling_time = true});
  EXPECT_THAT(text, HasSubstr("# TYPE kvm_vm_exit_handling_seconds_total counter\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(kvm_vm_exit_handling_seconds_total{vm="web01",pid="5000101",isa="svm",reason="io",code="123",idle="false"} 1.5)"
          "\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(kvm_vm_exit_handling_seconds_total{vm="web01",pid="5000101",isa="svm",reason="hlt",code="120",idle="true"} 2)"
          "\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(kvm_vm_exit_handling_seconds_total{vm="other",pid="",isa="svm",reason="io",code="123",idle="false"} 0.25)"
          "\n"));
}

TEST_F(ExitMetricsTest, TimingLostIsAlwaysServedWhenTimingIsOn) {
  ExitSnapshot snapshot;
  EXPECT_THAT(
      Render(snapshot, {.exit_handling_time = true}),
      HasSubstr("# TYPE kvm_exit_timing_lost_total counter\nkvm_exit_timing_lost_total 0\n"));
  snapshot.timing_lost = 3;
  EXPECT_THAT(Render(snapshot, {.exit_handling_time = true}),
              HasSubstr("\nkvm_exit_timing_lost_total 3\n"));
}

TEST_F(ExitMetricsTest, HandlingTimeFamiliesInTheirDocumentedOrderOrAbsentWhenOff) {
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 4)};
  snapshot.vm_time_ns = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 4000)};
  snapshot.exit_time[{KVM_EXIT_ISA_SVM, 0x7b}] = Histogram({{2, 4}}, 4000);
  EXPECT_THAT(FamiliesInOrder(Render(snapshot, {.exit_handling_time = true})),
              ::testing::ElementsAre(
                  "kvm_exits_total", "kvm_exit_handling_seconds", "kvm_exit_timing_lost_total",
                  "kvm_vm_exits_total", "kvm_vm_exit_handling_seconds_total", "kvm_vm_info",
                  "kvm_vm_start_time_seconds", "kvm_vm_boot_exits", "kvm_vm_boot_window_closed",
                  "kvm_exit_rate_per_second", "kvm_exit_rate_all_per_second"));
  const std::string off = Render(snapshot, {});
  EXPECT_THAT(off, Not(HasSubstr("handling_seconds")));
  EXPECT_THAT(off, Not(HasSubstr("timing_lost")));
}

// ---- Exposed bucket range (collector.exit_handling_buckets) ---------------

std::pair<std::size_t, std::size_t> Bounds(std::size_t first, std::size_t last) {
  return {first, last};
}

TEST(SelectExitBucketsTest, MinRoundsDownAndMaxRoundsUpToPowersOfTwoMicroseconds) {
  const auto range = [](std::chrono::microseconds min, std::chrono::microseconds max) {
    const ExitBucketRange selected = SelectExitBuckets(min, max);
    return std::pair{selected.first, selected.last};
  };
  // The default, 1us..1s, is every BPF bucket: 1s rounds up to 2^20 us.
  EXPECT_EQ(range(1us, 1s), Bounds(0, KVM_EXIT_TIME_BUCKETS - 1));
  EXPECT_TRUE(SelectExitBuckets(1us, 1s) == ExitBucketRange{});
  EXPECT_EQ(range(1us, 1'048'576us), Bounds(0, 20));
  EXPECT_EQ(range(100us, 100ms), Bounds(6, 17));  // 64us..131.072ms
  EXPECT_EQ(range(64us, 64us), Bounds(6, 6));
  EXPECT_EQ(range(65us, 127us), Bounds(6, 7));
  EXPECT_EQ(range(63us, 65us), Bounds(5, 7));
  EXPECT_EQ(range(1ms, 1ms), Bounds(9, 10));  // 512us, 1024us
  EXPECT_EQ(range(2us, 3us), Bounds(1, 2));
  EXPECT_EQ(range(1'048'576us, 1'048'576us), Bounds(20, 20));
  // Outside the BPF bounds (the config refuses these): clamped, never past them.
  EXPECT_EQ(range(0us, 0us), Bounds(0, 0));
  EXPECT_EQ(range(2s, 10s), Bounds(20, 20));
}

// Bucket lines of one series as (le, cumulative count), in order.
std::vector<std::pair<std::string, std::uint64_t>> BucketLines(const std::string& text,
                                                               const std::string& prefix) {
  std::vector<std::pair<std::string, std::uint64_t>> buckets;
  for (const std::string& line : LinesStartingWith(text, prefix)) {
    const std::size_t le = line.find(",le=\"") + 5;  // not idle="
    buckets.emplace_back(line.substr(le, line.find('"', le) - le),
                         std::stoull(line.substr(line.rfind(' ') + 1)));
  }
  return buckets;
}

std::string LeText(std::size_t index) {
  std::string text;
  AppendDouble(text, ExitTimeBucketBound(index));
  return text;
}

TEST_F(ExitMetricsTest, EveryBucketRangeFoldsExactly) {
  // A different count in every fine bucket, +Inf included, so that any wrong
  // fold shows: bucket i holds 3^i mod 1000 + i + 1 exits.
  ExitTimeHistogram fine;
  std::uint64_t power = 1;
  for (std::size_t i = 0; i < fine.buckets.size(); ++i) {
    fine.buckets[i] = power % 1000 + i + 1;
    fine.count += fine.buckets[i];
    power *= 3;
  }
  fine.sum_ns = 123'456'789'000;
  std::array<std::uint64_t, KVM_EXIT_TIME_BUCKETS + 1> cumulative{};
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < fine.buckets.size(); ++i) cumulative[i] = running += fine.buckets[i];

  ExitSnapshot snapshot;
  snapshot.exit_time[{KVM_EXIT_ISA_VMX, 30}] = fine;
  const std::string labels = R"(isa="vmx",reason="IO_INSTRUCTION",code="30",idle="false")";
  const std::string prefix = "kvm_exit_handling_seconds_bucket{" + labels;
  for (std::size_t first = 0; first < KVM_EXIT_TIME_BUCKETS; ++first) {
    for (std::size_t last = first; last < KVM_EXIT_TIME_BUCKETS; ++last) {
      SCOPED_TRACE("buckets " + std::to_string(first) + ".." + std::to_string(last));
      const std::string text = Render(
          snapshot, {.exit_handling_time = true, .exit_buckets = {.first = first, .last = last}});
      const auto buckets = BucketLines(text, prefix);
      ASSERT_EQ(buckets.size(), last - first + 2);
      for (std::size_t i = first; i <= last; ++i) {
        // The cumulative count at each exposed bound is the fine histogram's.
        EXPECT_EQ(buckets[i - first].first, LeText(i));
        EXPECT_EQ(buckets[i - first].second, cumulative[i]);
      }
      EXPECT_EQ(buckets.back().first, "+Inf");
      EXPECT_EQ(buckets.back().second, fine.count);
      EXPECT_THAT(text, HasSubstr("kvm_exit_handling_seconds_count{" + labels + "} " +
                                  std::to_string(fine.count) + "\n"));
      EXPECT_THAT(text, HasSubstr("kvm_exit_handling_seconds_sum{" + labels + "} 123.456789\n"));
    }
  }
}

TEST_F(ExitMetricsTest, DefaultRangeWritesEveryBpfBucket) {
  ExitSnapshot snapshot;
  snapshot.exit_time[{KVM_EXIT_ISA_SVM, 0x7b}] = Histogram({{3, 2}}, 16'000);
  const std::string full = Render(snapshot, {.exit_handling_time = true});
  EXPECT_EQ(full, Render(snapshot,
                         {.exit_handling_time = true, .exit_buckets = SelectExitBuckets(1us, 1s)}));
  EXPECT_EQ(LinesStartingWith(full, "kvm_exit_handling_seconds_bucket{").size(),
            KVM_EXIT_TIME_BUCKETS + 1U);
}

TEST_F(ExitMetricsTest, AChangedRangeTakesEffectAtTheNextScrapeForEveryReason) {
  // As after a reload: one process renders one range, then another, then the
  // first again; each scrape shows its own range only, for every reason.
  ExitSnapshot snapshot;
  snapshot.exit_time[{KVM_EXIT_ISA_SVM, 0x7b}] = Histogram({{0, 1}, {10, 2}, {21, 3}}, 1);
  snapshot.exit_time[{KVM_EXIT_ISA_SVM, 0x72}] = Histogram({{5, 4}}, 1);
  const FamilyOptions wide{.exit_handling_time = true};
  const FamilyOptions narrow{.exit_handling_time = true,
                             .exit_buckets = SelectExitBuckets(100us, 10ms)};  // 64us..16.384ms
  const std::string before = Render(snapshot, wide);
  const std::string after = Render(snapshot, narrow);
  EXPECT_EQ(Render(snapshot, wide), before);
  for (const std::string_view reason : {R"(reason="io")", R"(reason="cpuid")"}) {
    const std::string prefix =
        "kvm_exit_handling_seconds_bucket{isa=\"svm\"," + std::string(reason);
    const auto buckets = BucketLines(after, prefix);
    ASSERT_EQ(buckets.size(), 10U) << reason;  // 2^6 .. 2^14 us and +Inf
    EXPECT_EQ(buckets.front().first, "6.4e-05");
    EXPECT_EQ(buckets[buckets.size() - 2].first, "0.016384");
    EXPECT_EQ(BucketLines(before, prefix).size(), KVM_EXIT_TIME_BUCKETS + 1U) << reason;
  }
  // io: 1 exit <= 1us folds into le=64us; 2 at 1024us; 3 beyond 1s are +Inf only.
  const auto io = BucketLines(after, R"(kvm_exit_handling_seconds_bucket{isa="svm",reason="io")");
  EXPECT_EQ(io.front().second, 1U);
  EXPECT_EQ(io[4].first, "0.001024");
  EXPECT_EQ(io[4].second, 3U);
  EXPECT_EQ(io[io.size() - 2].second, 3U);
  EXPECT_EQ(io.back().second, 6U);
}

TEST_F(ExitMetricsTest, NarrowedHistogramPassesPromtool) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) GTEST_SKIP() << "no promtool";
  ExitSnapshot snapshot;
  snapshot.vm_counts = {Entry(kPidA, KVM_EXIT_ISA_SVM, 0x7b, 6)};
  snapshot.exit_time[{KVM_EXIT_ISA_SVM, 0x7b}] = Histogram({{0, 1}, {10, 2}, {21, 3}}, 5'000'000);
  snapshot.exit_time[{KVM_EXIT_ISA_SVM, 0x78}] = Histogram({{20, 1}}, 1'000'000'000);
  const std::string text =
      Render(snapshot, {.exit_handling_time = true, .exit_buckets = SelectExitBuckets(1ms, 1ms)});
  const std::string path = ::testing::TempDir() + "/exit_buckets_metrics.txt";
  std::ofstream(path) << text;
  const std::string command = "promtool check metrics <" + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  std::array<char, 512> chunk{};
  while (std::fgets(chunk.data(), chunk.size(), pipe) != nullptr) output += chunk.data();
  EXPECT_EQ(pclose(pipe), 0) << output << "\n" << text;
}

}  // namespace
}  // namespace kvmexit
