// SPDX-License-Identifier: Apache-2.0
#include "config/config_reload.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "config/config_keys.h"

namespace kvmexit {
namespace {

// Moves `key` from `from` to the end of `to` when `from` holds it.
void MoveKey(std::vector<std::string>& from, std::string_view key, std::vector<std::string>& to) {
  const auto found = std::find(from.begin(), from.end(), key);
  if (found == from.end()) return;
  to.push_back(std::move(*found));
  from.erase(found);
}

}  // namespace

ConfigChanges DiffConfig(const Config& running, const Config& reloaded) {
  ConfigChanges changes;
  // Every key of the table ParseConfig reads (config_keys.cpp) is compared, so
  // no change can go unnoticed. A changed key needs a restart unless it is
  // moved to `live` below: a key added to the table is refused on reload until
  // someone decides a reload may apply it, never silently ignored.
  // collector.exit_handling_time and collector.drilldown need a restart like
  // the rest of web.*, kernel.* and collector.* (config_reload.h): they load
  // or leave out BPF programs (kvm_entry, the drill-down ones), and the BPF
  // object is built from them.
  std::vector<std::string>& restart = changes.restart;
  for (const ConfigKey& key : ConfigKeys()) {
    if (!key.same(running, reloaded)) restart.emplace_back(key.name);
  }

  std::vector<std::string>& live = changes.live;
  // Only which bounds a scrape writes: the BPF buckets stay as they are.
  MoveKey(restart, "collector.exit_handling_buckets", live);
  // Read by the sampler at each sample: off forgets the accounts, on starts them again.
  MoveKey(restart, "collector.vcpu_time", live);
  MoveKey(restart, "collector.vcpu_time_interval", live);
  MoveKey(restart, "rates.window", live);
  MoveKey(restart, "rates.sample_interval", live);
  MoveKey(restart, "vms.max_vms", live);
  MoveKey(restart, "vms.grace_period", live);
  MoveKey(restart, "vms.boot_window", live);
  MoveKey(restart, "vms.naming_rules", live);
  return changes;
}

std::string JoinKeys(const std::vector<std::string>& keys) {
  if (keys.empty()) return "nothing";
  std::string joined;
  for (const std::string& key : keys) {
    if (!joined.empty()) joined += ", ";
    joined += key;
  }
  return joined;
}

std::string RestartRequiredMessage(const ConfigChanges& changes) {
  if (changes.restart.empty()) return "";
  return "changed keys need a restart: " + JoinKeys(changes.restart) +
         "; restart the exporter to apply them (nothing was changed)";
}

}  // namespace kvmexit
