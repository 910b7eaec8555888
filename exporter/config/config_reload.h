// SPDX-License-Identifier: Apache-2.0
// What a configuration reload (SIGHUP) may change while the exporter runs.
// The HTTP server, the BPF program and its maps are built once from web.*,
// kernel.* and collector.*; changing those needs a restart. The VM tracker's
// limits, its naming rules, the rate window and the exposed handling-time
// buckets (collector.exit_handling_buckets, which only shapes the text) are
// only read, so a reload can swap them.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace kvmexit {

// The keys (as written in the YAML, e.g. "vms.max_vms") that differ between
// the running configuration and the reloaded one, sorted into two lists.
struct ConfigChanges {
  std::vector<std::string> live;     // applied by a reload
  std::vector<std::string> restart;  // need a restart: the reload is refused

  bool empty() const { return live.empty() && restart.empty(); }
};

ConfigChanges DiffConfig(const Config& running, const Config& reloaded);

// "" when `changes` can be applied live, else why the reload is refused,
// naming every key that needs a restart.
std::string RestartRequiredMessage(const ConfigChanges& changes);

// "vms.max_vms, rates.window", or "nothing" when no key changed.
std::string JoinKeys(const std::vector<std::string>& keys);

}  // namespace kvmexit
