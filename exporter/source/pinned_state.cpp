// SPDX-License-Identifier: Apache-2.0
#include "source/pinned_state.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>  // kvm_exit.h's __u32, __u64

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>
#include <utility>

#include "kvm_exit.h"
#include "kvm_exit.skel.h"
#include "source/errno_text.h"
#include "source/exporter_state_map.h"
#include "util/log.h"

namespace kvmexit {
namespace {

// Names: the map's own; bpffs refuses names with a dot (reserved, EPERM), so
// libbpf's map of the object's .rodata section is kept with an underscore.
constexpr std::string_view kLinkPrefix = "link_";
constexpr std::string_view kStateMap = "exporter_state";
constexpr std::string_view kExitProgram = "prog_kvm_exit";

bool IsLinkName(std::string_view name) { return name.substr(0, kLinkPrefix.size()) == kLinkPrefix; }

std::string KeptName(const bpf_map* map) {
  std::string name = bpf_map__name(map);
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

// The names of the object's maps: what the exporter keeps besides links.
std::set<std::string> MapNames() {
  std::set<std::string> names;
  std::unique_ptr<kvm_exit_bpf, void (*)(kvm_exit_bpf*)> object(kvm_exit_bpf__open(),
                                                                kvm_exit_bpf__destroy);
  if (!object) return names;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object->obj) { names.insert(KeptName(map)); }
  return names;
}

bool IsOurs(const std::string& name) {
  static const std::set<std::string> maps = MapNames();
  return maps.count(name) != 0 || IsLinkName(name) || name == kExitProgram;
}

// The state marker kept in `store`: nullopt when there is none, or what is
// there is not one (a foreign object of that name, say).
std::optional<exporter_state> ReadMarker(const StateStore& store) {
  const UniqueFd fd = store.Get(std::string(kStateMap));
  if (!fd.valid()) return std::nullopt;
  bpf_map_info info{};
  std::uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &length) != 0 || info.type != BPF_MAP_TYPE_ARRAY ||
      info.key_size != sizeof(std::uint32_t) || info.value_size != sizeof(exporter_state)) {
    return std::nullopt;
  }
  return ReadExporterState(fd.get());
}

// FNV-1a of the BPF object embedded in this build: programs and maps from
// another build's object (a fix in a program, say) are not adopted.
std::uint64_t ObjectHash() {
  std::size_t size = 0;
  const auto* bytes = static_cast<const unsigned char*>(kvm_exit_bpf__elf_bytes(&size));
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 0x100000001b3ULL;
  return hash;
}

std::optional<KernelHook> HookOf(std::uint32_t code) {
  for (const auto& [hook, name] : kKernelHookTable) {
    if (hook != KernelHook::kAuto && static_cast<std::uint32_t>(hook) == code) return hook;
  }
  return std::nullopt;
}

// "" when the kept map `fd` is one the skeleton's `map` could be: libbpf's
// own reuse check (type, sizes, flags), which bpf_map__reuse_fd skips.
std::string FitsMap(int fd, const bpf_map* map) {
  bpf_map_info info{};
  std::uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) {
    return "the kept map " + KeptName(map) + " is not a map";
  }
  if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
      info.value_size != bpf_map__value_size(map) ||
      info.max_entries != bpf_map__max_entries(map) || info.map_flags != bpf_map__map_flags(map)) {
    return "the kept map " + KeptName(map) + " does not fit this configuration";
  }
  return "";
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

std::optional<KernelHook> PinnedState::PinnedHook() const {
  if (!store_) return std::nullopt;
  const std::optional<exporter_state> state = ReadMarker(*store_);
  if (!state || state->layout != KVM_EXIT_STATE_LAYOUT) return std::nullopt;
  return HookOf(state->hook);
}

bool PinnedState::PrepareLoad(kvm_exit_bpf& object, KernelHook hook,
                              const std::vector<PinnedLink>& links,
                              const std::vector<PinnedLink>& follow_links) {
  std::vector<UniqueFd> reused;  // the kept maps' descriptors, in the object's map order
  const auto mismatch = [&]() -> std::string {
    const std::vector<std::string> names = store_->Names();
    if (names.empty()) return "nothing kept in " + store_->where();
    const std::optional<exporter_state> state = ReadMarker(*store_);
    if (!state || state->layout == 0 ||
        std::find(names.begin(), names.end(), kExitProgram) == names.end()) {
      return "the kept state is incomplete";
    }
    if (state->layout != KVM_EXIT_STATE_LAYOUT) {
      return "the kept state has layout " + std::to_string(state->layout) + ", this build " +
             std::to_string(KVM_EXIT_STATE_LAYOUT);
    }
    if (state->object_hash != ObjectHash()) {
      return "the kept programs come from another build's BPF object";
    }
    const std::optional<KernelHook> kept_hook = HookOf(state->hook);
    if (kept_hook != hook) {
      return "the kept programs use another hook (" +
             std::string(kept_hook ? KernelHookName(*kept_hook) : "unknown") + ")";
    }
    // The read-only data holds the configuration the programs were loaded
    // with (per-vCPU counting, timing, the vendor, the shards): byte for byte.
    std::size_t size = 0;
    const void* ours = bpf_map__initial_value(object.maps.rodata, &size);
    const UniqueFd rodata = store_->Get(KeptName(object.maps.rodata));
    std::vector<unsigned char> kept(size);
    const std::uint32_t key = 0;
    if (ours == nullptr || !rodata.valid() ||
        bpf_map_lookup_elem(rodata.get(), &key, kept.data()) != 0 ||
        std::memcmp(ours, kept.data(), size) != 0) {
      return "the kept programs were loaded with another configuration";
    }
    // Every map, each as the skeleton would make it: a missing one would be
    // made afresh and counted in by no program; a foreign one misread.
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, object.obj) {
      UniqueFd fd = store_->Get(KeptName(map));
      if (!fd.valid()) return "the kept map " + KeptName(map) + " is missing";
      if (std::string misfit = FitsMap(fd.get(), map); !misfit.empty()) return misfit;
      reused.push_back(std::move(fd));
    }
    std::set<std::string> kept_links;
    for (const std::string& name : names) {
      if (IsLinkName(name)) kept_links.insert(name);
    }
    // Every link of the configured programs, and of the kinds that follow
    // storms those that were attached; nothing else.
    std::set<std::string> wanted;
    for (const PinnedLink& link : links) wanted.insert(link.name);
    std::set<std::string> allowed = wanted;
    for (const PinnedLink& link : follow_links) allowed.insert(link.name);
    if (!std::includes(kept_links.begin(), kept_links.end(), wanted.begin(), wanted.end()) ||
        !std::includes(allowed.begin(), allowed.end(), kept_links.begin(), kept_links.end())) {
      return "the kept programs are not the ones configured";
    }
    counting_since_ns_ = state->counting_since_ns;
    return "";
  };
  why_fresh_ = mismatch();
  // After a Discard the store is empty: the reason is the discarded state's.
  if (!why_fresh_.empty() && !discarded_why_.empty()) why_fresh_ = discarded_why_;
  discarded_why_.clear();
  if (!why_fresh_.empty()) {
    RemoveKept();
    return false;
  }
  std::size_t i = 0;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object.obj) {
    if (int err = bpf_map__reuse_fd(map, reused[i++].get()); err != 0) {
      Discard("reusing the kept map " + KeptName(map) + " failed: " + ErrnoText(err));
      return false;
    }
  }
  return true;
}

void PinnedState::Discard(const std::string& why) {
  why_fresh_ = why;
  discarded_why_ = why;
  adopted_links_.clear();
  adopted_follow_links_.clear();
  adopted_exit_program_.reset();
  RemoveKept();
}

std::string PinnedState::AdoptLinks(const std::vector<PinnedLink>& links,
                                    const std::vector<PinnedLink>& follow_links) {
  adopted_links_.clear();
  adopted_follow_links_.clear();
  const auto open_link = [&](const std::string& name) {
    UniqueFd fd = store_->Get(name);
    bpf_link_info info{};
    std::uint32_t length = sizeof(info);
    if (fd.valid() && bpf_obj_get_info_by_fd(fd.get(), &info, &length) != 0) fd.reset();
    return fd;
  };
  for (const PinnedLink& link : links) {
    UniqueFd fd = open_link(link.name);
    if (!fd.valid()) return "the kept link " + link.name + " could not be opened";
    adopted_links_.push_back(std::move(fd));
  }
  const std::vector<std::string> names = store_->Names();
  for (const PinnedLink& link : follow_links) {
    if (std::find(names.begin(), names.end(), link.name) == names.end()) continue;
    UniqueFd fd = open_link(link.name);
    if (!fd.valid()) return "the kept link " + link.name + " could not be opened";
    adopted_follow_links_.emplace(link.name, std::move(fd));
  }
  adopted_exit_program_ = store_->Get(std::string(kExitProgram));
  return "";
}

std::string PinnedState::LinkName(const bpf_program* program) {
  return std::string(kLinkPrefix) + bpf_program__name(program);
}

std::string PinnedState::KeepLink(const std::string& name, int fd) {
  if (!store_) return "";
  return store_->Put(name, fd);
}

void PinnedState::DropLink(const std::string& name) {
  if (!store_) return;
  if (!store_->Remove(name)) LogWarn("BPF state: could not remove " + name + " from " + where());
  adopted_follow_links_.erase(name);
}

std::string PinnedState::Commit(const kvm_exit_bpf& object, KernelHook hook,
                                const std::vector<PinnedLink>& links,
                                const bpf_program* exit_program) {
  const int marker_fd = bpf_map__fd(object.maps.exporter_state);
  counting_since_ns_ =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  if (std::string error = UpdateExporterState(marker_fd,
                                              [&](exporter_state& state) {
                                                state.layout = KVM_EXIT_STATE_LAYOUT;
                                                state.hook = static_cast<std::uint32_t>(hook);
                                                state.counting_since_ns = counting_since_ns_;
                                                state.object_hash = ObjectHash();
                                              });
      !error.empty()) {
    return "writing the state marker: " + error;
  }
  std::vector<std::pair<std::string, int>> objects;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object.obj) {
    if (map != object.maps.exporter_state) objects.emplace_back(KeptName(map), bpf_map__fd(map));
  }
  for (const PinnedLink& link : links) objects.emplace_back(link.name, bpf_link__fd(*link.link));
  objects.emplace_back(kExitProgram, bpf_program__fd(exit_program));
  objects.emplace_back(kStateMap, marker_fd);  // last: the state is complete
  for (const auto& [name, fd] : objects) {
    if (std::string error = store_->Put(name, fd); !error.empty()) return error;
  }
  return "";
}

void PinnedState::RemoveKept() const {
  store_->Remove(std::string(kStateMap));
  for (const std::string& name : store_->Names()) {
    if (store_->shared() && !IsOurs(name)) {
      LogWarn("BPF state: left " + name + " in " + store_->where() +
              ": not an object this exporter keeps");
    } else if (!store_->Remove(name)) {
      LogWarn("BPF state: could not remove " + name + " from " + store_->where());
    }
  }
}

std::string PinnedState::Release(const std::string& path) {
  std::vector<std::string> left;
  if (std::string error = ReleaseBpffsStore(path, IsOurs, &left); !error.empty()) return error;
  if (left.empty()) return "";
  std::string names;
  for (const std::string& name : left) names += (names.empty() ? "" : ", ") + name;
  return "removed the exporter's pins; left in " + path + " what it did not make: " + names;
}

}  // namespace kvmexit
