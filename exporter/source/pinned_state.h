// SPDX-License-Identifier: Apache-2.0
// The BPF state that outlives the process (config kernel.state_path): every
// map and link of the object pinned under one bpffs directory, so that the
// programs keep counting while the exporter restarts. A starting exporter
// adopts what it finds there when the same layout, hook and configuration
// made it, and otherwise removes it and starts fresh, saying why.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "source/kernel_hook.h"
#include "util/unique_fd.h"

struct kvm_exit_bpf;
struct bpf_link;
struct bpf_program;

namespace kvmexit {

// How this process's counts began.
enum class StateStart {
  kUnpinned,  // no state directory: the counts end with the process
  kFresh,     // pinned from now on; nothing to adopt, or what was there did not fit
  kAdopted,   // the pinned programs kept counting; this process took them over
};
std::string_view StateStartName(StateStart start);

// A program's link and where it is pinned.
struct PinnedLink {
  bpf_link** link;   // the skeleton's slot
  std::string name;  // file name in the directory: "link_" + program name
};

class PinnedState {
 public:
  // Opens `directory` (creating it) on bpffs and locks it against a second
  // exporter. "" or what is wrong and what to do.
  std::string Open(const std::string& directory);
  bool open() const { return directory_fd_.valid(); }
  const std::string& directory() const { return directory_; }

  // The hook of a complete pinned state, to be tried first.
  std::optional<KernelHook> PinnedHook() const;

  // Before load, on an opened (not loaded) skeleton whose rodata and sizes
  // are set for `hook`: true when the pinned state was made by this layout,
  // hook and configuration and has every link in `links` (then the caller
  // loads no program). Otherwise removes the pins and sets why_fresh().
  // Either way every map gets its pin path, so loading adopts or pins it.
  bool PrepareLoad(kvm_exit_bpf& object, KernelHook hook, const std::vector<PinnedLink>& links);

  // Adoption did not work out after all (a pinned map does not fit, a link
  // will not open): removes the pins, so that the next load starts fresh.
  void Discard(const std::string& why);

  // After an adopting load: opens the pinned links into the skeleton's slots.
  std::string AdoptLinks(const std::vector<PinnedLink>& links);

  // After a fresh attach: pins the links and the exit program (whose run
  // statistics an adopting process reads), then marks the state complete
  // with `hook` and the time counting began.
  std::string Commit(const kvm_exit_bpf& object, KernelHook hook,
                     const std::vector<PinnedLink>& links, const bpf_program* exit_program);

  // The pinned exit program of an adopted state, for its run statistics.
  UniqueFd OpenExitProgram() const;

  // Unix time (ns) since which the pinned programs count: the attach time of
  // the links, read at PrepareLoad (adopted) or set by Commit.
  std::uint64_t counting_since_ns() const { return counting_since_ns_; }
  // Why the last PrepareLoad or Discard started fresh ("" when it adopted).
  const std::string& why_fresh() const { return why_fresh_; }

  // Removes every pin the exporter makes from `directory` and the directory
  // itself: the programs detach once no process holds them. Refuses while an
  // exporter holds the directory. "" or what failed; nothing there is "".
  static std::string Release(const std::string& directory);

 private:
  // Removes this layout's pins (state marker first, so a crash in between
  // leaves no state that looks complete), and every "link_" pin.
  void RemovePins() const;
  std::string PathOf(const std::string& name) const { return directory_ + "/" + name; }

  std::string directory_;
  UniqueFd directory_fd_;  // holds the lock
  std::uint64_t counting_since_ns_ = 0;
  std::string why_fresh_;
  std::string discarded_why_;  // Discard's reason, for the PrepareLoad that follows
};

}  // namespace kvmexit
