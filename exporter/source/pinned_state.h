// SPDX-License-Identifier: Apache-2.0
// The BPF state that outlives the process: every map, link and the exit
// program kept in a StateStore (a bpffs directory, kernel.state_path, or
// systemd's file descriptor store), so that the programs keep counting while
// the exporter restarts. A starting exporter adopts what it finds there when
// the same layout, hook and configuration made it, and otherwise removes it
// and starts fresh, saying why.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "source/kernel_hook.h"
#include "source/state_store.h"
#include "util/unique_fd.h"

struct kvm_exit_bpf;
struct bpf_link;
struct bpf_program;

namespace kvmexit {

// How this process's counts began.
enum class StateStart {
  kUnpinned,  // nowhere to keep state: the counts end with the process
  kFresh,     // kept from now on; nothing to adopt, or what was there did not fit
  kAdopted,   // the kept programs went on counting; this process took them over
};
std::string_view StateStartName(StateStart start);

// A program's link and the name it is kept under: "link_" + program name.
struct PinnedLink {
  bpf_link** link;  // the skeleton's slot
  std::string name;
};

class PinnedState {
 public:
  // Keeps the state in `store` (null: nowhere).
  void Use(std::unique_ptr<StateStore> store) { store_ = std::move(store); }
  bool open() const { return store_ != nullptr; }
  // Where the state is kept, for messages ("" when nowhere).
  std::string where() const { return store_ ? store_->where() : ""; }

  // The hook of a complete kept state, to be tried first.
  std::optional<KernelHook> PinnedHook() const;

  // Before load, on an opened (not loaded) skeleton whose rodata and sizes
  // are set for `hook`: true when the kept state was made by this layout,
  // hook and configuration, has every map, each fitting the skeleton's, and
  // every link in `links` and no other but those of `follow_links` (the
  // drill-down kinds that follow storms, kept while attached). The skeleton
  // then reuses the kept maps and the caller loads no program but those that
  // follow storms. Otherwise removes what is kept and sets why_fresh().
  bool PrepareLoad(kvm_exit_bpf& object, KernelHook hook, const std::vector<PinnedLink>& links,
                   const std::vector<PinnedLink>& follow_links);

  // Adoption did not work out after all: removes what is kept, so that the
  // next load starts fresh.
  void Discard(const std::string& why);

  // After an adopting load: takes the kept links (held until destruction;
  // the store keeps them attached after that), those of `follow_links` that
  // are kept (HoldsLink) and the exit program.
  std::string AdoptLinks(const std::vector<PinnedLink>& links,
                         const std::vector<PinnedLink>& follow_links);
  // An adopted link of a kind that follows storms is held (attached).
  bool HoldsLink(const std::string& name) const { return adopted_follow_links_.count(name) != 0; }
  // A link attached after the start (a kind that follows storms) is kept
  // under `name`, so that it outlives the process like the others.
  std::string KeepLink(const std::string& name, int fd);
  // Forgets the link kept under `name` and closes the adopted one: with the
  // caller's own link closed too, the program detaches.
  void DropLink(const std::string& name);

  // After a fresh attach: keeps every map, link and the exit program (whose
  // run statistics an adopting process reads), then the state marker with
  // `hook` and the time counting began: last, so that a crash half-way
  // leaves a state without a marker, which the next start replaces.
  std::string Commit(const kvm_exit_bpf& object, KernelHook hook,
                     const std::vector<PinnedLink>& links, const bpf_program* exit_program);

  // The kept exit program of an adopted state (invalid otherwise).
  int adopted_exit_program() const { return adopted_exit_program_.get(); }
  // Unix time (ns) since which the kept programs count: read at PrepareLoad
  // (adopted) or set by Commit.
  std::uint64_t counting_since_ns() const { return counting_since_ns_; }
  // Why the last PrepareLoad or Discard started fresh ("" when it adopted).
  const std::string& why_fresh() const { return why_fresh_; }

  // The name a program's link is kept under: "link_" + the program's name.
  static std::string LinkName(const bpf_program* program);

  // Removes every pin the exporter makes from the bpffs directory `path`, and
  // the directory itself: the programs detach once no process holds them.
  // Refuses while an exporter holds it. "" or what failed; nothing there is "".
  static std::string Release(const std::string& path);

 private:
  // Removes the exporter's objects from the store (the marker first, so a
  // crash in between leaves no state that looks complete); logs the others.
  void RemoveKept() const;

  std::unique_ptr<StateStore> store_;
  std::vector<UniqueFd> adopted_links_;
  std::map<std::string, UniqueFd> adopted_follow_links_;
  UniqueFd adopted_exit_program_;
  std::uint64_t counting_since_ns_ = 0;
  std::string why_fresh_;
  std::string discarded_why_;  // Discard's reason, for the PrepareLoad that follows
};

}  // namespace kvmexit
