// SPDX-License-Identifier: Apache-2.0
// The one entry of the `exporter_state` map (bpf/kvm_exit.h): the exporter's
// own bookkeeping, kept with the BPF state. No program writes it, so a read
// followed by a write is exact; every reader and writer goes through here.
#pragma once

#include <bpf/bpf.h>
#include <linux/types.h>  // kvm_exit.h's __u32, __u64

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>

#include "kvm_exit.h"
#include "source/errno_text.h"

namespace kvmexit {

// The entry of the exporter_state map `fd`, or nullopt when it cannot be read.
inline std::optional<exporter_state> ReadExporterState(int fd) {
  const std::uint32_t key = 0;
  exporter_state state{};
  if (bpf_map_lookup_elem(fd, &key, &state) != 0) return std::nullopt;
  return state;
}

// Reads the entry, lets `change` edit it and writes it back. "" or what failed.
template <typename Change>
std::string UpdateExporterState(int fd, Change change) {
  std::optional<exporter_state> state = ReadExporterState(fd);
  if (!state) return "reading exporter_state failed: " + ErrnoText(errno);
  change(*state);
  const std::uint32_t key = 0;
  if (bpf_map_update_elem(fd, &key, &*state, BPF_ANY) != 0) {
    return "writing exporter_state failed: " + ErrnoText(errno);
  }
  return "";
}

}  // namespace kvmexit
