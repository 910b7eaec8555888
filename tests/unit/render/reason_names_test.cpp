// SPDX-License-Identifier: Apache-2.0
#include "render/reason_names.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <unistd.h>

namespace kvmexit {
namespace {

constexpr std::uint32_t kVmx = 1;
constexpr std::uint32_t kSvm = 2;
constexpr std::uint32_t kArm64 = 3;
constexpr std::uint32_t kFailedVmentry = 0x80000000U;
constexpr std::uint32_t kArm64NotTrap = 0x100;  // KVM_EXIT_ARM64_NOT_TRAP

std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The verbatim kvm_exit format of a 6.18 kernel, committed so these tests pin
// what a real kernel prints rather than what we believe it prints.
const std::string& Fixture618() {
  static const std::string text =
      ReadText(std::filesystem::path(KVMEXIT_FIXTURE_DIR) / "kvm_exit_format_6.18.txt");
  return text;
}

// The verbatim kvm_exit format of Debian 12's arm64 kernel (6.1.0-57-arm64),
// read in the arm64 nested suite's guest.
const std::string& FixtureArm64() {
  static const std::string text =
      ReadText(std::filesystem::path(KVMEXIT_FIXTURE_DIR) / "kvm_exit_format_arm64_6.1.txt");
  return text;
}

ReasonNames ParseFixture() {
  std::string error;
  auto names = ReasonNames::FromTracepointFormat(Fixture618(), &error);
  EXPECT_TRUE(names.has_value()) << error;
  return names.value_or(ReasonNames::FromUapiHeaders());
}

// Parses `text`, expecting failure; returns the error.
std::string ParseError(std::string_view text) {
  std::string error;
  const auto names = ReasonNames::FromTracepointFormat(text, &error);
  EXPECT_FALSE(names.has_value()) << "parsed: " << text;
  EXPECT_FALSE(error.empty());
  return error;
}

// A small but complete format, in the kernel's shape.
std::string MinimalFormat(std::string_view vmx_entries, std::string_view svm_entries) {
  return "print fmt: \"vcpu %u reason %s\", REC->vcpu_id, (REC->isa == 1) ? "
         "__print_symbolic(REC->exit_reason & 0xffff, " +
         std::string(vmx_entries) + ") : __print_symbolic(REC->exit_reason, " +
         std::string(svm_entries) + "), REC->guest_rip\n";
}

TEST(ReasonNamesFixture, FixtureIsTheRealTracepointFormat) {
  ASSERT_FALSE(Fixture618().empty()) << "missing fixture in " << KVMEXIT_FIXTURE_DIR;
  EXPECT_NE(Fixture618().find("name: kvm_exit"), std::string::npos);
  EXPECT_NE(Fixture618().find("print fmt:"), std::string::npos);
}

TEST(ReasonNamesFixture, VmxCodesMatchTheKernel) {
  const ReasonNames names = ParseFixture();
  EXPECT_EQ(names.origin(), ReasonNames::Origin::kKernelTracepoint);
  // An earlier report printed CPUID as 9, HLT 28, MSR_WRITE 30 and EPT_MISCONFIG 48.
  EXPECT_EQ(names.Code(kVmx, "EXCEPTION_NMI"), 0U);
  EXPECT_EQ(names.Code(kVmx, "CPUID"), 10U);
  EXPECT_EQ(names.Code(kVmx, "HLT"), 12U);
  EXPECT_EQ(names.Code(kVmx, "IO_INSTRUCTION"), 30U);
  EXPECT_EQ(names.Code(kVmx, "MSR_WRITE"), 32U);
  EXPECT_EQ(names.Code(kVmx, "EPT_VIOLATION"), 48U);
  EXPECT_EQ(names.Code(kVmx, "EPT_MISCONFIG"), 49U);
  EXPECT_EQ(names.Name(kVmx, 9), "TASK_SWITCH");
  EXPECT_EQ(names.Name(kVmx, 28), "CR_ACCESS");
  EXPECT_EQ(names.Name(kVmx, 85), "MSR_WRITE_IMM");
  EXPECT_EQ(names.Size(kVmx), 65U);
}

TEST(ReasonNamesFixture, SvmCodesMatchTheKernel) {
  const ReasonNames names = ParseFixture();
  EXPECT_EQ(names.Code(kSvm, "read_cr0"), 0x000U);
  EXPECT_EQ(names.Code(kSvm, "io"), 0x7bU);
  EXPECT_EQ(names.Code(kSvm, "hlt"), 0x78U);
  EXPECT_EQ(names.Code(kSvm, "cpuid"), 0x72U);
  EXPECT_EQ(names.Code(kSvm, "interrupt"), 0x60U);
  EXPECT_EQ(names.Code(kSvm, "npf"), 0x400U);
  EXPECT_EQ(names.Code(kSvm, "PF excp"), 0x4eU);                    // written `0x040 + 14`
  EXPECT_EQ(names.Code(kSvm, "invalid_guest_state"), 0xffffffffU);  // written `-1`
  EXPECT_EQ(names.Code(kSvm, "vmgexit_hypervisor_feature"), 0x8000fffdU);
  EXPECT_EQ(names.Size(kSvm), 110U);
}

TEST(ReasonNamesFixture, IgnoresThePrintFlagsTable) {
  const ReasonNames names = ParseFixture();
  EXPECT_FALSE(names.Code(kVmx, "FAILED_VMENTRY").has_value());
  EXPECT_FALSE(names.Find(kVmx, kFailedVmentry).has_value());
}

TEST(ReasonNamesFixture, UapiHeadersAgreeOnEverySharedName) {
  const ReasonNames kernel = ParseFixture();
  const ReasonNames uapi = ReasonNames::FromUapiHeaders();
  for (const std::uint32_t isa : {kVmx, kSvm}) {
    std::size_t shared = 0;
    for (const auto& [code, name] : uapi.Entries(isa)) {
      const auto kernel_code = kernel.Code(isa, name);
      if (!kernel_code) continue;
      ++shared;
      EXPECT_EQ(*kernel_code, code) << IsaLabel(isa) << " " << name;
    }
    // The headers may be older than the kernel, but nearly all names are shared.
    EXPECT_GE(shared, uapi.Size(isa) - 2) << IsaLabel(isa);
    EXPECT_GT(shared, 60U) << IsaLabel(isa);
  }
}

TEST(ReasonNamesUapi, BuildsBothTablesFromTheHeaders) {
  const ReasonNames names = ReasonNames::FromUapiHeaders();
  EXPECT_EQ(names.origin(), ReasonNames::Origin::kUapiHeaders);
  EXPECT_EQ(names.Code(kVmx, "CPUID"), 10U);
  EXPECT_EQ(names.Code(kVmx, "EPT_MISCONFIG"), 49U);
  EXPECT_EQ(names.Code(kSvm, "npf"), 0x400U);
  EXPECT_EQ(names.Code(kSvm, "PF excp"), 0x4eU);
  EXPECT_EQ(names.Code(kSvm, "invalid_guest_state"), 0xffffffffU);
  EXPECT_FALSE(names.Code(kVmx, "FAILED_VMENTRY").has_value());
}

TEST(ReasonNamesName, FailedVmentryAppendsToTheBasicReason) {
  for (const ReasonNames& names : {ParseFixture(), ReasonNames::FromUapiHeaders()}) {
    EXPECT_EQ(names.Name(kVmx, kFailedVmentry | 33), "INVALID_STATE FAILED_VMENTRY");
    EXPECT_EQ(names.Name(kVmx, kFailedVmentry | 41), "MCE_DURING_VMENTRY FAILED_VMENTRY");
    EXPECT_EQ(names.Name(kVmx, kFailedVmentry | 0x7fff), "unknown FAILED_VMENTRY");
  }
}

TEST(ReasonNamesName, SvmCodesWithBit31AreOrdinaryCodes) {
  const ReasonNames names = ParseFixture();
  EXPECT_EQ(names.Name(kSvm, 0x80000001), "vmgexit_mmio_read");
  EXPECT_EQ(names.Name(kSvm, 0xffffffff), "invalid_guest_state");
  EXPECT_EQ(names.Name(kSvm, 0x80000000), "unknown");
}

TEST(ReasonNamesName, UnknownCodesAndIsas) {
  const ReasonNames names = ParseFixture();
  EXPECT_EQ(names.Name(kVmx, 11), "unknown");  // GETSEC: not in KVM's table
  EXPECT_EQ(names.Name(kVmx, 999), "unknown");
  EXPECT_EQ(names.Name(kSvm, 0x12345), "unknown");
  EXPECT_EQ(names.Name(4, 0), "unknown");
  EXPECT_EQ(names.Size(4), 0U);
  EXPECT_TRUE(names.Entries(0).empty());
  EXPECT_FALSE(names.Find(4, 0).has_value());
  EXPECT_FALSE(names.Code(kVmx, "no such reason").has_value());
}

TEST(ReasonNamesName, IsaLabels) {
  EXPECT_EQ(IsaLabel(1), "vmx");
  EXPECT_EQ(IsaLabel(2), "svm");
  EXPECT_EQ(IsaLabel(3), "arm64");
  EXPECT_EQ(IsaLabel(0), "isa0");
  EXPECT_EQ(IsaLabel(7), "isa7");
}

TEST(ReasonNamesParse, ToleratesWhitespaceNewlinesAndExpressions) {
  const std::string format =
      "print fmt: \"%s\", ( REC->isa==1 )\n ?\t__print_symbolic( REC->exit_reason & 0xffff,\n"
      "{0,\"A\"},{ 0x0A , \"B\" } ,\n\t{ 0x10 + 2 + 1, \"C (x)\" }, { 40 - 8, \"D\\\"q\" } )\n"
      " :\n__print_symbolic(REC->exit_reason, { 0x040 + 14, \"PF excp\" }, { -1, \"err\" },"
      " { 0X7B, \"io\" }, )\n";
  std::string error;
  const auto names = ReasonNames::FromTracepointFormat(format, &error);
  ASSERT_TRUE(names.has_value()) << error;
  EXPECT_EQ(names->Name(kVmx, 0), "A");
  EXPECT_EQ(names->Name(kVmx, 10), "B");
  EXPECT_EQ(names->Name(kVmx, 19), "C (x)");
  EXPECT_EQ(names->Name(kVmx, 32), "D\"q");
  EXPECT_EQ(names->Name(kSvm, 0x4e), "PF excp");
  EXPECT_EQ(names->Name(kSvm, 0xffffffff), "err");
  EXPECT_EQ(names->Name(kSvm, 0x7b), "io");
}

TEST(ReasonNamesParse, ConditionOnSvmSwapsTheTables) {
  const std::string format =
      "print fmt: \"%s\", (REC->isa == 2) ? __print_symbolic(REC->exit_reason, { 0x78, \"hlt\" }) "
      ": __print_symbolic(REC->exit_reason & 0xffff, { 12, \"HLT\" })";
  std::string error;
  const auto names = ReasonNames::FromTracepointFormat(format, &error);
  ASSERT_TRUE(names.has_value()) << error;
  EXPECT_EQ(names->Code(kSvm, "hlt"), 0x78U);
  EXPECT_EQ(names->Code(kVmx, "HLT"), 12U);
}

TEST(ReasonNamesParse, FirstNameWinsForARepeatedCode) {
  std::string error;
  const auto names = ReasonNames::FromTracepointFormat(
      MinimalFormat("{ 1, \"first\" }, { 1, \"second\" }", "{ 1, \"x\" }"), &error);
  ASSERT_TRUE(names.has_value()) << error;
  EXPECT_EQ(names->Name(kVmx, 1), "first");
}

TEST(ReasonNamesParse, RejectsGarbage) {
  EXPECT_NE(ParseError("").find("print fmt"), std::string::npos);
  EXPECT_NE(ParseError("garbage \x01\xff{{(").find("print fmt"), std::string::npos);
  EXPECT_NE(ParseError("print fmt: \"%d\", REC->x").find("no vmx exit reason table"),
            std::string::npos);
  EXPECT_NE(ParseError(MinimalFormat("{ 1, \"A\" }", "")).find("without entries"),
            std::string::npos);
  EXPECT_NE(ParseError(MinimalFormat("{ 0xZZ, \"A\" }", "{ 1, \"a\" }")).find("0xZZ"),
            std::string::npos);
  EXPECT_NE(ParseError(MinimalFormat("{ 0x1ffffffff, \"A\" }", "{ 1, \"a\" }")).find("0x1ffff"),
            std::string::npos);
  EXPECT_NE(ParseError(MinimalFormat("{ 0xffffffff + 1, \"A\" }", "{ 1, \"a\" }"))
                .find("does not fit in 32 bits"),
            std::string::npos);
  EXPECT_NE(ParseError(MinimalFormat("{ 1 2, \"A\" }", "{ 1, \"a\" }")).find("expected '+'"),
            std::string::npos);
  EXPECT_NE(ParseError(MinimalFormat("{ 1, A }", "{ 1, \"a\" }")).find("quoted reason name"),
            std::string::npos);
  EXPECT_NE(ParseError(MinimalFormat("{ 1, \"\" }", "{ 1, \"a\" }")).find("empty reason name"),
            std::string::npos);
  EXPECT_NE(ParseError(MinimalFormat("{ 1 }", "{ 1, \"a\" }")).find("expected { value"),
            std::string::npos);
  EXPECT_NE(
      ParseError(MinimalFormat("{ 1, \"A\" } { 2, \"B\" }", "{ 1, \"a\" }")).find("expected ','"),
      std::string::npos);
  EXPECT_NE(ParseError(MinimalFormat("{ 1, \"A\" }, 7", "{ 1, \"a\" }")).find("expected '{'"),
            std::string::npos);
  EXPECT_NE(
      ParseError(MinimalFormat("{ 1, \"A\" ), { 2, \"B\" }", "{ 1, \"a\" }")).find("unbalanced"),
      std::string::npos);
  EXPECT_NE(ParseError(MinimalFormat("{ 1, \"A }", "{ 1, \"a\" }")).find("unterminated"),
            std::string::npos);
}

TEST(ReasonNamesParse, RejectsTwoTablesForOneIsa) {
  const std::string format =
      "print fmt: \"%s\", (REC->isa == 1) ? __print_symbolic(REC->exit_reason, { 1, \"A\" }) : "
      "__print_symbolic(REC->exit_reason, { 1, \"a\" }), (REC->isa == 1) ? "
      "__print_symbolic(REC->exit_reason, { 2, \"B\" }) : \"\"";
  EXPECT_NE(ParseError(format).find("more than one vmx"), std::string::npos);
}

TEST(ReasonNamesParse, NullErrorPointerIsAllowed) {
  EXPECT_FALSE(ReasonNames::FromTracepointFormat("nonsense", nullptr).has_value());
  EXPECT_TRUE(ReasonNames::FromTracepointFormat(Fixture618(), nullptr).has_value());
}

// Every prefix of the real format that cuts into the tables must fail cleanly.
TEST(ReasonNamesParse, EveryTruncationFailsCleanly) {
  const std::string& text = Fixture618();
  const std::size_t tables_end = text.find("\"invalid_guest_state\" })");
  ASSERT_NE(tables_end, std::string::npos);
  for (std::size_t length = 0; length < text.size(); ++length) {
    std::string error;
    const auto names = ReasonNames::FromTracepointFormat(text.substr(0, length), &error);
    if (length <= tables_end + std::string_view("\"invalid_guest_state\" }").size()) {
      EXPECT_FALSE(names.has_value()) << "length " << length;
    }
    if (!names) {
      EXPECT_FALSE(error.empty()) << "length " << length;
    }
  }
}

// Random byte edits of the real format: any outcome but a crash or a silent empty table.
TEST(ReasonNamesParse, SurvivesRandomCorruption) {
  std::mt19937 random(12345);
  const std::string& original = Fixture618();
  std::uniform_int_distribution<std::size_t> position(0, original.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int round = 0; round < 3000; ++round) {
    std::string text = original;
    for (int edit = 0; edit < 1 + round % 8; ++edit) {
      text[position(random)] = static_cast<char>(byte(random));
    }
    std::string error;
    const auto names = ReasonNames::FromTracepointFormat(text, &error);
    if (names) {
      EXPECT_GT(names->Size(kVmx), 0U);
      EXPECT_GT(names->Size(kSvm), 0U);
    } else {
      EXPECT_FALSE(error.empty());
    }
  }
}

class ReasonNamesLoad : public testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("reason_names_test." + std::to_string(::getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void WriteFormat(std::string_view text) {
    const auto dir = root_ / "events/kvm/kvm_exit";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "format", std::ios::binary) << text;
  }

  std::filesystem::path root_;
};

TEST_F(ReasonNamesLoad, UsesTheKernelFormatWhenPresent) {
  WriteFormat(Fixture618());
  std::string note;
  const ReasonNames names = ReasonNames::Load(root_.string(), &note);
  EXPECT_EQ(names.origin(), ReasonNames::Origin::kKernelTracepoint);
  EXPECT_EQ(names.Name(kVmx, 85), "MSR_WRITE_IMM");
  EXPECT_NE(note.find((root_ / "events/kvm/kvm_exit/format").string()), std::string::npos);
}

TEST_F(ReasonNamesLoad, FallsBackToUapiWhenKvmIsNotLoaded) {
  std::string note;
  const ReasonNames names = ReasonNames::Load(root_.string(), &note);
  EXPECT_EQ(names.origin(), ReasonNames::Origin::kUapiHeaders);
  EXPECT_EQ(names.Code(kVmx, "HLT"), 12U);
  EXPECT_NE(note.find("kvm not loaded or tracefs not mounted at " + root_.string()),
            std::string::npos)
      << note;
  EXPECT_NE(note.find("uapi"), std::string::npos) << note;
}

TEST_F(ReasonNamesLoad, FallsBackToUapiWhenTheFormatIsUnparsable) {
  WriteFormat(Fixture618().substr(0, 2000));
  std::string note;
  const ReasonNames names = ReasonNames::Load(root_.string(), &note);
  EXPECT_EQ(names.origin(), ReasonNames::Origin::kUapiHeaders);
  EXPECT_NE(note.find("cannot parse"), std::string::npos) << note;
}

TEST_F(ReasonNamesLoad, FallsBackToUapiWhenTheFormatIsUnreadable) {
  std::filesystem::create_directories(root_ / "events/kvm/kvm_exit/format");  // a directory
  std::string note;
  const ReasonNames names = ReasonNames::Load(root_.string(), &note);
  EXPECT_EQ(names.origin(), ReasonNames::Origin::kUapiHeaders);
  EXPECT_NE(note.find("cannot read"), std::string::npos) << note;
  EXPECT_NE(note.find("Is a directory"), std::string::npos) << note;
}

TEST_F(ReasonNamesLoad, NullNoteIsAllowed) {
  EXPECT_EQ(ReasonNames::Load(root_.string(), nullptr).origin(), ReasonNames::Origin::kUapiHeaders);
}

TEST(ReasonNamesArm64, TrapsByExceptionClassOtherExitsByType) {
  std::string error;
  const auto names = ReasonNames::FromTracepointFormat(FixtureArm64(), &error);
  ASSERT_TRUE(names.has_value()) << error;
  EXPECT_EQ(names->origin(), ReasonNames::Origin::kKernelTracepoint);
  EXPECT_EQ(names->Name(kArm64, 0x24), "DABT_LOW");
  EXPECT_EQ(names->Name(kArm64, 0x16), "HVC64");
  EXPECT_EQ(names->Name(kArm64, 0x18), "SYS64");
  EXPECT_EQ(names->Name(kArm64, 0x01), "WFx");
  EXPECT_EQ(names->Name(kArm64, 0x0c), "CP14_64");  // written (0x0C) by the kernel
  EXPECT_EQ(names->Name(kArm64, kArm64NotTrap + 0), "IRQ");
  EXPECT_EQ(names->Name(kArm64, kArm64NotTrap + 1), "SERROR");
  EXPECT_EQ(names->Name(kArm64, kArm64NotTrap + 0xbadca11), "HYP_GONE");
  // TRAP is never a reason of its own: its exits are named by their class.
  EXPECT_FALSE(names->Find(kArm64, kArm64NotTrap + 2).has_value());
  EXPECT_EQ(names->Name(kArm64, 0x3f), "unknown");
  // 34 classes and three other types, as the kernel prints them.
  EXPECT_EQ(names->Size(kArm64), 34U + 3U);
  // The x86 names stay known, for a fleet's one configuration.
  EXPECT_EQ(names->Code(kVmx, "EPT_MISCONFIG"), 49U);
  EXPECT_EQ(names->Code(kSvm, "npf"), 0x400U);
}

TEST(ReasonNamesArm64, BuiltInTableAgreesWithTheKernel) {
  const auto kernel = ReasonNames::FromTracepointFormat(FixtureArm64(), nullptr);
  ASSERT_TRUE(kernel.has_value());
  const ReasonNames built_in = ReasonNames::FromUapiHeaders();
  for (const auto& [code, name] : kernel->Entries(kArm64)) {
    EXPECT_EQ(built_in.Find(kArm64, code), name) << code;
  }
  // The x86 formats' parse keeps arm64's built-in names, for the config.
  EXPECT_EQ(ParseFixture().Code(kArm64, "DABT_LOW"), 0x24U);
}

TEST(ReasonNamesArm64, ClassesWithoutTypesAreRefused) {
  const std::string error = ParseError(
      "print fmt: \"%x\", REC->esr_ec, __print_symbolic(REC->esr_ec, { (0x24), \"DABT_LOW\" })");
  EXPECT_NE(error.find("ret"), std::string::npos) << error;
}

}  // namespace
}  // namespace kvmexit
