// SPDX-License-Identifier: Apache-2.0
#include "config/yaml_walker.h"

#include <charconv>
#include <map>
#include <optional>
#include <stdexcept>
#include <utility>

#include "config/yaml_document.h"
#include "util/text.h"

namespace kvmexit {
namespace {

// "a, b, c": the keys of `fields`, for "allowed keys: ..." in messages.
std::string KeyList(std::span<const YamlField> fields) {
  std::string list;
  for (const YamlField& field : fields) {
    if (!list.empty()) list += ", ";
    list += field.key;
  }
  return list;
}

const YamlField* FindField(std::span<const YamlField> fields, std::string_view key) {
  for (const YamlField& field : fields) {
    if (field.key == key) return &field;
  }
  return nullptr;
}

const RefusedKey* FindRefused(std::span<const RefusedKey> refused, std::string_view key) {
  for (const RefusedKey& entry : refused) {
    if (entry.key == key) return &entry;
  }
  return nullptr;
}

std::string LabelOf(const YamlValue& map, const MapWording& wording) {
  return wording.label.empty() ? map.name : wording.label;
}

// What ForEachEntry and WalkMap share: `map` must be a map (or empty) of plain
// keys, each given once; `visit` gets each key, its value, and " in <label>"
// for messages (empty at the top level, where the label says nothing more).
// `allowed` is said when the map is not one: "(a, b)", or "" for free keys.
void WalkEntries(const YamlValue& map, const MapWording& wording, const std::string& allowed,
                 const std::function<void(const std::string& key, const YamlValue& value,
                                          const std::string& in_label)>& visit) {
  const std::string noun(wording.noun);
  const std::string label = LabelOf(map, wording);
  if (map.node.IsNull()) return;
  if (!map.node.IsMap()) {
    throw YamlProblem(map.node.Mark(), label + " must be a map of " + noun + "s" + allowed +
                                           ", got " + DescribeNode(map.node));
  }
  const std::string in_label = map.name.empty() ? "" : " in " + label;
  std::map<std::string, YAML::Mark, std::less<>> seen;
  for (const auto& entry : map.node) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) {
      std::string message = label;
      message.append(": a ").append(noun).append(" must be a plain name, got ");
      throw YamlProblem(key.Mark(), message.append(DescribeNode(key)));
    }
    if (const auto [first, inserted] = seen.emplace(key.Scalar(), key.Mark()); !inserted) {
      std::string message = "duplicate ";
      message.append(noun).append(" ").append(Quoted(key.Scalar())).append(in_label);
      message.append(" (first at line ").append(std::to_string(first->second.line + 1)).append(")");
      throw YamlProblem(key.Mark(), message);
    }
    std::string name = map.name.empty() ? key.Scalar() : map.name + "." + key.Scalar();
    visit(key.Scalar(), YamlValue{entry.second, key.Mark(), std::move(name)}, in_label);
  }
}

}  // namespace

std::string DescribeNode(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return Quoted(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "nothing";
  }
}

void YamlValue::Fail(const std::string& message) const { throw YamlProblem(mark(), message); }

void YamlValue::FailWith(std::string_view problem) const {
  Fail(name + ": " + std::string(problem));
}

void YamlValue::FailExpected(std::string_view expected) const {
  Fail(name + " must be " + std::string(expected) + ", got " + DescribeNode(node));
}

void YamlValue::FailUnsupported(std::string_view why) const {
  throw YamlProblem(key_mark, name + " is not supported by kvm_exit_exporter (" + std::string(why) +
                                  "); remove it");
}

void WalkMap(const YamlValue& map, std::span<const YamlField> fields, const MapWording& wording,
             std::span<const RefusedKey> refused) {
  const std::string noun(wording.noun);
  WalkEntries(map, wording, " (" + KeyList(fields) + ")",
              [&](const std::string& key, const YamlValue& value, const std::string& in_label) {
                if (const RefusedKey* entry = FindRefused(refused, key)) {
                  value.FailUnsupported(entry->why);
                }
                const YamlField* field = FindField(fields, key);
                if (field == nullptr) {
                  std::string message = "unknown ";
                  message.append(noun).append(" ").append(Quoted(key)).append(in_label);
                  message.append("; allowed ").append(noun).append("s: ").append(KeyList(fields));
                  throw YamlProblem(value.key_mark, message);
                }
                field->read(value);
              });
}

void ForEachEntry(
    const YamlValue& map, const MapWording& wording,
    const std::function<void(const std::string& key, const YamlValue& value)>& visit) {
  WalkEntries(map, wording, "",
              [&](const std::string& key, const YamlValue& value, const std::string& /*in_label*/) {
                visit(key, value);
              });
}

void ForEachItem(const YamlValue& list, std::string_view expected,
                 const std::function<void(const YamlValue& item)>& visit) {
  if (list.node.IsNull()) return;
  if (!list.node.IsSequence()) list.FailExpected(expected);
  for (std::size_t i = 0; i < list.node.size(); ++i) {
    const YAML::Node item = list.node[i];
    // An empty item (`- ` alone) has no place of its own: the list's is the nearest.
    const YAML::Mark mark = item.IsNull() ? list.node.Mark() : item.Mark();
    visit(YamlValue{item, mark, list.name + "[" + std::to_string(i) + "]"});
  }
}

const std::string& ScalarText(const YamlValue& value, std::string_view expected) {
  if (!value.node.IsScalar()) value.FailExpected(expected);
  return value.node.Scalar();
}

bool ReadBool(const YamlValue& value) {
  constexpr std::string_view kExpected = "true or false (a YAML boolean, unquoted)";
  const std::string& text = ScalarText(value, kExpected);
  const bool plain = value.node.Tag() == "?";
  if (plain && (text == "true" || text == "True" || text == "TRUE")) return true;
  if (plain && (text == "false" || text == "False" || text == "FALSE")) return false;
  value.FailExpected(kExpected);
}

std::uint32_t ReadUint32(const YamlValue& value, std::uint32_t min, std::uint32_t max) {
  const std::string expected =
      "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  const std::string& text = ScalarText(value, expected);
  std::uint64_t number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || number < min ||
      number > max) {
    value.FailExpected(expected);
  }
  return static_cast<std::uint32_t>(number);
}

std::string WalkYamlText(std::string_view yaml_text, std::string_view source_name,
                         const std::function<void(const YamlValue& root)>& walk) {
  // Every check throws at its place, so that any of them can stop the walk
  // without threading an error through each call; here the throw becomes the
  // message.
  try {
    const std::optional<YAML::Node> root = LoadSingleDocument(std::string(yaml_text));
    if (root) walk(YamlValue{*root, root->Mark(), ""});
    return "";
  } catch (const YamlProblem& problem) {
    return Located(source_name, problem.mark(), problem.what());
  } catch (const YAML::Exception& e) {
    return Located(source_name, e.mark, "invalid YAML: " + e.msg);
  } catch (const std::exception& e) {
    return Located(source_name, YAML::Mark::null_mark(), e.what());
  }
}

}  // namespace kvmexit
