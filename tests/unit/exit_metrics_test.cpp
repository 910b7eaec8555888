// Metric families built from given map contents, checked in exposition text.
#include "exit_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
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
        VmTrackerOptions{.max_vms = max_vms_},
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

}  // namespace
}  // namespace kvmexit
