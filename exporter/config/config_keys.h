// SPDX-License-Identifier: Apache-2.0
// Every key of the configuration file, one row each: its dotted name, where
// Config keeps it, and how its value is read and checked. ParseConfig walks
// the file by this table and DiffConfig (config_reload.cpp) compares by it, so
// that a key cannot be read without a reload noticing its change.
//
// A new key: its field and default in config.h, its row in config_keys.cpp,
// its commented default in default_config.yaml, its case in
// config_reload_test.cpp; if a reload may apply it while the exporter runs,
// its line in DiffConfig (every other key needs a restart).
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/yaml_walker.h"

namespace kvmexit {

struct ConfigKey {
  std::string_view name;  // as written in the YAML and named by a reload: "rates.window"
  // Reads the key's value into `config`; throws at the value when it is not allowed.
  std::function<void(const YamlValue& value, Config& config)> read;
  // Whether the two configurations hold the same value of this key.
  std::function<bool(const Config& a, const Config& b)> same;

  std::string_view section() const { return name.substr(0, name.find('.')); }
  std::string_view key() const { return name.substr(name.find('.') + 1); }
};

// Every key, in the order of default_config.yaml (messages list them so);
// the sections in the order their first key comes.
const std::vector<ConfigKey>& ConfigKeys();

// The values one section of the file gave, by key: a problem between two keys
// is placed at the first of them the file gave.
struct GivenValues {
  const YamlValue& section;
  std::vector<std::pair<std::string_view, YamlValue>> by_key;

  // The value of the first of `keys` that was given, else the section.
  const YamlValue& FirstGiven(std::initializer_list<std::string_view> keys) const;
};

// The rules between keys of one section (rates.window against
// rates.sample_interval), checked once `section` is read.
void CheckKeysTogether(std::string_view section, const Config& config, const GivenValues& given);

}  // namespace kvmexit
