// SPDX-License-Identifier: Apache-2.0
// Where the BPF objects that outlive the process are kept, by name: a bpffs
// directory (pins) or systemd's file descriptor store (fds systemd holds for
// the service while it restarts, and closes when it is stopped). PinnedState
// decides what to keep; a store only keeps it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "util/unique_fd.h"

namespace kvmexit {

class StateStore {
 public:
  virtual ~StateStore() = default;

  // For messages: "/sys/fs/bpf/kvm_exit_exporter", "systemd's file descriptor store".
  virtual const std::string& where() const = 0;
  // Names of everything kept, the exporter's and (bpffs) anyone else's.
  virtual std::vector<std::string> Names() const = 0;
  // A new descriptor of the object kept under `name`; invalid when none is.
  virtual UniqueFd Get(const std::string& name) const = 0;
  // Keeps the object of `fd` under `name`. "" or what failed.
  virtual std::string Put(const std::string& name, int fd) = 0;
  // Forgets `name`; false when it could not.
  virtual bool Remove(const std::string& name) = 0;
  // True when others may keep objects here too (a bpffs directory): only
  // the exporter's own names are removed then.
  virtual bool shared() const = 0;
};

// The bpffs directory `path` (created when missing), locked against a second
// exporter for the store's lifetime; nullptr and *error when it cannot be.
std::unique_ptr<StateStore> OpenBpffsStore(const std::string& path, std::string* error);

// Removes the entries `ours` accepts from the bpffs directory `path` and,
// when nothing else is left, the directory; *left names what it left.
// Refuses while an exporter holds it. "" (also when there is no such
// directory) or what failed.
std::string ReleaseBpffsStore(const std::string& path,
                              const std::function<bool(const std::string&)>& ours,
                              std::vector<std::string>* left);

// Systemd's file descriptor store of this service, when the service manager
// offers one (NOTIFY_SOCKET set: the unit accepts notifications; its
// FileDescriptorStoreMax= bounds what it keeps), else nullptr. Takes over the
// descriptors systemd passed (LISTEN_FDS), once per process.
std::unique_ptr<StateStore> OpenSystemdFdStore();

}  // namespace kvmexit
