// SPDX-License-Identifier: Apache-2.0
#include "config/config_reload.h"

namespace kvmexit {
namespace {

// Adds `key` to `keys` when the two values differ.
template <typename Value>
void Compare(const Value& running, const Value& reloaded, const char* key,
             std::vector<std::string>& keys) {
  if (!(running == reloaded)) keys.emplace_back(key);
}

}  // namespace

ConfigChanges DiffConfig(const Config& running, const Config& reloaded) {
  ConfigChanges changes;
  // Every key of config.h appears once below; a key added there must be
  // sorted here too, or a reload would silently ignore it (config_reload_test
  // checks each key).
  std::vector<std::string>& restart = changes.restart;
  Compare(running.web.listen_address, reloaded.web.listen_address, "web.listen_address", restart);
  Compare(running.web.telemetry_path, reloaded.web.telemetry_path, "web.telemetry_path", restart);
  Compare(running.kernel.tracefs_path, reloaded.kernel.tracefs_path, "kernel.tracefs_path",
          restart);
  Compare(running.kernel.attach_retry_interval, reloaded.kernel.attach_retry_interval,
          "kernel.attach_retry_interval", restart);
  Compare(running.kernel.hook, reloaded.kernel.hook, "kernel.hook", restart);
  Compare(running.collector.per_vm, reloaded.collector.per_vm, "collector.per_vm", restart);
  Compare(running.collector.per_vcpu, reloaded.collector.per_vcpu, "collector.per_vcpu", restart);
  // Loads or leaves out the kvm_entry program: the BPF object is built from it.
  Compare(running.collector.exit_handling_time, reloaded.collector.exit_handling_time,
          "collector.exit_handling_time", restart);
  Compare(running.collector.vm_map_capacity, reloaded.collector.vm_map_capacity,
          "collector.vm_map_capacity", restart);
  // Loads or leaves out the drill-down programs, like exit_handling_time.
  Compare(running.collector.drilldown, reloaded.collector.drilldown, "collector.drilldown",
          restart);
  Compare(running.collector.drilldown_max_keys, reloaded.collector.drilldown_max_keys,
          "collector.drilldown_max_keys", restart);

  std::vector<std::string>& live = changes.live;
  // Only which bounds a scrape writes: the BPF buckets stay as they are.
  Compare(running.collector.exit_handling_buckets, reloaded.collector.exit_handling_buckets,
          "collector.exit_handling_buckets", live);
  // Read by the sampler at each sample: off forgets the accounts, on starts them again.
  Compare(running.collector.vcpu_time, reloaded.collector.vcpu_time, "collector.vcpu_time", live);
  Compare(running.collector.vcpu_time_interval, reloaded.collector.vcpu_time_interval,
          "collector.vcpu_time_interval", live);
  Compare(running.rates.window, reloaded.rates.window, "rates.window", live);
  Compare(running.rates.sample_interval, reloaded.rates.sample_interval, "rates.sample_interval",
          live);
  Compare(running.vms.max_vms, reloaded.vms.max_vms, "vms.max_vms", live);
  Compare(running.vms.grace_period, reloaded.vms.grace_period, "vms.grace_period", live);
  Compare(running.vms.boot_window, reloaded.vms.boot_window, "vms.boot_window", live);
  Compare(running.vms.naming_rules, reloaded.vms.naming_rules, "vms.naming_rules", live);
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
