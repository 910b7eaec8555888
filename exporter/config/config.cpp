// SPDX-License-Identifier: Apache-2.0
#include "config/config.h"

#include <linux/types.h>  // kvm_exit.h's __u32, __u64
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <utility>

#include "config/duration.h"
#include "config/yaml_document.h"
#include "identity/naming_rules.h"
#include "kvm_exit.h"
#include "util/file_text.h"
#include "util/listen_address.h"
#include "util/text.h"

namespace kvmexit {
namespace {

static_assert(kMaxExitHandlingBucket.count() == std::int64_t{1} << (KVM_EXIT_TIME_BUCKETS - 1),
              "the config's largest exit bucket must be the BPF program's");

using std::chrono::microseconds;
using std::chrono::milliseconds;
using namespace std::chrono_literals;

// A problem at a place in the document. Thrown while walking the document and
// turned into a ConfigError by ParseConfig, so that every check can stop the
// walk without threading an error through each call.

// What a node holds, for "got ..." in messages.
std::string Describe(const YAML::Node& node) {
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

// A value found under a key, with the dotted name messages call it by.
struct Value {
  YAML::Node node;
  YAML::Mark key_mark;
  std::string name;  // "web.listen_address", "vms.naming_rules[0].regex"

  // yaml-cpp places an empty value (`key:`) at the next token, often on a later
  // line, so problems with it are reported at its key.
  YAML::Mark mark() const { return node.IsNull() ? key_mark : node.Mark(); }

  [[noreturn]] void Fail(const std::string& message) const { throw YamlProblem(mark(), message); }
  [[noreturn]] void FailExpected(std::string_view expected) const {
    Fail(name + " must be " + std::string(expected) + ", got " + Describe(node));
  }
};

struct Field {
  std::string_view key;
  std::function<void(const Value&)> parse;
};

// How messages speak of a map and its keys.
struct MapContext {
  std::string path;       // prefix of its values' names: "web"; "" at the top level
  std::string label;      // "section \"web\"", "vms.naming_rules[0]", "the configuration"
  std::string_view noun;  // "key", or "section" at the top level
};

std::string KeyList(std::span<const Field> fields) {
  std::string list;
  for (const Field& field : fields) {
    if (!list.empty()) list += ", ";
    list += field.key;
  }
  return list;
}

const Field* FindField(std::span<const Field> fields, std::string_view key) {
  for (const Field& field : fields) {
    if (field.key == key) return &field;
  }
  return nullptr;
}

// Hands each key of `node` to its field. Missing keys keep their defaults; an
// empty map (`web:` with nothing below) is allowed. Unknown and repeated keys
// are errors: a misspelt key would otherwise silently keep its default.
void ParseMap(const YAML::Node& node, const MapContext& context, std::span<const Field> fields) {
  const std::string noun(context.noun);
  if (node.IsNull()) return;
  if (!node.IsMap()) {
    throw YamlProblem(node.Mark(), context.label + " must be a map of " + noun + "s (" +
                                       KeyList(fields) + "), got " + Describe(node));
  }
  std::map<std::string, YAML::Mark, std::less<>> seen;
  for (const auto& entry : node) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) {
      throw YamlProblem(key.Mark(), context.label + ": a " + noun + " must be a plain name, got " +
                                        Describe(key));
    }
    const std::string in_label = context.path.empty() ? "" : " in " + context.label;
    const Field* field = FindField(fields, key.Scalar());
    if (field == nullptr) {
      std::string message = "unknown ";
      message.append(noun).append(" ").append(Quoted(key.Scalar())).append(in_label);
      message.append("; allowed ").append(noun).append("s: ").append(KeyList(fields));
      throw YamlProblem(key.Mark(), message);
    }
    if (const auto [first, inserted] = seen.emplace(key.Scalar(), key.Mark()); !inserted) {
      std::string message = "duplicate ";
      message.append(noun).append(" ").append(Quoted(key.Scalar())).append(in_label);
      message.append(" (first at line ").append(std::to_string(first->second.line + 1)).append(")");
      throw YamlProblem(key.Mark(), message);
    }
    const std::string name =
        context.path.empty() ? key.Scalar() : context.path + "." + key.Scalar();
    field->parse(Value{entry.second, key.Mark(), name});
  }
}

void ParseSection(const Value& section, std::span<const Field> fields) {
  ParseMap(section.node, {section.name, "section " + Quoted(section.name), "key"}, fields);
}

const std::string& ScalarText(const Value& value, std::string_view expected) {
  if (!value.node.IsScalar()) value.FailExpected(expected);
  return value.node.Scalar();
}

// Only YAML 1.2 booleans: yaml-cpp would also take yes/no/on/off/y/n, which
// YAML 1.2 reads as strings, and a quoted "true" is a string in both.
bool ParseBool(const Value& value) {
  constexpr std::string_view kExpected = "true or false (a YAML boolean, unquoted)";
  const std::string& text = ScalarText(value, kExpected);
  const bool plain = value.node.Tag() == "?";
  if (plain && (text == "true" || text == "True" || text == "TRUE")) return true;
  if (plain && (text == "false" || text == "False" || text == "FALSE")) return false;
  value.FailExpected(kExpected);
}

std::uint32_t ParseUint32(const Value& value, std::uint32_t min, std::uint32_t max) {
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

// The two duration grains of the configuration: milliseconds everywhere, and
// microseconds where a key needs them (collector.exit_handling_buckets).
std::optional<milliseconds> ParseIn(std::string_view text, milliseconds /*grain*/) {
  return ParseDuration(text);
}
std::optional<microseconds> ParseIn(std::string_view text, microseconds /*grain*/) {
  return ParseFineDuration(text);
}
std::string Format(milliseconds duration) { return FormatDuration(duration); }
std::string Format(microseconds duration) { return FormatFineDuration(duration); }
constexpr std::string_view UnitsOf(milliseconds /*grain*/) { return "ms, s, m or h, e.g. \"30s\""; }
constexpr std::string_view UnitsOf(microseconds /*grain*/) {
  return "us, ms, s, m or h, e.g. \"100us\"";
}

template <typename Duration>
Duration ParseDurationIn(const Value& value, Duration min, Duration max) {
  const std::string& text = ScalarText(value, "a duration such as \"30s\"");
  const std::optional<Duration> duration = ParseIn(text, Duration{});
  if (!duration) {
    value.Fail(value.name + ": invalid duration " + Quoted(text) + "; use a number with " +
               std::string(UnitsOf(Duration{})));
  }
  if (*duration < min || *duration > max) {
    value.Fail(value.name + " must be from " + Format(min) + " to " + Format(max) + ", got " +
               Quoted(text));
  }
  return *duration;
}

milliseconds ParseDurationValue(const Value& value, milliseconds min, milliseconds max) {
  return ParseDurationIn(value, min, max);
}

microseconds ParseFineDurationValue(const Value& value, microseconds min, microseconds max) {
  return ParseDurationIn(value, min, max);
}

// A string that `is_valid` accepts; `expected` says what that is.
std::string ParseString(const Value& value, std::string_view expected,
                        bool (*is_valid)(std::string_view)) {
  const std::string& text = ScalarText(value, expected);
  if (!is_valid(text)) value.FailExpected(expected);
  return text;
}

ListenAddress ParseListenAddressValue(const Value& value) {
  const std::optional<ListenAddress> address =
      ParseListenAddress(ScalarText(value, kListenAddressRule));
  if (!address) value.FailExpected(kListenAddressRule);
  return *address;
}

bool HasSpaceOrControl(std::string_view text) {
  for (const char c : text) {
    if (std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c))) {
      return true;
    }
  }
  return false;
}

// Longer paths are a mistake, not a need; the server's request buffer is 16 KiB.
constexpr std::size_t kMaxTelemetryPathBytes = 1024;

bool IsHexDigit(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// The server compares the percent-decoded request path with this text, and
// clients remove dot segments before they send a request (RFC 3986 5.2.4), so a
// path that decoding or normalising changes could never be scraped: refuse it
// here rather than serve 404s.
bool IsTelemetryPath(std::string_view path) {
  if (path.size() < 2 || path.size() > kMaxTelemetryPathBytes || path.front() != '/' ||
      HasSpaceOrControl(path) || path.find_first_of("?#") != std::string_view::npos ||
      path.find("//") != std::string_view::npos) {
    return false;
  }
  for (std::size_t percent = path.find('%'); percent != std::string_view::npos;
       percent = path.find('%', percent + 1)) {
    if (percent + 2 < path.size() && IsHexDigit(path[percent + 1]) &&
        IsHexDigit(path[percent + 2])) {
      return false;
    }
  }
  for (std::size_t begin = 1; begin <= path.size();) {
    const std::size_t end = std::min(path.find('/', begin), path.size());
    const std::string_view segment = path.substr(begin, end - begin);
    if (segment == "." || segment == "..") return false;
    begin = end + 1;
  }
  return true;
}

bool IsAbsolutePath(std::string_view path) { return path.starts_with('/'); }

bool IsNonEmpty(std::string_view text) { return !text.empty(); }

constexpr std::string_view kTelemetryPathRule =
    "a URL path starting with \"/\" other than \"/\", of at most 1024 bytes, without "
    "spaces, \"?\", \"#\", \"//\", \".\" or \"..\" segments or percent-encoding, "
    "e.g. \"/metrics\"";

void ParseWeb(const Value& section, Config::Web& web) {
  const Field fields[] = {
      {"listen_address",
       [&](const Value& value) { web.listen_address = ParseListenAddressValue(value); }},
      {"telemetry_path",
       [&](const Value& value) {
         web.telemetry_path = ParseString(value, kTelemetryPathRule, IsTelemetryPath);
       }},
  };
  ParseSection(section, fields);
}

KernelHook ParseHook(const Value& value) {
  const std::optional<KernelHook> hook = ParseKernelHook(ScalarText(value, kKernelHookNames));
  if (!hook) value.FailExpected(kKernelHookNames);
  return *hook;
}

void ParseKernel(const Value& section, Config::Kernel& kernel) {
  const Field fields[] = {
      {"tracefs_path",
       [&](const Value& value) {
         kernel.tracefs_path = ParseString(value, "an absolute path", IsAbsolutePath);
       }},
      {"attach_retry_interval",
       [&](const Value& value) {
         kernel.attach_retry_interval = ParseDurationValue(value, 100ms, 1h);
       }},
      {"hook", [&](const Value& value) { kernel.hook = ParseHook(value); }},
  };
  ParseSection(section, fields);
}

// collector.exit_handling_buckets: {min, max}, each from 1us to the largest
// BPF bound, min <= max. Rounding to the BPF bounds is SelectExitBuckets'.
void ParseExitHandlingBuckets(const Value& map, Config::Collector::ExitHandlingBuckets& buckets) {
  constexpr microseconds kMinBucket{1};
  std::optional<Value> min;
  std::optional<Value> max;
  const Field fields[] = {
      {"min",
       [&](const Value& value) {
         buckets.min = ParseFineDurationValue(value, kMinBucket, kMaxExitHandlingBucket);
         min = value;
       }},
      {"max",
       [&](const Value& value) {
         buckets.max = ParseFineDurationValue(value, kMinBucket, kMaxExitHandlingBucket);
         max = value;
       }},
  };
  ParseMap(map.node, {map.name, map.name, "key"}, fields);
  if (buckets.min > buckets.max) {
    const Value& culprit = min ? *min : max ? *max : map;
    culprit.Fail(map.name + ".min (" + FormatFineDuration(buckets.min) + ") must not exceed " +
                 map.name + ".max (" + FormatFineDuration(buckets.max) + ")");
  }
}

std::vector<DrilldownKind> ParseDrilldownKinds(const Value& list) {
  const std::string expected =
      "a list of drill-down kinds, e.g. [io] (supported: " + DrilldownKindList() +
      "), or [] for none";
  if (list.node.IsNull()) return {};
  if (!list.node.IsSequence()) list.FailExpected(expected);
  std::vector<DrilldownKind> kinds;
  for (std::size_t i = 0; i < list.node.size(); ++i) {
    const YAML::Node item = list.node[i];
    const Value value{item, item.Mark(), list.name + "[" + std::to_string(i) + "]"};
    const std::string& name = ScalarText(value, "a drill-down kind name");
    const std::optional<DrilldownKind> kind = ParseDrilldownKind(name);
    if (!kind) {
      value.Fail(value.name + ": unknown or not yet supported drill-down kind " + Quoted(name) +
                 "; supported: " + DrilldownKindList());
    }
    if (std::find(kinds.begin(), kinds.end(), *kind) != kinds.end()) {
      value.Fail(value.name + ": " + Quoted(name) + " is listed twice");
    }
    kinds.push_back(*kind);
  }
  std::sort(kinds.begin(), kinds.end());
  return kinds;
}

void ParseCollector(const Value& section, Config::Collector& collector) {
  const Field fields[] = {
      {"per_vm", [&](const Value& value) { collector.per_vm = ParseBool(value); }},
      {"per_vcpu", [&](const Value& value) { collector.per_vcpu = ParseBool(value); }},
      {"exit_handling_time",
       [&](const Value& value) { collector.exit_handling_time = ParseBool(value); }},
      {"vcpu_time", [&](const Value& value) { collector.vcpu_time = ParseBool(value); }},
      {"vcpu_time_interval",
       [&](const Value& value) {
         collector.vcpu_time_interval = ParseDurationValue(value, 1s, 5min);
       }},
      {"vm_map_capacity",
       [&](const Value& value) { collector.vm_map_capacity = ParseUint32(value, 16, 4'194'304); }},
      {"exit_handling_buckets",
       [&](const Value& value) {
         ParseExitHandlingBuckets(value, collector.exit_handling_buckets);
       }},
      {"drilldown", [&](const Value& value) { collector.drilldown = ParseDrilldownKinds(value); }},
      {"drilldown_max_keys",
       [&](const Value& value) {
         collector.drilldown_max_keys = ParseUint32(value, 1, kMaxDrilldownKeys);
       }},
  };
  ParseSection(section, fields);
}

void ParseRates(const Value& section, Config::Rates& rates) {
  constexpr milliseconds kMinSampleInterval = 100ms;
  std::optional<Value> window;
  std::optional<Value> sample_interval;
  const Field fields[] = {
      {"window",
       [&](const Value& value) {
         rates.window = ParseDurationValue(value, 2 * kMinSampleInterval, 1h);
         window = value;
       }},
      {"sample_interval",
       [&](const Value& value) {
         rates.sample_interval = ParseDurationValue(value, kMinSampleInterval, 1min);
         sample_interval = value;
       }},
  };
  ParseSection(section, fields);
  // A rate needs at least two samples inside the window.
  if (rates.window < 2 * rates.sample_interval) {
    const Value& culprit = window ? *window : sample_interval ? *sample_interval : section;
    culprit.Fail("rates.window (" + FormatDuration(rates.window) +
                 ") must be at least twice rates.sample_interval (" +
                 FormatDuration(rates.sample_interval) + ")");
  }
}

NamingRule::Source ParseSource(const Value& value) {
  constexpr std::string_view kExpected = "cmdline or cgroup";
  const std::string& text = ScalarText(value, kExpected);
  if (text == "cmdline") return NamingRule::Source::kCmdline;
  if (text == "cgroup") return NamingRule::Source::kCgroup;
  value.FailExpected(kExpected);
}

NamingRule ParseNamingRule(const Value& item) {
  constexpr std::string_view kNonEmpty = "a non-empty string";
  NamingRule rule;
  std::optional<Value> regex;
  std::optional<Value> name;
  const Field fields[] = {
      {"source", [&](const Value& value) { rule.source = ParseSource(value); }},
      {"regex",
       [&](const Value& value) {
         rule.regex = ParseString(value, kNonEmpty, IsNonEmpty);
         regex = value;
       }},
      {"name",
       [&](const Value& value) {
         rule.name = ParseString(value, kNonEmpty, IsNonEmpty);
         name = value;
       }},
  };
  ParseMap(item.node, {item.name, item.name, "key"}, fields);
  if (!regex || !name) {
    item.Fail(item.name + " is missing key " + Quoted(regex ? "name" : "regex") +
              "; a naming rule needs regex and name, and optionally source (cmdline or cgroup, "
              "default cmdline)");
  }
  if (auto problem = CompileNamingRule(rule)) {
    const Value& culprit = problem->part == NamingRuleProblem::Part::kRegex ? *regex : *name;
    culprit.Fail(culprit.name + ": " + problem->message);
  }
  return rule;
}

std::vector<NamingRule> ParseNamingRules(const Value& list) {
  if (list.node.IsNull()) return {};
  if (!list.node.IsSequence()) list.FailExpected("a list of {source, regex, name} maps");
  if (list.node.size() > kMaxNamingRules) {
    list.Fail(list.name + " has " + std::to_string(list.node.size()) + " rules; at most " +
              std::to_string(kMaxNamingRules) + " are allowed (each is a regex tried on every VM)");
  }
  std::vector<NamingRule> rules;
  for (std::size_t i = 0; i < list.node.size(); ++i) {
    const YAML::Node item = list.node[i];
    const YAML::Mark mark = item.IsNull() ? list.node.Mark() : item.Mark();
    rules.push_back(ParseNamingRule(Value{item, mark, list.name + "[" + std::to_string(i) + "]"}));
  }
  return rules;
}

void ParseVms(const Value& section, Config::Vms& vms) {
  const Field fields[] = {
      {"max_vms", [&](const Value& value) { vms.max_vms = ParseUint32(value, 1, 100'000); }},
      {"grace_period",
       [&](const Value& value) { vms.grace_period = ParseDurationValue(value, 0ms, 24h); }},
      {"boot_window",
       [&](const Value& value) { vms.boot_window = ParseDurationValue(value, 1s, 24h); }},
      {"naming_rules", [&](const Value& value) { vms.naming_rules = ParseNamingRules(value); }},
  };
  ParseSection(section, fields);
}

Config ParseDocument(const YAML::Node& root) {
  Config config;
  const Field sections[] = {
      {"web", [&](const Value& value) { ParseWeb(value, config.web); }},
      {"kernel", [&](const Value& value) { ParseKernel(value, config.kernel); }},
      {"collector", [&](const Value& value) { ParseCollector(value, config.collector); }},
      {"rates", [&](const Value& value) { ParseRates(value, config.rates); }},
      {"vms", [&](const Value& value) { ParseVms(value, config.vms); }},
  };
  ParseMap(root, {"", "the configuration", "section"}, sections);
  return config;
}

Config ParseText(std::string_view yaml_text) {
  const std::optional<YAML::Node> root = LoadSingleDocument(std::string(yaml_text));
  return root ? ParseDocument(*root) : Config{};
}

}  // namespace

std::variant<Config, ConfigError> ParseConfig(std::string_view yaml_text,
                                              std::string_view source_name) {
  try {
    return ParseText(yaml_text);
  } catch (const YamlProblem& problem) {
    return ConfigError{Located(source_name, problem.mark(), problem.what())};
  } catch (const YAML::Exception& e) {
    return ConfigError{Located(source_name, e.mark, "invalid YAML: " + e.msg)};
  } catch (const std::exception& e) {
    return ConfigError{Located(source_name, YAML::Mark::null_mark(), e.what())};
  }
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
