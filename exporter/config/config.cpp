// SPDX-License-Identifier: Apache-2.0
// ParseConfig walks the file section by section with the table of keys
// (config_keys.cpp); LoadConfig adds the command-line flags.
#include "config/config.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "config/config_keys.h"
#include "config/config_values.h"
#include "config/yaml_walker.h"
#include "util/file_text.h"
#include "util/listen_address.h"
#include "util/text.h"

namespace kvmexit {
namespace {

// Hands each key of the section `section` to its row of ConfigKeys(), then
// checks the rules between them.
void ReadSection(const YamlValue& section, std::string_view section_name, Config& config) {
  GivenValues given{section, {}};
  std::vector<YamlField> fields;
  for (const ConfigKey& key : ConfigKeys()) {
    if (key.section() != section_name) continue;
    fields.push_back({key.key(), [&key, &config, &given](const YamlValue& value) {
                        key.read(value, config);
                        given.by_key.emplace_back(key.key(), value);
                      }});
  }
  WalkMap(section, fields, {.label = "section " + Quoted(section_name)});
  CheckKeysTogether(section_name, config, given);
}

// The sections are those of ConfigKeys(), in the order their first key comes.
Config ReadDocument(const YamlValue& root) {
  Config config;
  std::vector<YamlField> sections;
  for (const ConfigKey& key : ConfigKeys()) {
    const std::string_view name = key.section();
    const auto same_section = [name](const YamlField& section) { return section.key == name; };
    if (std::any_of(sections.begin(), sections.end(), same_section)) continue;
    sections.push_back(
        {name, [name, &config](const YamlValue& value) { ReadSection(value, name, config); }});
  }
  WalkMap(root, sections, {.noun = "section", .label = "the configuration"});
  return config;
}

}  // namespace

std::variant<Config, ConfigError> ParseConfig(std::string_view yaml_text,
                                              std::string_view source_name) {
  Config config;
  std::string error = WalkYamlText(
      yaml_text, source_name, [&config](const YamlValue& root) { config = ReadDocument(root); });
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
