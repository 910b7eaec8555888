// SPDX-License-Identifier: Apache-2.0
// The one way the exporter walks a loaded YAML document (the configuration,
// the --web.config.file): map by map and key by key, refusing unknown and
// repeated keys, with every problem placed at its file:line:column and worded
// "<what is wrong>; <what is allowed>". The document itself comes from
// LoadSingleDocument (yaml_document.h).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace kvmexit {

// What a node holds, for "got ..." in messages: "\"text\"", "a list", "a map"
// or "nothing".
std::string DescribeNode(const YAML::Node& node);

// A value found in the document, with the dotted name messages call it by.
// Each Fail* throws YamlProblem (yaml_document.h) at the value's place.
struct YamlValue {
  YAML::Node node;
  YAML::Mark key_mark;  // where its key is (for a list item: where the item is)
  std::string name;     // "web.listen_address", "vms.naming_rules[0].regex"; "" for the root

  // yaml-cpp places an empty value (`key:`) at the next token, often on a later
  // line, so problems with it are reported at its key.
  YAML::Mark mark() const { return node.IsNull() ? key_mark : node.Mark(); }

  // `message` as it is.
  [[noreturn]] void Fail(const std::string& message) const;
  // "<name>: <problem>".
  [[noreturn]] void FailWith(std::string_view problem) const;
  // "<name> must be <expected>, got <what it holds>".
  [[noreturn]] void FailExpected(std::string_view expected) const;
  // "<name> is not supported by kvm_exit_exporter (<why>); remove it", at the
  // key: a setting that is not applied must never be silently ignored.
  [[noreturn]] void FailUnsupported(std::string_view why) const;
};

// A key a map may hold, and what reads its value.
struct YamlField {
  std::string_view key;
  std::function<void(const YamlValue&)> read;
};

// A key this program knows but refuses, and why (FailUnsupported).
struct RefusedKey {
  std::string_view key;
  std::string_view why;
};

// How messages speak of a map.
struct MapWording {
  std::string_view noun = "key";  // what its keys are: "key", "section", "header", "user name"
  // What the map is called: "section \"web\"", "the configuration"; empty
  // means its dotted name.
  std::string label = {};
};

// Hands each entry of the map `map` to the field of its key, in document
// order. Missing keys are left alone (they keep their defaults); an empty
// value (`web:` with nothing below) is an empty map. Unknown and repeated keys
// are errors: a misspelt key would otherwise silently keep its default.
// `refused` keys are named as not supported, and not listed as allowed.
void WalkMap(const YamlValue& map, std::span<const YamlField> fields,
             const MapWording& wording = {}, std::span<const RefusedKey> refused = {});

// For a map whose keys are names the user chooses (basic_auth_users): calls
// `visit` with each key and its value, in document order; refuses a key given
// twice, a key that is not a plain name and anything but a map.
void ForEachEntry(const YamlValue& map, const MapWording& wording,
                  const std::function<void(const std::string& key, const YamlValue& value)>& visit);

// Calls `visit` with each item of the list `list`, named "<list>[<index>]".
// An empty value is an empty list; anything else but a list is refused as not
// being `expected` ("a list of names").
void ForEachItem(const YamlValue& list, std::string_view expected,
                 const std::function<void(const YamlValue& item)>& visit);

// The text of a scalar value; anything else is refused as not being `expected`.
const std::string& ScalarText(const YamlValue& value, std::string_view expected);

// Only YAML 1.2 booleans: yaml-cpp would also take yes/no/on/off/y/n, which
// YAML 1.2 reads as strings, and a quoted "true" is a string in both (Go's
// yaml, which exporter-toolkit reads its files with, refuses it for a bool too).
bool ReadBool(const YamlValue& value);

// An unsigned integer from `min` to `max`, written in decimal.
std::uint32_t ReadUint32(const YamlValue& value, std::uint32_t min, std::uint32_t max);

// Loads the single document of `yaml_text` (LoadSingleDocument) and hands its
// root, named "", to `walk`; an empty document is not walked. Returns "" or the
// first problem, located: "<source_name>:<line>:<column>: <message>".
std::string WalkYamlText(std::string_view yaml_text, std::string_view source_name,
                         const std::function<void(const YamlValue& root)>& walk);

}  // namespace kvmexit
