// SPDX-License-Identifier: Apache-2.0
// The real BPF program on the running kernel: load, attach, batch reads,
// atomic removal. Counting real exits needs a nested VM (tests/e2e).
#include "bpf_exit_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

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

// BPF programs this process holds: distinct prog_id of its program and link fds.
int OpenBpfPrograms() {
  std::set<std::string> ids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fdinfo")) {
    std::ifstream info(entry.path());
    std::string line;
    while (std::getline(info, line)) {
      if (line.rfind("prog_id:", 0) == 0) ids.insert(line);
    }
  }
  return static_cast<int>(ids.size());
}

TEST(BpfSourceTest, LoadsTheKvmEntryProgramOnlyWithExitHandlingTime) {
  RequireKernelSupport();
  const int before = OpenBpfPrograms();
  for (const bool timing : {true, false}) {
    SCOPED_TRACE(timing ? "exit_handling_time: true" : "exit_handling_time: false");
    BpfExitSource source(
        {.tracefs_root = kTracefs, .vm_map_capacity = 1024, .exit_handling_time = timing});
    if (std::string error = source.Attach(); !error.empty()) GTEST_SKIP() << error;
    // The kvm_exit program, plus the kvm_entry program of the same hook when timing.
    EXPECT_EQ(OpenBpfPrograms() - before, timing ? 2 : 1);
    ExitSnapshot snapshot;
    ASSERT_EQ(source.Read(&snapshot), "");
    EXPECT_EQ(snapshot.timing, timing);
    EXPECT_EQ(snapshot.timing_lost, 0u);
  }
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

TEST(BpfSourceTest, RemovedCountersGoBackToTheFreeList) {
  RequireKernelSupport();
  // The capacity's minimum: 16 counters, each taken by one key.
  BpfExitSource source({.tracefs_root = kTracefs, .vm_map_capacity = 16});
  if (std::string error = source.Attach(); !error.empty()) GTEST_SKIP() << error;
  std::vector<VmExitCount> filled;
  for (std::uint32_t reason = 0; reason < 16; ++reason) {
    filled.push_back({vm_exit_key{7'200'000, KVM_EXIT_ALL_VCPUS, KVM_EXIT_ISA_SVM, reason}, 10});
  }
  ASSERT_EQ(source.FillForTesting(filled), "");
  const VmExitCount late{vm_exit_key{7'200'001, KVM_EXIT_ALL_VCPUS, KVM_EXIT_ISA_SVM, 0x7b}, 3};
  EXPECT_THAT(source.FillForTesting({late}), HasSubstr("no free counter"));

  const std::vector<VmExitCount> removed = source.Remove({filled[4].key, filled[9].key});
  ASSERT_EQ(removed.size(), 2u);
  EXPECT_EQ(removed[0].count, 10u);
  EXPECT_EQ(removed[1].count, 10u);
  // Freed: the next key gets one, and the snapshot holds the rest unchanged.
  ASSERT_EQ(source.FillForTesting({late}), "");
  ExitSnapshot snapshot;
  ASSERT_EQ(source.Read(&snapshot), "");
  EXPECT_EQ(CountOf(snapshot, late.key), 3u);
  EXPECT_EQ(CountOf(snapshot, filled[4].key), 0u);
  EXPECT_EQ(CountOf(snapshot, filled[0].key), 10u);
  EXPECT_EQ(CountOf(snapshot, filled[15].key), 10u);
  std::size_t ours = 0;
  for (const VmExitCount& entry : snapshot.vm_counts) ours += entry.key.tgid >= 7'200'000;
  EXPECT_EQ(ours, 15u);
}

TEST(BpfSourceTest, FreeCountersAreHandedOutInChunksUpToTheCapacity) {
  RequireKernelSupport();
  // One chunk (65,536) and 10 more: attaching frees the chunk only.
  BpfExitSource source({.tracefs_root = kTracefs, .vm_map_capacity = 65'546});
  if (std::string error = source.Attach(); !error.empty()) GTEST_SKIP() << error;
  EXPECT_EQ(source.counters_freed(), 65'536u);
  EXPECT_EQ(source.ReplenishFreeCounters(32'768), "");
  EXPECT_EQ(source.counters_freed(), 65'536u) << "half a chunk left: enough";
  EXPECT_EQ(source.ReplenishFreeCounters(32'769), "");
  EXPECT_EQ(source.counters_freed(), 65'546u) << "fewer than half a chunk left: the rest";
  EXPECT_EQ(source.ReplenishFreeCounters(65'546), "");
  EXPECT_EQ(source.counters_freed(), 65'546u) << "never beyond the capacity";

  std::vector<VmExitCount> filled;
  for (std::uint32_t i = 0; i < 65'546; ++i) {
    filled.push_back(
        {vm_exit_key{7'300'000 + i / 64, KVM_EXIT_ALL_VCPUS, KVM_EXIT_ISA_SVM, i % 64}, 1});
  }
  ASSERT_EQ(source.FillForTesting(filled), "");
  const VmExitCount late{vm_exit_key{7'400'000, KVM_EXIT_ALL_VCPUS, KVM_EXIT_ISA_SVM, 0x7b}, 1};
  EXPECT_THAT(source.FillForTesting({late}), HasSubstr("no free counter"));
  ExitSnapshot snapshot;
  ASSERT_EQ(source.Read(&snapshot), "");
  std::size_t ours = 0;
  for (const VmExitCount& entry : snapshot.vm_counts) ours += entry.key.tgid >= 7'300'000;
  EXPECT_EQ(ours, filled.size());
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

// A scratch /sys look-alike holding only what FindVendorModule and the BTF check read.
class FakeSysRoot {
 public:
  FakeSysRoot() {
    char dir[] = "/tmp/kvmexit-sys-XXXXXX";
    if (::mkdtemp(dir) != nullptr) path_ = dir;
  }
  ~FakeSysRoot() { std::filesystem::remove_all(path_); }
  FakeSysRoot(const FakeSysRoot&) = delete;
  FakeSysRoot& operator=(const FakeSysRoot&) = delete;

  void AddModule(const std::string& name) {
    std::filesystem::create_directories(path_ + "/module/" + name);
  }
  void AddModuleBtf(const std::string& name) {
    std::filesystem::create_directories(path_ + "/kernel/btf");
    std::ofstream(path_ + "/kernel/btf/" + name) << "not BTF";
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Attaches with `hook` and the fake /sys; skips where kvm:kvm_exit does not exist.
std::string AttachWith(BpfExitSource& source) {
  std::string error = source.Attach();
  if (error.find("kvm module is not loaded") != std::string::npos) error = "skip: " + error;
  return error;
}

TEST(BpfSourceHookTest, TracepointHookAttachesTheClassicTracepoint) {
  RequireKernelSupport();
  FakeSysRoot sys;
  sys.AddModule("kvm_amd");
  sys.AddModuleBtf("kvm_amd");
  BpfExitSource source({.tracefs_root = kTracefs,
                        .vm_map_capacity = 1024,
                        .hook = KernelHook::kTracepoint,
                        .sys_root = sys.path()});
  const std::string error = AttachWith(source);
  if (error.starts_with("skip: ")) GTEST_SKIP() << error;
  ASSERT_EQ(error, "");
  EXPECT_EQ(source.hook(), "tracepoint");
  EXPECT_EQ(source.hook_note(), "kernel.hook is tracepoint");
}

TEST(BpfSourceHookTest, AutoWithoutAVendorModuleFallsBackToTheTracepoint) {
  RequireKernelSupport();
  FakeSysRoot sys;  // no kvm_amd, no kvm_intel (as on a host whose KVM is neither)
  BpfExitSource source({.tracefs_root = kTracefs, .vm_map_capacity = 1024, .sys_root = sys.path()});
  const std::string error = AttachWith(source);
  if (error.starts_with("skip: ")) GTEST_SKIP() << error;
  ASSERT_EQ(error, "");
  EXPECT_EQ(source.hook(), "tracepoint");
  EXPECT_THAT(source.hook_note(), HasSubstr("neither kvm_amd nor kvm_intel is loaded"));
}

// auto tries tp_btf on kvm_intel as on kvm_amd (the Bochs suite, tests/e2e
// run_e2e_vmx.sh, checks its VMX exits exactly). The fake /sys says kvm_intel
// has BTF, but the running kernel's BTF has no struct vcpu_vmx: the attempt
// fails in the verifier and auto falls back to the tracepoint.
TEST(BpfSourceHookTest, AutoOnIntelTriesTpBtf) {
  RequireKernelSupport();
  if (std::filesystem::exists("/sys/module/kvm_intel")) {
    GTEST_SKIP() << "kvm_intel is loaded here: tp_btf would load (tests/e2e checks that path)";
  }
  FakeSysRoot sys;
  sys.AddModule("kvm_intel");
  sys.AddModuleBtf("kvm_intel");
  BpfExitSource source({.tracefs_root = kTracefs, .vm_map_capacity = 1024, .sys_root = sys.path()});
  const std::string error = AttachWith(source);
  if (error.starts_with("skip: ")) GTEST_SKIP() << error;
  ASSERT_EQ(error, "");
  EXPECT_EQ(source.hook(), "tracepoint");
  EXPECT_THAT(source.hook_note(), HasSubstr("tp_btf failed: loading the BPF program for "
                                            "tp_btf/kvm_exit failed"));
  if (std::filesystem::exists("/sys/kernel/btf/kvm")) {
    EXPECT_THAT(source.hook_note(), HasSubstr("vcpu_vmx"));
  }
}

TEST(BpfSourceHookTest, ForcedTpBtfWithoutModuleBtfIsAClearError) {
  RequireKernelSupport();
  FakeSysRoot sys;
  sys.AddModule("kvm_amd");  // loaded, but no /sys/kernel/btf/kvm_amd
  BpfExitSource source(
      {.tracefs_root = kTracefs, .hook = KernelHook::kTpBtf, .sys_root = sys.path()});
  const std::string error = AttachWith(source);
  if (error.starts_with("skip: ")) GTEST_SKIP() << error;
  EXPECT_THAT(error, HasSubstr("kernel.hook is tp_btf, but the kernel has no BTF for kvm_amd"));
  EXPECT_THAT(error, HasSubstr("CONFIG_DEBUG_INFO_BTF_MODULES"));
  EXPECT_THAT(error, HasSubstr("kernel.hook: tracepoint"));
  EXPECT_FALSE(source.attached());
}

// The fake /sys says kvm_amd has BTF, but the running kernel's BTF has no
// struct vcpu_svm: CO-RE cannot relocate the program, the verifier refuses it,
// and auto must fall back rather than count wrong reasons.
TEST(BpfSourceHookTest, AutoFallsBackWhenTpBtfCannotLoad) {
  RequireKernelSupport();
  if (std::filesystem::exists("/sys/module/kvm_amd")) {
    GTEST_SKIP() << "kvm_amd is loaded here: tp_btf would load (tests/e2e checks that path)";
  }
  FakeSysRoot sys;
  sys.AddModule("kvm_amd");
  sys.AddModuleBtf("kvm_amd");
  BpfExitSource source({.tracefs_root = kTracefs, .vm_map_capacity = 1024, .sys_root = sys.path()});
  const std::string error = AttachWith(source);
  if (error.starts_with("skip: ")) GTEST_SKIP() << error;
  ASSERT_EQ(error, "");
  EXPECT_EQ(source.hook(), "tracepoint");
  EXPECT_THAT(source.hook_note(), HasSubstr("tp_btf failed: loading the BPF program for "
                                            "tp_btf/kvm_exit failed"));
  std::printf("fallback note: %s\n", source.hook_note().c_str());
  if (std::filesystem::exists("/sys/kernel/btf/kvm")) {
    // kvm's BTF has the tracepoint but no struct vcpu_svm: the note carries the
    // verifier's own verdict, not just libbpf's "program load failed".
    EXPECT_THAT(source.hook_note(), HasSubstr("CO-RE relocation"));
    EXPECT_THAT(source.hook_note(), HasSubstr("vcpu_svm"));
  }

  BpfExitSource forced(
      {.tracefs_root = kTracefs, .hook = KernelHook::kTpBtf, .sys_root = sys.path()});
  EXPECT_THAT(forced.Attach(), HasSubstr("loading the BPF program for tp_btf/kvm_exit failed"));
  EXPECT_FALSE(forced.attached());
}

}  // namespace
}  // namespace kvmexit
