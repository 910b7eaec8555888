// SPDX-License-Identifier: Apache-2.0
#include "config/config_reload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <string>
#include <variant>

#include "config/config_keys.h"

namespace kvmexit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

Config Parse(std::string_view yaml) {
  auto result = ParseConfig(yaml, "reload.yml");
  if (const auto* error = std::get_if<ConfigError>(&result)) {
    ADD_FAILURE() << error->message;
    return Config{};
  }
  return std::get<Config>(std::move(result));
}

struct KeyCase {
  std::string yaml;  // changes exactly one key from its default
  std::string key;   // the name a reload reports, as written in the YAML
  bool live = false;
};

// Every key of the configuration, parsed from YAML so that the reported name
// is the one an admin edits. Whether a key is live is said here, apart from
// DiffConfig, so that moving a key in or out of its live list is a decision.
const KeyCase kKeyCases[] = {
    KeyCase{"web:\n  listen_address: 127.0.0.1:9999\n", "web.listen_address", false},
    KeyCase{"web:\n  telemetry_path: /kvm\n", "web.telemetry_path", false},
    KeyCase{"kernel:\n  tracefs_path: /tmp/tracing\n", "kernel.tracefs_path", false},
    KeyCase{"kernel:\n  attach_retry_interval: 1s\n", "kernel.attach_retry_interval", false},
    KeyCase{"kernel:\n  hook: tracepoint\n", "kernel.hook", false},
    KeyCase{"kernel:\n  state_path: /sys/fs/bpf/kvmx\n", "kernel.state_path", false},
    KeyCase{"collector:\n  per_vm: false\n", "collector.per_vm", false},
    KeyCase{"collector:\n  per_vcpu: true\n", "collector.per_vcpu", false},
    KeyCase{"collector:\n  exit_handling_time: true\n", "collector.exit_handling_time", false},
    KeyCase{"collector:\n  vcpu_time: false\n", "collector.vcpu_time", true},
    KeyCase{"collector:\n  vcpu_time_interval: 1m\n", "collector.vcpu_time_interval", true},
    KeyCase{"collector:\n  vm_map_capacity: 2048\n", "collector.vm_map_capacity", false},
    KeyCase{"collector:\n  exit_handling_buckets: {min: 64us}\n", "collector.exit_handling_buckets",
            true},
    KeyCase{"collector:\n  exit_handling_buckets: {max: 100ms}\n",
            "collector.exit_handling_buckets", true},
    KeyCase{"collector:\n  drilldown: [io]\n", "collector.drilldown", false},
    KeyCase{"collector:\n  drilldown_max_keys: 8\n", "collector.drilldown_max_keys", false},
    KeyCase{"rates:\n  window: 1m\n", "rates.window", true},
    KeyCase{"rates:\n  sample_interval: 5s\n", "rates.sample_interval", true},
    KeyCase{"collector:\n  drilldown_auto:\n    threshold: 900\n", "collector.drilldown_auto",
            false},
    KeyCase{"vms:\n  max_vms: 7\n", "vms.max_vms", true},
    KeyCase{"vms:\n  grace_period: 1m\n", "vms.grace_period", true},
    KeyCase{"vms:\n  boot_window: 1m\n", "vms.boot_window", true},
    KeyCase{"vms:\n  naming_rules:\n    - regex: 'vm-(\\w+)'\n      name: '$1'\n",
            "vms.naming_rules", true},
};

class OneKeyChanged : public ::testing::TestWithParam<KeyCase> {};

INSTANTIATE_TEST_SUITE_P(EveryKey, OneKeyChanged, ::testing::ValuesIn(kKeyCases));

TEST_P(OneKeyChanged, IsReportedAsLiveOrNeedingARestart) {
  const KeyCase& param = GetParam();
  const Config reloaded = Parse(param.yaml);
  ASSERT_FALSE(reloaded == Config{}) << "the case changes nothing: " << param.yaml;
  const ConfigChanges changes = DiffConfig(Config{}, reloaded);
  if (param.live) {
    EXPECT_THAT(changes.live, ElementsAre(param.key));
    EXPECT_THAT(changes.restart, IsEmpty());
    EXPECT_EQ(RestartRequiredMessage(changes), "");
  } else {
    EXPECT_THAT(changes.restart, ElementsAre(param.key));
    EXPECT_THAT(changes.live, IsEmpty());
    EXPECT_THAT(RestartRequiredMessage(changes), HasSubstr(param.key));
  }
}

// A key added to the table ParseConfig reads (config_keys.cpp) needs its case
// above: else nobody decided whether a reload may apply it.
TEST(DiffConfig, EveryKeyOfTheTableHasACase) {
  for (const ConfigKey& key : ConfigKeys()) {
    const bool has_case = std::any_of(std::begin(kKeyCases), std::end(kKeyCases),
                                      [&](const KeyCase& c) { return c.key == key.name; });
    EXPECT_TRUE(has_case) << key.name << " has no case in kKeyCases";
  }
}

TEST(DiffConfig, SameConfigChangesNothing) {
  const Config config = Parse("vms:\n  max_vms: 3\nrates:\n  window: 1m\n");
  EXPECT_TRUE(DiffConfig(config, config).empty());
  EXPECT_EQ(JoinKeys(DiffConfig(config, config).live), "nothing");
}

TEST(DiffConfig, NamesEveryRestartKeyAndEveryLiveKey) {
  const Config reloaded = Parse(
      "web:\n  telemetry_path: /kvm\ncollector:\n  per_vcpu: true\nvms:\n  max_vms: 3\n"
      "  boot_window: 10s\n");
  const ConfigChanges changes = DiffConfig(Config{}, reloaded);
  EXPECT_THAT(changes.restart, ElementsAre("web.telemetry_path", "collector.per_vcpu"));
  EXPECT_THAT(changes.live, ElementsAre("vms.max_vms", "vms.boot_window"));
  EXPECT_EQ(RestartRequiredMessage(changes),
            "changed keys need a restart: web.telemetry_path, collector.per_vcpu; restart the "
            "exporter to apply them (nothing was changed)");
}

TEST(DiffConfig, ANamingRuleEditedInPlaceIsAChange) {
  const Config before = Parse("vms:\n  naming_rules:\n    - regex: 'a(.)'\n      name: '$1'\n");
  const Config after = Parse("vms:\n  naming_rules:\n    - regex: 'b(.)'\n      name: '$1'\n");
  EXPECT_THAT(DiffConfig(before, after).live, ElementsAre("vms.naming_rules"));
}

}  // namespace
}  // namespace kvmexit
