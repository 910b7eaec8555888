// SPDX-License-Identifier: Apache-2.0
#include "config/config.h"

#include <optional>
#include <span>
#include <string>
#include <utility>

#include "config/config_values.h"
#include "config/duration.h"
#include "config/yaml_walker.h"
#include "util/file_text.h"
#include "util/listen_address.h"
#include "util/text.h"

namespace kvmexit {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

void ParseSection(const YamlValue& section, std::span<const YamlField> fields) {
  WalkMap(section, fields, {.label = "section " + Quoted(section.name)});
}

void ParseWeb(const YamlValue& section, Config::Web& web) {
  const YamlField fields[] = {
      {"listen_address",
       [&](const YamlValue& value) { web.listen_address = ReadListenAddress(value); }},
      {"telemetry_path",
       [&](const YamlValue& value) { web.telemetry_path = ReadTelemetryPath(value); }},
  };
  ParseSection(section, fields);
}

void ParseKernel(const YamlValue& section, Config::Kernel& kernel) {
  const YamlField fields[] = {
      {"tracefs_path",
       [&](const YamlValue& value) { kernel.tracefs_path = ReadAbsolutePath(value); }},
      {"attach_retry_interval",
       [&](const YamlValue& value) {
         kernel.attach_retry_interval = ReadDuration(value, 100ms, 1h);
       }},
      {"hook", [&](const YamlValue& value) { kernel.hook = ReadKernelHook(value); }},
  };
  ParseSection(section, fields);
}

void ParseCollector(const YamlValue& section, Config::Collector& collector) {
  const YamlField fields[] = {
      {"per_vm", [&](const YamlValue& value) { collector.per_vm = ReadBool(value); }},
      {"per_vcpu", [&](const YamlValue& value) { collector.per_vcpu = ReadBool(value); }},
      {"exit_handling_time",
       [&](const YamlValue& value) { collector.exit_handling_time = ReadBool(value); }},
      {"vcpu_time", [&](const YamlValue& value) { collector.vcpu_time = ReadBool(value); }},
      {"vcpu_time_interval",
       [&](const YamlValue& value) {
         collector.vcpu_time_interval = ReadDuration(value, 1s, 5min);
       }},
      {"vm_map_capacity",
       [&](const YamlValue& value) {
         collector.vm_map_capacity = ReadUint32(value, 16, 4'194'304);
       }},
      {"exit_handling_buckets",
       [&](const YamlValue& value) {
         collector.exit_handling_buckets = ReadExitHandlingBuckets(value);
       }},
      {"drilldown",
       [&](const YamlValue& value) { collector.drilldown = ReadDrilldownKinds(value); }},
      {"drilldown_max_keys",
       [&](const YamlValue& value) {
         collector.drilldown_max_keys = ReadUint32(value, 1, kMaxDrilldownKeys);
       }},
  };
  ParseSection(section, fields);
}

void ParseRates(const YamlValue& section, Config::Rates& rates) {
  constexpr milliseconds kMinSampleInterval = 100ms;
  std::optional<YamlValue> window;
  std::optional<YamlValue> sample_interval;
  const YamlField fields[] = {
      {"window",
       [&](const YamlValue& value) {
         rates.window = ReadDuration(value, 2 * kMinSampleInterval, 1h);
         window = value;
       }},
      {"sample_interval",
       [&](const YamlValue& value) {
         rates.sample_interval = ReadDuration(value, kMinSampleInterval, 1min);
         sample_interval = value;
       }},
  };
  ParseSection(section, fields);
  // A rate needs at least two samples inside the window.
  if (rates.window < 2 * rates.sample_interval) {
    const YamlValue& culprit = window ? *window : sample_interval ? *sample_interval : section;
    culprit.Fail("rates.window (" + FormatDuration(rates.window) +
                 ") must be at least twice rates.sample_interval (" +
                 FormatDuration(rates.sample_interval) + ")");
  }
}

void ParseVms(const YamlValue& section, Config::Vms& vms) {
  const YamlField fields[] = {
      {"max_vms", [&](const YamlValue& value) { vms.max_vms = ReadUint32(value, 1, 100'000); }},
      {"grace_period",
       [&](const YamlValue& value) { vms.grace_period = ReadDuration(value, 0ms, 24h); }},
      {"boot_window",
       [&](const YamlValue& value) { vms.boot_window = ReadDuration(value, 1s, 24h); }},
      {"naming_rules", [&](const YamlValue& value) { vms.naming_rules = ReadNamingRules(value); }},
  };
  ParseSection(section, fields);
}

Config ParseDocument(const YamlValue& root) {
  Config config;
  const YamlField sections[] = {
      {"web", [&](const YamlValue& value) { ParseWeb(value, config.web); }},
      {"kernel", [&](const YamlValue& value) { ParseKernel(value, config.kernel); }},
      {"collector", [&](const YamlValue& value) { ParseCollector(value, config.collector); }},
      {"rates", [&](const YamlValue& value) { ParseRates(value, config.rates); }},
      {"vms", [&](const YamlValue& value) { ParseVms(value, config.vms); }},
  };
  WalkMap(root, sections, {.noun = "section", .label = "the configuration"});
  return config;
}

}  // namespace

std::variant<Config, ConfigError> ParseConfig(std::string_view yaml_text,
                                              std::string_view source_name) {
  Config config;
  std::string error = WalkYamlText(
      yaml_text, source_name, [&config](const YamlValue& root) { config = ParseDocument(root); });
  if (!error.empty()) return ConfigError{std::move(error)};
  return config;
}

std::variant<Config, ConfigError> LoadConfigFile(const std::string& path) {
  std::string text;
  if (std::string error = ReadUserFile(path, "the config file", kMaxConfigFileBytes, &text);
      !error.empty()) {
    return ConfigError{std::move(error)};
  }
  return ParseConfig(text, path);
}

std::variant<Config, ConfigError> LoadConfig(const std::string& path,
                                             const ConfigOverrides& overrides) {
  auto loaded =
      path.empty() ? ParseConfig(kDefaultConfigYaml, "<embedded default>") : LoadConfigFile(path);
  auto* config = std::get_if<Config>(&loaded);
  if (config == nullptr) return loaded;
  // Flags bypass the YAML walk, so each is checked here by its key's rule.
  if (overrides.listen_address) {
    const std::optional<ListenAddress> address = ParseListenAddress(*overrides.listen_address);
    if (!address) {
      return ConfigError{"--web.listen-address: invalid address " +
                         Quoted(*overrides.listen_address) + "; use " +
                         std::string(kListenAddressRule)};
    }
    config->web.listen_address = *address;
  }
  if (overrides.telemetry_path) {
    if (!IsTelemetryPath(*overrides.telemetry_path)) {
      return ConfigError{"--web.telemetry-path: invalid path " + Quoted(*overrides.telemetry_path) +
                         "; use " + std::string(kTelemetryPathRule)};
    }
    config->web.telemetry_path = *overrides.telemetry_path;
  }
  // Resolved here too, not only by the server, so that --config.check fails on
  // a host name no resolver knows instead of the daemon failing at start.
  std::string resolve_error;
  if (!ResolveListenAddress(config->web.listen_address, &resolve_error)) {
    const std::string setting = overrides.listen_address ? "--web.listen-address"
                                : path.empty()           ? "<embedded default>: web.listen_address"
                                                         : path + ": web.listen_address";
    return ConfigError{setting + ": " + resolve_error};
  }
  return loaded;
}

}  // namespace kvmexit
