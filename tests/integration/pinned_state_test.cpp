// SPDX-License-Identifier: Apache-2.0
// The pinned BPF state (kernel.state_path) on the running kernel, in a bpffs
// of the test's own: a restarted source adopts the programs and counts it
// finds, a state that does not fit (another layout, configuration, a missing
// or foreign map) is replaced by a fresh one and says why, a second source
// is refused, and a release leaves nothing attached. Exits themselves are
// counted through a restart in the nested suites (tests/e2e).
#include <bpf/bpf.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/types.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <string>
#include <vector>

#include "kvm_exit.h"
#include "source/bpf_exit_source.h"
#include "source/exporter_state_map.h"
#include "source/pinned_state.h"

namespace kvmexit {
namespace {

using ::testing::HasSubstr;

constexpr const char* kTracefs = "/sys/kernel/tracing";

std::uint64_t CountOf(const ExitSnapshot& snapshot, const vm_exit_key& key) {
  for (const VmExitCount& entry : snapshot.vm_counts) {
    if (std::memcmp(&entry.key, &key, sizeof(key)) == 0) return entry.count;
  }
  return 0;
}

// The kernel ids of the links pinned in `directory` (other tests may attach
// links of their own meanwhile: these ids are what this test made).
std::vector<std::uint32_t> PinnedLinkIds(const std::string& directory) {
  std::vector<std::uint32_t> ids;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    if (entry.path().filename().string().rfind("link_", 0) != 0) continue;
    const int fd = bpf_obj_get(entry.path().c_str());
    if (fd < 0) continue;
    bpf_link_info info{};
    std::uint32_t length = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &length) == 0) ids.push_back(info.id);
    ::close(fd);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// How many of `ids` still name a link in the kernel, once the kernel has
// had up to 5 s to free those whose last reference went.
int LinksAlive(const std::vector<std::uint32_t>& ids, bool wait_for_none) {
  int alive = 0;
  for (int attempt = 0; attempt < 50; ++attempt) {
    alive = 0;
    for (const std::uint32_t id : ids) {
      const int fd = bpf_link_get_fd_by_id(id);
      if (fd >= 0) {
        ++alive;
        ::close(fd);
      }
    }
    if (!wait_for_none || alive == 0) break;
    ::usleep(100'000);
  }
  return alive;
}

class PinnedStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs and mount bpffs";
    struct stat st {};
    if (::stat("/sys/kernel/btf/vmlinux", &st) != 0) GTEST_SKIP() << "kernel has no BTF";
    char pattern[] = "/tmp/kvmexit-bpffs-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    mount_point_ = pattern;
    ASSERT_EQ(::mount("bpf", mount_point_.c_str(), "bpf", 0, "mode=0700"), 0)
        << "mounting bpffs: " << std::strerror(errno);
    state_path_ = mount_point_ + "/kvm_exit_exporter";
  }
  void TearDown() override {
    if (mount_point_.empty()) return;
    ::umount2(mount_point_.c_str(), MNT_DETACH);
    ::rmdir(mount_point_.c_str());
  }

  BpfSourceOptions Options(std::uint32_t capacity = 1024) const {
    return {.tracefs_root = kTracefs,
            .vm_map_capacity = capacity,
            .exit_handling_time = true,
            .state_path = state_path_};
  }
  // Attaches `source`, skipping where this kernel has no kvm:kvm_exit.
  static void AttachOrSkip(BpfExitSource& source) {
    const std::string error = source.Attach();
    if (error.find("kvm module is not loaded") != std::string::npos) {
      GTEST_SKIP() << "this kernel has no kvm:kvm_exit tracepoint: " << error;
    }
    ASSERT_EQ(error, "");
  }
  std::string Pin(const std::string& name) const { return state_path_ + "/" + name; }
  // Changes the pinned state marker as another build would have written it.
  template <typename Edit>
  void EditMarker(Edit edit) const {
    const UniqueFd fd(bpf_obj_get(Pin("exporter_state").c_str()));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(UpdateExporterState(fd.get(), edit), "");
  }

  std::string mount_point_;
  std::string state_path_;
};

const vm_exit_key kIo{7'300'000, KVM_EXIT_ALL_VCPUS, KVM_EXIT_ISA_SVM, 0x7b};
const vm_exit_key kHlt{7'300'000, KVM_EXIT_ALL_VCPUS, KVM_EXIT_ISA_SVM, 0x78};
const vm_exit_key kEnded{7'300'001, KVM_EXIT_ALL_VCPUS, KVM_EXIT_ISA_SVM, 0x7b};

TEST_F(PinnedStateTest, ARestartedSourceAdoptsTheProgramsAndEveryCount) {
  std::uint64_t since = 0;
  std::uint32_t freed = 0;
  {
    BpfExitSource first(Options());
    AttachOrSkip(first);
    if (HasFatalFailure() || IsSkipped()) return;
    EXPECT_EQ(first.state_start(), StateStart::kFresh);
    EXPECT_THAT(first.state_note(), HasSubstr("nothing kept"));
    ASSERT_EQ(first.FillForTesting({{kIo, 1234}, {kHlt, 1}, {kEnded, 50}}), "");
    ASSERT_EQ(first.Remove({kEnded}).size(), 1u);  // an ended VM: into the retired counts
    since = first.counting_since_ns();
    freed = first.counters_freed();
  }
  // The process is gone; the programs (exit and entry) stay attached.
  const std::vector<std::uint32_t> links = PinnedLinkIds(state_path_);
  ASSERT_EQ(links.size(), 2u);
  EXPECT_EQ(LinksAlive(links, false), 2);

  BpfExitSource second(Options());
  AttachOrSkip(second);
  EXPECT_EQ(second.state_start(), StateStart::kAdopted);
  EXPECT_EQ(second.state_note(), "");
  EXPECT_EQ(second.counting_since_ns(), since);
  EXPECT_EQ(second.counters_freed(), freed);     // no index handed out twice
  EXPECT_EQ(PinnedLinkIds(state_path_), links);  // the same links, none added
  ExitSnapshot snapshot;
  ASSERT_EQ(second.Read(&snapshot), "");
  EXPECT_EQ(CountOf(snapshot, kIo), 1234u);
  EXPECT_EQ(CountOf(snapshot, kHlt), 1u);
  EXPECT_EQ(CountOf(snapshot, kEnded), 0u);
  EXPECT_EQ(snapshot.retired.at({KVM_EXIT_ISA_SVM, 0x7b}), 50u);
  // The adopted pool goes on: a new key gets a counter no other key holds.
  const vm_exit_key fresh_key{7'300'002, KVM_EXIT_ALL_VCPUS, KVM_EXIT_ISA_SVM, 0x7b};
  ASSERT_EQ(second.FillForTesting({{fresh_key, 7}}), "");
  ASSERT_EQ(second.Read(&snapshot), "");
  EXPECT_EQ(CountOf(snapshot, fresh_key), 7u);
  EXPECT_EQ(CountOf(snapshot, kIo), 1234u);
  // The adopted exit program's statistics are readable (the pinned program).
  EXPECT_EQ(second.ProgramStats().missed, 0u);
}

// collector.drilldown_auto: a kind that follows storms is kept while it is
// attached, adopted attached by the next process, which can detach it (the
// link goes) or attach another one.
TEST_F(PinnedStateTest, AKindThatFollowsStormsIsAdoptedAsItWasAndSwitchesAfter) {
  BpfSourceOptions options = Options();
  options.drilldown_follow = {DrilldownKind::kIo, DrilldownKind::kMsr};
  std::vector<std::uint32_t> with_io;
  {
    BpfExitSource first(options);
    AttachOrSkip(first);
    if (HasFatalFailure() || IsSkipped()) return;
    EXPECT_FALSE(first.DrilldownAttached(DrilldownKind::kIo));
    EXPECT_FALSE(first.DrilldownAttached(DrilldownKind::kHypercall));  // not loaded
    EXPECT_EQ(PinnedLinkIds(state_path_).size(), 2u);                  // exit and entry: io is calm
    ASSERT_EQ(first.SetDrilldownAttached(DrilldownKind::kIo, true), "");
    EXPECT_TRUE(first.DrilldownAttached(DrilldownKind::kIo));
    EXPECT_THAT(first.SetDrilldownAttached(DrilldownKind::kHypercall, true),
                HasSubstr("does not follow storms"));
    with_io = PinnedLinkIds(state_path_);
    ASSERT_EQ(with_io.size(), 3u);
  }
  EXPECT_EQ(LinksAlive(with_io, false), 3);  // io's program counts through the restart

  BpfExitSource second(options);
  AttachOrSkip(second);
  EXPECT_EQ(second.state_start(), StateStart::kAdopted) << second.state_note();
  EXPECT_TRUE(second.DrilldownAttached(DrilldownKind::kIo));
  EXPECT_FALSE(second.DrilldownAttached(DrilldownKind::kMsr));
  EXPECT_EQ(PinnedLinkIds(state_path_), with_io);
  // msr attaches with a program this process loaded on the kept maps.
  ASSERT_EQ(second.SetDrilldownAttached(DrilldownKind::kMsr, true), "");
  EXPECT_EQ(PinnedLinkIds(state_path_).size(), 4u);
  // io detaches: its adopted link is closed and its pin removed.
  ASSERT_EQ(second.SetDrilldownAttached(DrilldownKind::kIo, false), "");
  EXPECT_FALSE(second.DrilldownAttached(DrilldownKind::kIo));
  const std::vector<std::uint32_t> after = PinnedLinkIds(state_path_);
  EXPECT_EQ(after.size(), 3u);
  std::vector<std::uint32_t> gone;
  std::set_difference(with_io.begin(), with_io.end(), after.begin(), after.end(),
                      std::back_inserter(gone));
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(LinksAlive(gone, true), 0);
  ExitSnapshot snapshot;
  ASSERT_EQ(second.Read(&snapshot), "");
  EXPECT_TRUE(snapshot.drilldown_on);
}

// A kept link of a kind this configuration does not load is not adopted.
TEST_F(PinnedStateTest, AKeptLinkOfAKindNoLongerFollowedStartsFresh) {
  BpfSourceOptions options = Options();
  options.drilldown_follow = {DrilldownKind::kIo};
  {
    BpfExitSource first(options);
    AttachOrSkip(first);
    if (HasFatalFailure() || IsSkipped()) return;
    ASSERT_EQ(first.SetDrilldownAttached(DrilldownKind::kIo, true), "");
  }
  options.drilldown_follow = {DrilldownKind::kMsr};
  BpfExitSource second(options);
  AttachOrSkip(second);
  EXPECT_EQ(second.state_start(), StateStart::kFresh);
  EXPECT_THAT(second.state_note(), HasSubstr("not the ones configured"));
  EXPECT_EQ(PinnedLinkIds(state_path_).size(), 2u);
}

TEST_F(PinnedStateTest, AnotherConfigurationStartsFreshAndSaysWhy) {
  {
    BpfExitSource first(Options(1024));
    AttachOrSkip(first);
    if (HasFatalFailure() || IsSkipped()) return;
    ASSERT_EQ(first.FillForTesting({{kIo, 1234}}), "");
  }
  BpfExitSource second(Options(2048));
  AttachOrSkip(second);
  EXPECT_EQ(second.state_start(), StateStart::kFresh);
  EXPECT_THAT(second.state_note(), HasSubstr("another configuration"));
  ExitSnapshot snapshot;
  ASSERT_EQ(second.Read(&snapshot), "");
  EXPECT_EQ(CountOf(snapshot, kIo), 0u);
  EXPECT_EQ(snapshot.vm_map_capacity, 2048u);
}

TEST_F(PinnedStateTest, AnotherLayoutVersionStartsFresh) {
  {
    BpfExitSource first(Options());
    AttachOrSkip(first);
    if (HasFatalFailure() || IsSkipped()) return;
  }
  // What an older or newer build would have left.
  EditMarker([](exporter_state& state) { state.layout = KVM_EXIT_STATE_LAYOUT + 1; });

  BpfExitSource second(Options());
  AttachOrSkip(second);
  EXPECT_EQ(second.state_start(), StateStart::kFresh);
  EXPECT_THAT(second.state_note(),
              HasSubstr("layout " + std::to_string(KVM_EXIT_STATE_LAYOUT + 1) + ", this build " +
                        std::to_string(KVM_EXIT_STATE_LAYOUT)));
}

// A build whose BPF programs differ (a fix in a program, same layout).
TEST_F(PinnedStateTest, AnotherBuildsProgramsAreNotAdopted) {
  {
    BpfExitSource first(Options());
    AttachOrSkip(first);
    if (HasFatalFailure() || IsSkipped()) return;
  }
  EditMarker([](exporter_state& state) { state.object_hash ^= 1; });

  BpfExitSource second(Options());
  AttachOrSkip(second);
  EXPECT_EQ(second.state_start(), StateStart::kFresh);
  EXPECT_THAT(second.state_note(), HasSubstr("another build's BPF object"));
}

TEST_F(PinnedStateTest, AMissingMapStartsFresh) {
  {
    BpfExitSource first(Options());
    AttachOrSkip(first);
    if (HasFatalFailure() || IsSkipped()) return;
    ASSERT_EQ(first.FillForTesting({{kIo, 1234}}), "");
  }
  ASSERT_EQ(::unlink(Pin("exit_counters").c_str()), 0);
  BpfExitSource second(Options());
  AttachOrSkip(second);
  EXPECT_EQ(second.state_start(), StateStart::kFresh);
  EXPECT_THAT(second.state_note(), HasSubstr("exit_counters is missing"));
  ExitSnapshot snapshot;
  ASSERT_EQ(second.Read(&snapshot), "");
  EXPECT_EQ(CountOf(snapshot, kIo), 0u);
}

// A map of another shape pinned under one of the exporter's names: libbpf
// refuses to reuse it, and the source starts fresh instead of adopting it.
TEST_F(PinnedStateTest, AForeignMapUnderOurNameIsNotAdopted) {
  {
    BpfExitSource first(Options());
    AttachOrSkip(first);
    if (HasFatalFailure() || IsSkipped()) return;
  }
  ASSERT_EQ(::unlink(Pin("host_overflow").c_str()), 0);
  const int foreign = bpf_map_create(BPF_MAP_TYPE_ARRAY, "foreign", 4, 16, 8, nullptr);
  ASSERT_GE(foreign, 0);
  ASSERT_EQ(bpf_obj_pin(foreign, Pin("host_overflow").c_str()), 0);
  ::close(foreign);

  BpfExitSource second(Options());
  AttachOrSkip(second);
  EXPECT_EQ(second.state_start(), StateStart::kFresh);
  EXPECT_THAT(second.state_note(), HasSubstr("the kept map host_overflow does not fit"));
  ExitSnapshot snapshot;
  EXPECT_EQ(second.Read(&snapshot), "");
}

TEST_F(PinnedStateTest, ASecondSourceOnTheSameStateIsRefused) {
  BpfExitSource first(Options());
  AttachOrSkip(first);
  if (HasFatalFailure() || IsSkipped()) return;
  BpfExitSource second(Options());
  EXPECT_THAT(second.Attach(), HasSubstr("another kvm_exit_exporter uses the BPF state"));
  EXPECT_FALSE(second.attached());
}

TEST_F(PinnedStateTest, ReleaseLeavesNothingAttachedAndNothingPinned) {
  std::vector<std::uint32_t> links;
  {
    BpfExitSource source(Options());
    AttachOrSkip(source);
    if (HasFatalFailure() || IsSkipped()) return;
    // Refused while the exporter runs: it holds the state.
    EXPECT_THAT(PinnedState::Release(state_path_), HasSubstr("another kvm_exit_exporter"));
    links = PinnedLinkIds(state_path_);
    ASSERT_EQ(links.size(), 2u);
  }
  // A pin the exporter did not make is left in place, and named.
  const int foreign = bpf_map_create(BPF_MAP_TYPE_ARRAY, "foreign", 4, 8, 1, nullptr);
  ASSERT_GE(foreign, 0);
  ASSERT_EQ(bpf_obj_pin(foreign, Pin("someone_elses").c_str()), 0);
  ::close(foreign);
  EXPECT_THAT(PinnedState::Release(state_path_), HasSubstr("someone_elses"));
  EXPECT_EQ(LinksAlive(links, true), 0);
  ASSERT_EQ(::unlink(Pin("someone_elses").c_str()), 0);
  EXPECT_EQ(PinnedState::Release(state_path_), "");
  EXPECT_FALSE(std::filesystem::exists(state_path_));
  EXPECT_EQ(PinnedState::Release(state_path_), "");  // nothing there: nothing to do
}

TEST_F(PinnedStateTest, AStatePathOffBpffsIsAClearError) {
  char pattern[] = "/tmp/kvmexit-not-bpffs-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  BpfExitSource source({.tracefs_root = kTracefs, .state_path = std::string(pattern) + "/state"});
  EXPECT_THAT(source.Attach(), HasSubstr("is not on bpffs"));
  std::filesystem::remove_all(pattern);
}

}  // namespace
}  // namespace kvmexit
