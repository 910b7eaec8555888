// The real BPF program on the running kernel: load, attach, batch reads,
// atomic removal. Counting real exits needs a nested VM (tests/e2e).
#include "bpf_exit_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace kvmexit {
namespace {

using ::testing::HasSubstr;

constexpr const char* kTracefs = "/sys/kernel/tracing";

// Skips (saying why) only where the kernel truly lacks what the test needs.
void RequireKernelSupport() {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs";
  struct stat st {};
  if (::stat("/sys/kernel/btf/vmlinux", &st) != 0) GTEST_SKIP() << "kernel has no BTF";
}

std::uint64_t CountOf(const ExitSnapshot& snapshot, const vm_exit_key& key) {
  for (const VmExitCount& entry : snapshot.vm_counts) {
    if (std::memcmp(&entry.key, &key, sizeof(key)) == 0) return entry.count;
  }
  return 0;
}

TEST(BpfSourceTest, LoadsAndAttachesToKvmExit) {
  RequireKernelSupport();
  BpfExitSource source({.tracefs_root = kTracefs, .vm_map_capacity = 1024});
  const std::string error = source.Attach();
  if (error.find("kvm module is not loaded") != std::string::npos) {
    GTEST_SKIP() << "this kernel has no kvm:kvm_exit tracepoint: " << error;
  }
  ASSERT_EQ(error, "");
  EXPECT_TRUE(source.attached());
  ExitSnapshot snapshot;
  ASSERT_EQ(source.Read(&snapshot), "");
  EXPECT_EQ(snapshot.vm_map_capacity, 1024u);
  EXPECT_EQ(snapshot.overflow_capacity, static_cast<std::uint32_t>(KVM_EXIT_OVERFLOW_CAPACITY));
  EXPECT_EQ(snapshot.lost, 0u);
}

TEST(BpfSourceTest, BatchReadReturnsEveryEntryExactly) {
  RequireKernelSupport();
  BpfExitSource source({.tracefs_root = kTracefs, .vm_map_capacity = 8192});
  if (std::string error = source.Attach(); !error.empty()) GTEST_SKIP() << error;
  // More entries than one batch (1024) so the batch continuation is exercised.
  std::vector<VmExitCount> filled;
  for (std::uint32_t vm = 0; vm < 300; ++vm) {
    for (std::uint32_t reason = 0; reason < 10; ++reason) {
      filled.push_back(
          {vm_exit_key{7'000'000 + vm, KVM_EXIT_ALL_VCPUS, KVM_EXIT_ISA_SVM, 0x60 + reason},
           1000ULL * vm + reason});
    }
  }
  ASSERT_EQ(source.FillForTesting(filled), "");
  ExitSnapshot snapshot;
  ASSERT_EQ(source.Read(&snapshot), "");
  std::size_t ours = 0;
  for (const VmExitCount& entry : snapshot.vm_counts) ours += entry.key.tgid >= 7'000'000;
  EXPECT_EQ(ours, filled.size());
  for (const VmExitCount& expected : filled) {
    ASSERT_EQ(CountOf(snapshot, expected.key), expected.count);
  }
}

TEST(BpfSourceTest, RemoveReturnsTheCountsItDeleted) {
  RequireKernelSupport();
  BpfExitSource source({.tracefs_root = kTracefs, .vm_map_capacity = 64});
  if (std::string error = source.Attach(); !error.empty()) GTEST_SKIP() << error;
  const vm_exit_key io{7'100'000, KVM_EXIT_ALL_VCPUS, KVM_EXIT_ISA_SVM, 0x7b};
  const vm_exit_key hlt{7'100'000, KVM_EXIT_ALL_VCPUS, KVM_EXIT_ISA_SVM, 0x78};
  ASSERT_EQ(source.FillForTesting({{io, 1234}, {hlt, 1}}), "");
  const std::vector<VmExitCount> removed = source.Remove({io, hlt});
  ASSERT_EQ(removed.size(), 2u);
  EXPECT_EQ(removed[0].count, 1234u);
  EXPECT_EQ(removed[1].count, 1u);
  ExitSnapshot snapshot;
  ASSERT_EQ(source.Read(&snapshot), "");
  EXPECT_EQ(CountOf(snapshot, io), 0u);
  EXPECT_TRUE(source.Remove({io}).empty());  // already gone
}

TEST(BpfSourceTest, MissingTracepointSaysKvmIsNotLoaded) {
  RequireKernelSupport();
  char dir[] = "/tmp/kvmexit-tracefs-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  ::mkdir((std::string(dir) + "/events").c_str(), 0755);
  BpfExitSource source({.tracefs_root = dir});
  const std::string error = source.Attach();
  EXPECT_THAT(error, HasSubstr("kvm:kvm_exit not found"));
  EXPECT_THAT(error, HasSubstr("modprobe kvm_intel or kvm_amd"));
  EXPECT_FALSE(source.attached());
  ExitSnapshot snapshot;
  EXPECT_EQ(source.Read(&snapshot), "BPF program not attached");
  ::rmdir((std::string(dir) + "/events").c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace kvmexit
