// SPDX-License-Identifier: Apache-2.0
#include "source/pinned_state.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <linux/types.h>  // kvm_exit.h's __u32, __u64
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <set>
#include <utility>

#include "kvm_exit.h"
#include "kvm_exit.skel.h"
#include "source/errno_text.h"
#include "util/log.h"

namespace kvmexit {
namespace {

// bpffs refuses names with a dot (reserved, EPERM): libbpf's map for the
// object's .rodata section is pinned with an underscore for the dot.
constexpr std::string_view kLinkPrefix = "link_";
constexpr std::string_view kStateMap = "exporter_state";
constexpr std::string_view kExitProgram = "prog_kvm_exit";

bool IsLinkPin(std::string_view name) { return name.substr(0, kLinkPrefix.size()) == kLinkPrefix; }

std::string PinName(const bpf_map* map) {
  std::string name = bpf_map__name(map);
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

// The names of the object's maps: the pins this build makes besides links.
std::set<std::string> MapPinNames() {
  std::set<std::string> names;
  std::unique_ptr<kvm_exit_bpf, void (*)(kvm_exit_bpf*)> object(kvm_exit_bpf__open(),
                                                                kvm_exit_bpf__destroy);
  if (!object) return names;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object->obj) { names.insert(PinName(map)); }
  return names;
}

// Reads the state marker pinned in `directory`: nullopt when there is none
// or it is unreadable (a foreign pin of that name, say).
std::optional<exporter_state> ReadStateMarker(const std::string& path) {
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return std::nullopt;
  bpf_map_info info{};
  std::uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &length) != 0 || info.type != BPF_MAP_TYPE_ARRAY ||
      info.key_size != sizeof(std::uint32_t) || info.value_size != sizeof(exporter_state)) {
    return std::nullopt;
  }
  const std::uint32_t key = 0;
  exporter_state state{};
  if (bpf_map_lookup_elem(fd.get(), &key, &state) != 0) return std::nullopt;
  return state;
}

std::optional<KernelHook> HookOf(std::uint32_t code) {
  for (const auto& [hook, name] : kKernelHookTable) {
    if (hook != KernelHook::kAuto && static_cast<std::uint32_t>(hook) == code) return hook;
  }
  return std::nullopt;
}

std::uint64_t UnixNowNs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Opens `directory` and takes its lock; "" or why not.
std::string OpenLocked(const std::string& directory, UniqueFd* fd) {
  UniqueFd opened(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!opened.valid()) return "opening " + directory + " failed: " + ErrnoText(-errno);
  if (::flock(opened.get(), LOCK_EX | LOCK_NB) != 0) {
    return errno == EWOULDBLOCK ? "another kvm_exit_exporter uses the BPF state at " + directory +
                                      " (kernel.state_path): give each its own, or stop it"
                                : "locking " + directory + " failed: " + ErrnoText(-errno);
  }
  *fd = std::move(opened);
  return "";
}

// The entries of `fd`'s directory.
std::vector<std::string> Entries(int directory_fd) {
  std::vector<std::string> names;
  const int fd = ::dup(directory_fd);
  if (fd < 0) return names;
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return names;
  }
  ::rewinddir(dir);
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(dir);
  return names;
}

// Removes this build's pins (the marker first) and every link pin from the
// directory; returns the entries it left (not the exporter's).
std::vector<std::string> RemoveOurPins(int directory_fd) {
  const std::set<std::string> maps = MapPinNames();
  ::unlinkat(directory_fd, std::string(kStateMap).c_str(), 0);
  ::unlinkat(directory_fd, std::string(kExitProgram).c_str(), 0);
  std::vector<std::string> left;
  for (const std::string& name : Entries(directory_fd)) {
    if (maps.count(name) != 0 || IsLinkPin(name)) {
      if (::unlinkat(directory_fd, name.c_str(), 0) != 0) left.push_back(name);
    } else {
      left.push_back(name);
    }
  }
  return left;
}

}  // namespace

std::string_view StateStartName(StateStart start) {
  switch (start) {
    case StateStart::kUnpinned:
      return "unpinned";
    case StateStart::kFresh:
      return "fresh";
    case StateStart::kAdopted:
      return "adopted";
  }
  return "";
}

std::string PinnedState::Open(const std::string& directory) {
  if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
    return "creating the BPF state directory " + directory + " failed: " + ErrnoText(-errno) +
           " (kernel.state_path: a directory on bpffs, e.g. under /sys/fs/bpf; \"\" keeps no "
           "state)";
  }
  struct statfs fs {};
  if (::statfs(directory.c_str(), &fs) != 0) {
    return "checking " + directory + " failed: " + ErrnoText(-errno);
  }
  if (fs.f_type != BPF_FS_MAGIC) {
    return directory + " is not on bpffs (kernel.state_path): mount it with `mount -t bpf bpf " +
           "/sys/fs/bpf`, or set kernel.state_path: \"\" to keep no state";
  }
  UniqueFd fd;
  if (std::string error = OpenLocked(directory, &fd); !error.empty()) return error;
  directory_ = directory;
  directory_fd_ = std::move(fd);
  return "";
}

std::optional<KernelHook> PinnedState::PinnedHook() const {
  if (!open()) return std::nullopt;
  const std::optional<exporter_state> state = ReadStateMarker(PathOf(std::string(kStateMap)));
  if (!state || state->layout != KVM_EXIT_STATE_LAYOUT) return std::nullopt;
  return HookOf(state->hook);
}

bool PinnedState::PrepareLoad(kvm_exit_bpf& object, KernelHook hook,
                              const std::vector<PinnedLink>& links) {
  const auto mismatch = [&]() -> std::string {
    const std::vector<std::string> entries = Entries(directory_fd_.get());
    if (entries.empty()) return "nothing pinned in " + directory_;
    const std::optional<exporter_state> state = ReadStateMarker(PathOf(std::string(kStateMap)));
    if (!state || state->layout == 0 ||
        ::faccessat(directory_fd_.get(), std::string(kExitProgram).c_str(), F_OK, 0) != 0) {
      return "the pinned state is incomplete";
    }
    if (state->layout != KVM_EXIT_STATE_LAYOUT) {
      return "the pinned state has layout " + std::to_string(state->layout) + ", this build " +
             std::to_string(KVM_EXIT_STATE_LAYOUT);
    }
    const std::optional<KernelHook> pinned_hook = HookOf(state->hook);
    if (pinned_hook != hook) {
      return "the pinned programs use another hook (" +
             std::string(pinned_hook ? KernelHookName(*pinned_hook) : "unknown") + ")";
    }
    // The read-only data holds the configuration the programs were loaded
    // with (per-vCPU counting, timing, the vendor, the shards): byte for byte.
    std::size_t size = 0;
    const void* ours = bpf_map__initial_value(object.maps.rodata, &size);
    UniqueFd rodata(bpf_obj_get(PathOf(PinName(object.maps.rodata)).c_str()));
    std::vector<unsigned char> pinned(size);
    const std::uint32_t key = 0;
    if (ours == nullptr || !rodata.valid() ||
        bpf_map_lookup_elem(rodata.get(), &key, pinned.data()) != 0 ||
        std::memcmp(ours, pinned.data(), size) != 0) {
      return "the pinned programs were loaded with another configuration";
    }
    // A map missing would be created afresh, and counted in by no program.
    const std::set<std::string> present(entries.begin(), entries.end());
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, object.obj) {
      if (present.count(PinName(map)) == 0) return "the pinned map " + PinName(map) + " is missing";
    }
    std::set<std::string> pinned_links;
    for (const std::string& name : entries) {
      if (IsLinkPin(name)) pinned_links.insert(name);
    }
    std::set<std::string> wanted;
    for (const PinnedLink& link : links) wanted.insert(link.name);
    if (pinned_links != wanted) return "the pinned programs are not the ones configured";
    counting_since_ns_ = state->counting_since_ns;
    return "";
  };
  why_fresh_ = mismatch();
  // After a Discard the directory is empty: the reason is the discarded state's.
  if (!why_fresh_.empty() && !discarded_why_.empty()) why_fresh_ = discarded_why_;
  discarded_why_.clear();
  if (!why_fresh_.empty()) RemovePins();
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object.obj) {
    bpf_map__set_pin_path(map, PathOf(PinName(map)).c_str());
  }
  return why_fresh_.empty();
}

void PinnedState::Discard(const std::string& why) {
  why_fresh_ = why;
  discarded_why_ = why;
  RemovePins();
}

std::string PinnedState::AdoptLinks(const std::vector<PinnedLink>& links) {
  for (const PinnedLink& link : links) {
    bpf_link* opened = bpf_link__open(PathOf(link.name).c_str());
    if (opened == nullptr) {
      return "opening the pinned link " + PathOf(link.name) + " failed: " + ErrnoText(-errno);
    }
    *link.link = opened;
  }
  return "";
}

std::string PinnedState::Commit(const kvm_exit_bpf& object, KernelHook hook,
                                const std::vector<PinnedLink>& links,
                                const bpf_program* exit_program) {
  const std::string program_path = PathOf(std::string(kExitProgram));
  if (int err = bpf_obj_pin(bpf_program__fd(exit_program), program_path.c_str()); err != 0) {
    return "pinning " + program_path + " failed: " + ErrnoText(err);
  }
  for (const PinnedLink& link : links) {
    if (int err = bpf_link__pin(*link.link, PathOf(link.name).c_str()); err != 0) {
      return "pinning " + PathOf(link.name) + " failed: " + ErrnoText(err);
    }
  }
  const int fd = bpf_map__fd(object.maps.exporter_state);
  const std::uint32_t key = 0;
  exporter_state state{};
  if (bpf_map_lookup_elem(fd, &key, &state) != 0) {
    return "reading the pinned state marker failed: " + ErrnoText(-errno);
  }
  counting_since_ns_ = UnixNowNs();
  state.layout = KVM_EXIT_STATE_LAYOUT;
  state.hook = static_cast<std::uint32_t>(hook);
  state.counting_since_ns = counting_since_ns_;
  if (bpf_map_update_elem(fd, &key, &state, BPF_ANY) != 0) {
    return "writing the pinned state marker failed: " + ErrnoText(-errno);
  }
  return "";
}

UniqueFd PinnedState::OpenExitProgram() const {
  return UniqueFd(bpf_obj_get(PathOf(std::string(kExitProgram)).c_str()));
}

void PinnedState::RemovePins() const {
  for (const std::string& name : RemoveOurPins(directory_fd_.get())) {
    LogWarn("BPF state: left " + PathOf(name) + " in place: not a pin this exporter makes");
  }
}

std::string PinnedState::Release(const std::string& directory) {
  struct stat status {};
  if (::stat(directory.c_str(), &status) != 0 && errno == ENOENT) return "";  // nothing pinned
  UniqueFd fd;
  if (std::string error = OpenLocked(directory, &fd); !error.empty()) return error;
  const std::vector<std::string> left = RemoveOurPins(fd.get());
  if (!left.empty()) {
    std::string names;
    for (const std::string& name : left) names += (names.empty() ? "" : ", ") + name;
    return "removed the exporter's pins; left in " + directory + " what it did not make: " + names;
  }
  if (::rmdir(directory.c_str()) != 0 && errno != ENOENT) {
    return "removing " + directory + " failed: " + ErrnoText(-errno);
  }
  return "";
}

}  // namespace kvmexit
