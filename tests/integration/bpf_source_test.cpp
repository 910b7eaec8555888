// SPDX-License-Identifier: Apache-2.0
// The real BPF program on the running kernel: load, attach, batch reads,
// atomic removal. Counting real exits needs a nested VM (tests/e2e).
#include "source/bpf_exit_source.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "source/hook_choice.h"
#include "source/libbpf_log.h"

namespace kvmexit {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

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

// The name and kind of type `id`, and of what it refers to (its members'
// types for a struct or union), resolved in `btf`: equal in a module's BTF and
// in the merged copy exactly when the copy's type ids were shifted right.
std::string Describe(const btf* btf, std::uint32_t id) {
  const btf_type* type = btf__type_by_id(btf, id);
  if (type == nullptr) return "<no type " + std::to_string(id) + ">";
  const auto name_of = [btf](std::uint32_t ref) {
    const btf_type* t = btf__type_by_id(btf, ref);
    return t == nullptr ? std::string("<none>")
                        : std::to_string(btf_kind(t)) + ":" + btf__name_by_offset(btf, t->name_off);
  };
  std::string text = name_of(id);
  if (btf_is_composite(type)) {
    const btf_member* member = btf_members(type);
    for (std::uint16_t i = 0; i < btf_vlen(type); ++i) text += " " + name_of(member[i].type);
  } else if (btf_is_ptr(type) || btf_is_typedef(type) || btf_is_func(type) || btf_is_mod(type)) {
    text += " -> " + name_of(type->type);
  }
  return text;
}

// The CO-RE BTF for an unprivileged load: vmlinux + kvm + a vendor module in
// one standalone BTF whose every module type reads as in the module's own BTF.
TEST(CoreBtfTest, MergesVmlinuxKvmAndTheVendorModule) {
  const std::string dir = "/sys/kernel/btf";
  if (!std::filesystem::exists(dir + "/kvm")) GTEST_SKIP() << "no kvm module BTF here";
  std::string vendor;
  for (const char* name : {"kvm_amd", "kvm_intel"}) {
    if (std::filesystem::exists(dir + "/" + name)) vendor = name;
  }
  // Any other kvm vendor module tests the id shift as well.
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename();
    if (vendor.empty() && name.starts_with("kvm_")) vendor = name;
  }
  if (vendor.empty()) GTEST_SKIP() << "no kvm vendor module BTF here";

  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  const auto start = std::chrono::steady_clock::now();
  const CoreBtf core = BuildCoreBtf(dir, vendor);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  ASSERT_EQ(core.error, "");
  ASSERT_FALSE(core.path.empty());
  std::printf("%s; %lld ms here, peak RSS %ld -> %ld KiB\n", core.note.c_str(),
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()),
              before.ru_maxrss, after.ru_maxrss);
  EXPECT_THAT(core.note, HasSubstr("vmlinux+kvm+" + vendor));

  const std::unique_ptr<btf, void (*)(btf*)> merged(btf__parse(core.path.c_str(), nullptr),
                                                    btf__free);
  ASSERT_NE(merged, nullptr);
  const std::unique_ptr<btf, void (*)(btf*)> vmlinux(
      btf__parse((dir + "/vmlinux").c_str(), nullptr), btf__free);
  ASSERT_NE(vmlinux, nullptr);
  const std::uint32_t first = btf__type_cnt(vmlinux.get());
  std::uint32_t shift = 0;
  for (const std::string& name : {std::string("kvm"), vendor}) {
    SCOPED_TRACE(name);
    const std::unique_ptr<btf, void (*)(btf*)> module(
        btf__parse_split((dir + "/" + name).c_str(), vmlinux.get()), btf__free);
    ASSERT_NE(module, nullptr);
    const std::uint32_t end = btf__type_cnt(module.get());
    int mismatches = 0;
    for (std::uint32_t id = first; id < end; ++id) {
      const std::string want = Describe(module.get(), id);
      const std::string got = Describe(merged.get(), id + shift);
      if (want != got && ++mismatches <= 3) ADD_FAILURE() << id << ": " << want << " vs " << got;
    }
    EXPECT_EQ(mismatches, 0);
    shift += end - first;
  }
  EXPECT_EQ(btf__type_cnt(merged.get()), first + shift);
  // What the exit program relocates against.
  EXPECT_GT(btf__find_by_name_kind(merged.get(), "kvm_vcpu", BTF_KIND_STRUCT), 0);
  EXPECT_GT(btf__find_by_name_kind(merged.get(), "trace_event_raw_kvm_exit", BTF_KIND_STRUCT), 0);
}

// The same with made-up BTF, wherever this runs: two split modules on one
// base, the second's ids shifted past the first's, every kind that refers to
// a type included.
TEST(CoreBtfTest, ShiftsTheSecondModulesTypeIds) {
  char dir_template[] = "/tmp/kvmexit-btf-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  using BtfPtr = std::unique_ptr<btf, void (*)(btf*)>;
  const auto write = [&](const btf* b, const std::string& name) {
    std::uint32_t size = 0;
    const void* raw = btf__raw_data(b, &size);
    std::ofstream(dir + "/" + name, std::ios::binary)
        .write(static_cast<const char*>(raw), static_cast<std::streamsize>(size));
  };
  BtfPtr base(btf__new_empty(), btf__free);
  const int u32 = btf__add_int(base.get(), "u32", 4, 0);  // 1
  const int task = btf__add_struct(base.get(), "task_struct", 4);
  btf__add_field(base.get(), "pid", u32, 0, 0);
  write(base.get(), "vmlinux");
  const std::uint32_t first = btf__type_cnt(base.get());

  // "kvm": a struct and a pointer to it.
  BtfPtr kvm(btf__new_empty_split(base.get()), btf__free);
  const int vcpu = btf__add_struct(kvm.get(), "kvm_vcpu", 8);
  btf__add_field(kvm.get(), "vcpu_id", u32, 0, 0);
  btf__add_field(kvm.get(), "task", btf__add_ptr(kvm.get(), task), 32, 0);
  write(kvm.get(), "kvm");

  // "vendor": refers to its own types in every kind that can.
  BtfPtr vendor(btf__new_empty_split(base.get()), btf__free);
  const int own_vcpu = btf__add_struct(vendor.get(), "kvm_vcpu", 4);
  btf__add_field(vendor.get(), "vcpu_id", u32, 0, 0);
  const int ptr = btf__add_ptr(vendor.get(), own_vcpu);
  const int array = btf__add_array(vendor.get(), u32, own_vcpu, 2);
  const int typedef_id = btf__add_typedef(vendor.get(), "vcpu_t", own_vcpu);
  const int konst = btf__add_const(vendor.get(), typedef_id);
  const int svm = btf__add_struct(vendor.get(), "vcpu_svm", 32);
  btf__add_field(vendor.get(), "vcpu", own_vcpu, 0, 0);
  btf__add_field(vendor.get(), "self", ptr, 64, 0);
  btf__add_field(vendor.get(), "pair", array, 128, 0);
  const int proto = btf__add_func_proto(vendor.get(), ptr);
  btf__add_func_param(vendor.get(), "svm", konst);
  btf__add_func(vendor.get(), "to_svm", BTF_FUNC_STATIC, proto);
  write(vendor.get(), "vendor");

  const CoreBtf core = BuildCoreBtf(dir, "vendor");
  ASSERT_EQ(core.error, "");
  BtfPtr merged(btf__parse(core.path.c_str(), nullptr), btf__free);
  ASSERT_NE(merged, nullptr);
  const std::uint32_t shift = btf__type_cnt(kvm.get()) - first;
  EXPECT_EQ(btf__type_cnt(merged.get()), btf__type_cnt(vendor.get()) + shift);
  EXPECT_EQ(Describe(merged.get(), vcpu), Describe(kvm.get(), vcpu));
  for (std::uint32_t id = first; id < btf__type_cnt(vendor.get()); ++id) {
    EXPECT_EQ(Describe(merged.get(), id + shift), Describe(vendor.get(), id)) << id;
  }
  const btf_type* array_type = btf__type_by_id(merged.get(), array + shift);
  EXPECT_EQ(btf_array(array_type)->type, own_vcpu + shift);
  EXPECT_EQ(btf_array(array_type)->index_type, static_cast<std::uint32_t>(u32));
  const btf_type* proto_type = btf__type_by_id(merged.get(), proto + shift);
  EXPECT_EQ(proto_type->type, ptr + shift);
  EXPECT_EQ(btf_params(proto_type)[0].type, konst + shift);
  EXPECT_EQ(btf__find_by_name_kind(merged.get(), "vcpu_svm", BTF_KIND_STRUCT), svm + shift);
  std::filesystem::remove_all(dir);
}

// libbpf's messages, as Attach reports them: the verifier's verdict is the
// line before "processed N insns"; a taken warning is forgotten.
TEST(LibbpfLogTest, VerifierVerdictIsTheLineBeforeProcessed) {
  EXPECT_EQ(VerifierVerdict("0: (79) r1 = *(u64 *)(r1 +0)\n"
                            "failed to resolve CO-RE relocation <byte_off> struct vcpu_svm.vcpu\n"
                            "processed 12 insns (limit 1000000) max_states_per_insn 0"),
            "failed to resolve CO-RE relocation <byte_off> struct vcpu_svm.vcpu");
  EXPECT_EQ(VerifierVerdict("invalid access\nprocessed 3 insns"), "invalid access");
  EXPECT_EQ(VerifierVerdict("failed to open: No such file or directory"), "");
}

TEST(LibbpfLogTest, TakeReturnsTheFirstWarningOnce) {
  CaptureLibbpfLog();
  TakeLibbpfWarning();  // whatever an earlier test left
  EXPECT_EQ(bpf_object__open_file("/nonexistent/kvmexit.bpf.o", nullptr), nullptr);
  bpf_object__open_file("/nonexistent/second.bpf.o", nullptr);
  const std::string warning = TakeLibbpfWarning();
  EXPECT_THAT(warning, HasSubstr("/nonexistent/kvmexit.bpf.o"));
  EXPECT_THAT(warning, ::testing::Not(HasSubstr("second")));
  EXPECT_FALSE(warning.starts_with("libbpf: "));
  EXPECT_EQ(TakeLibbpfWarning(), "");
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

// The order Attach tries the hooks in, without loading anything. The fake
// /sys has no kernel/btf/kvm (kvm built in), so tp_btf needs no CAP_SYS_ADMIN.
TEST(HookChoiceTest, AutoTriesTpBtfThenRawTpThenTheTracepoint) {
  FakeSysRoot sys;
  sys.AddModule("kvm_amd");
  sys.AddModuleBtf("kvm_amd");
  const HookChoice choice = ChooseHooks(KernelHook::kAuto, sys.path());
  ASSERT_EQ(choice.error, "");
  ASSERT_TRUE(choice.vendor.has_value());
  EXPECT_STREQ(choice.vendor->name, "kvm_amd");
  EXPECT_EQ(choice.vendor->isa, static_cast<std::uint32_t>(KVM_EXIT_ISA_SVM));
  std::vector<KernelHook> hooks;
  for (const HookAttempt& attempt : choice.attempts) {
    hooks.push_back(attempt.hook);
    EXPECT_EQ(attempt.passed_over, "");
  }
  EXPECT_EQ(hooks, (std::vector<KernelHook>{KernelHook::kTpBtf, KernelHook::kRawTp,
                                            KernelHook::kTracepoint}));
}

TEST(HookChoiceTest, ForcedRawTpWithoutAVendorModuleIsAnError) {
  FakeSysRoot sys;
  const HookChoice choice = ChooseHooks(KernelHook::kRawTp, sys.path());
  EXPECT_THAT(choice.error, StartsWith("kernel.hook is raw_tp, but neither kvm_amd nor kvm_intel "
                                       "is loaded"));
  EXPECT_TRUE(choice.attempts.empty());
}

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
  // The fake /sys has no vmlinux BTF: libbpf's own lookup follows, noted.
  EXPECT_THAT(source.hook_note(), StartsWith("kernel.hook is tracepoint"));
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
