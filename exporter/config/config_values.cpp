// SPDX-License-Identifier: Apache-2.0
#include "config/config_values.h"

#include <linux/types.h>  // kvm_exit.h's __u32, __u64

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <optional>

#include "config/duration.h"
#include "kvm_exit.h"
#include "render/reason_names.h"
#include "util/text.h"

namespace kvmexit {
namespace {

static_assert(kMaxExitHandlingBucket.count() == std::int64_t{1} << (KVM_EXIT_TIME_BUCKETS - 1),
              "the config's largest exit bucket must be the BPF program's");

using std::chrono::microseconds;
using std::chrono::milliseconds;

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
Duration ReadDurationIn(const YamlValue& value, Duration min, Duration max) {
  const std::string& text = ScalarText(value, "a duration such as \"30s\"");
  const std::optional<Duration> duration = ParseIn(text, Duration{});
  if (!duration) {
    value.FailWith("invalid duration " + Quoted(text) + "; use a number with " +
                   std::string(UnitsOf(Duration{})));
  }
  if (*duration < min || *duration > max) {
    value.Fail(value.name + " must be from " + Format(min) + " to " + Format(max) + ", got " +
               Quoted(text));
  }
  return *duration;
}

// A string that `is_valid` accepts; `expected` says what that is.
std::string ReadString(const YamlValue& value, std::string_view expected,
                       bool (*is_valid)(std::string_view)) {
  const std::string& text = ScalarText(value, expected);
  if (!is_valid(text)) value.FailExpected(expected);
  return text;
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

bool IsHexDigit(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

bool IsAbsolutePath(std::string_view path) { return path.starts_with('/'); }

bool IsNonEmpty(std::string_view text) { return !text.empty(); }

NamingRule::Source ReadNamingRuleSource(const YamlValue& value) {
  constexpr std::string_view kExpected = "cmdline or cgroup";
  const std::string& text = ScalarText(value, kExpected);
  if (text == "cmdline") return NamingRule::Source::kCmdline;
  if (text == "cgroup") return NamingRule::Source::kCgroup;
  value.FailExpected(kExpected);
}

NamingRule ReadNamingRule(const YamlValue& item) {
  constexpr std::string_view kNonEmpty = "a non-empty string";
  NamingRule rule;
  std::optional<YamlValue> regex;
  std::optional<YamlValue> name;
  const YamlField fields[] = {
      {"source", [&](const YamlValue& value) { rule.source = ReadNamingRuleSource(value); }},
      {"regex",
       [&](const YamlValue& value) {
         rule.regex = ReadString(value, kNonEmpty, IsNonEmpty);
         regex = value;
       }},
      {"name",
       [&](const YamlValue& value) {
         rule.name = ReadString(value, kNonEmpty, IsNonEmpty);
         name = value;
       }},
  };
  WalkMap(item, fields);
  if (!regex || !name) {
    item.Fail(item.name + " is missing key " + Quoted(regex ? "name" : "regex") +
              "; a naming rule needs regex and name, and optionally source (cmdline or cgroup, "
              "default cmdline)");
  }
  if (auto problem = CompileNamingRule(rule)) {
    const YamlValue& culprit = problem->part == NamingRuleProblem::Part::kRegex ? *regex : *name;
    culprit.FailWith(problem->message);
  }
  return rule;
}

}  // namespace

milliseconds ReadDuration(const YamlValue& value, milliseconds min, milliseconds max) {
  return ReadDurationIn(value, min, max);
}

microseconds ReadFineDuration(const YamlValue& value, microseconds min, microseconds max) {
  return ReadDurationIn(value, min, max);
}

ListenAddress ReadListenAddress(const YamlValue& value) {
  const std::optional<ListenAddress> address =
      ParseListenAddress(ScalarText(value, kListenAddressRule));
  if (!address) value.FailExpected(kListenAddressRule);
  return *address;
}

std::string ReadTelemetryPath(const YamlValue& value) {
  return ReadString(value, kTelemetryPathRule, IsTelemetryPath);
}

std::string ReadAbsolutePath(const YamlValue& value) {
  return ReadString(value, "an absolute path", IsAbsolutePath);
}

std::string ReadStatePath(const YamlValue& value) {
  return ReadString(
      value, "\"\" (keep no state) or an absolute path of a directory on bpffs",
      [](std::string_view path) { return path.empty() || (IsAbsolutePath(path) && path != "/"); });
}

KernelHook ReadKernelHook(const YamlValue& value) {
  const std::optional<KernelHook> hook = ParseKernelHook(ScalarText(value, kKernelHookNames));
  if (!hook) value.FailExpected(kKernelHookNames);
  return *hook;
}

std::vector<DrilldownKind> ReadDrilldownKinds(const YamlValue& list) {
  const std::string expected =
      "a list of drill-down kinds, e.g. [io] (supported: " + DrilldownKindList() +
      "), or [] for none";
  std::vector<DrilldownKind> kinds;
  ForEachItem(list, expected, [&](const YamlValue& item) {
    const std::string& name = ScalarText(item, "a drill-down kind name");
    const std::optional<DrilldownKind> kind = ParseDrilldownKind(name);
    if (!kind) {
      item.FailWith("unknown or not yet supported drill-down kind " + Quoted(name) +
                    "; supported: " + DrilldownKindList());
    }
    if (std::find(kinds.begin(), kinds.end(), *kind) != kinds.end()) {
      item.FailWith(Quoted(name) + " is listed twice");
    }
    kinds.push_back(*kind);
  });
  std::sort(kinds.begin(), kinds.end());
  return kinds;
}

Config::Collector::DrilldownAuto ReadDrilldownAuto(const YamlValue& map) {
  using DrilldownAuto = Config::Collector::DrilldownAuto;
  DrilldownAuto follow;
  // Every isa's names: one configuration serves a fleet of Intel, AMD and arm64 hosts.
  static const ReasonNames names = ReasonNames::FromUapiHeaders();
  const auto is_reason = [](const std::string& name) {
    return std::ranges::any_of(
        kKnownIsas, [&](std::uint32_t isa) { return names.Code(isa, name).has_value(); });
  };
  const auto read_kinds = [&](const YamlValue& kinds) {
    follow.kinds.clear();
    ForEachEntry(kinds, MapWording{.noun = "drill-down kind"},
                 [&](const std::string& key, const YamlValue& reasons) {
                   const std::optional<DrilldownKind> kind = ParseDrilldownKind(key);
                   if (!kind) {
                     kinds.FailWith("unknown drill-down kind " + Quoted(key) +
                                    "; supported: " + DrilldownKindList());
                   }
                   DrilldownAuto::Kind entry{.kind = *kind, .reasons = {}};
                   ForEachItem(reasons,
                               "a list of exit reason names, e.g. [IO_INSTRUCTION, io] (Intel's "
                               "and AMD's names, as kvm_exits_total's reason label)",
                               [&](const YamlValue& item) {
                                 const std::string& name = ScalarText(item, "an exit reason name");
                                 if (!is_reason(name)) {
                                   item.FailWith("unknown exit reason " + Quoted(name) +
                                                 "; use a name of kvm_exits_total's reason "
                                                 "label, Intel's (IO_INSTRUCTION) or AMD's (io)");
                                 }
                                 entry.reasons.push_back(name);
                               });
                   if (entry.reasons.empty()) {
                     reasons.FailWith(
                         "lists no exit reason: the kind would never attach; "
                         "remove the kind instead");
                   }
                   follow.kinds.push_back(std::move(entry));
                 });
    std::sort(
        follow.kinds.begin(), follow.kinds.end(),
        [](const DrilldownAuto::Kind& a, const DrilldownAuto::Kind& b) { return a.kind < b.kind; });
  };
  const YamlField fields[] = {
      {"kinds", read_kinds},
      {"threshold",
       [&](const YamlValue& value) { follow.threshold = ReadUint32(value, 1, 100'000'000); }},
      {"hold",
       [&](const YamlValue& value) {
         follow.hold = ReadDuration(value, milliseconds{1'000}, milliseconds{86'400'000});
       }},
  };
  WalkMap(map, fields);
  return follow;
}

// Rounding to the BPF bounds is SelectExitBuckets' (exit_metrics.h).
Config::Collector::ExitHandlingBuckets ReadExitHandlingBuckets(const YamlValue& map) {
  constexpr microseconds kMinBucket{1};
  Config::Collector::ExitHandlingBuckets buckets;
  std::optional<YamlValue> min;
  std::optional<YamlValue> max;
  const YamlField fields[] = {
      {"min",
       [&](const YamlValue& value) {
         buckets.min = ReadFineDuration(value, kMinBucket, kMaxExitHandlingBucket);
         min = value;
       }},
      {"max",
       [&](const YamlValue& value) {
         buckets.max = ReadFineDuration(value, kMinBucket, kMaxExitHandlingBucket);
         max = value;
       }},
  };
  WalkMap(map, fields);
  if (buckets.min > buckets.max) {
    const YamlValue& culprit = min ? *min : max ? *max : map;
    culprit.Fail(map.name + ".min (" + FormatFineDuration(buckets.min) + ") must not exceed " +
                 map.name + ".max (" + FormatFineDuration(buckets.max) + ")");
  }
  return buckets;
}

std::vector<NamingRule> ReadNamingRules(const YamlValue& list) {
  if (list.node.IsSequence() && list.node.size() > kMaxNamingRules) {
    list.Fail(list.name + " has " + std::to_string(list.node.size()) + " rules; at most " +
              std::to_string(kMaxNamingRules) + " are allowed (each is a regex tried on every VM)");
  }
  std::vector<NamingRule> rules;
  ForEachItem(list, "a list of {source, regex, name} maps",
              [&](const YamlValue& item) { rules.push_back(ReadNamingRule(item)); });
  return rules;
}

// Longer paths are a mistake, not a need; the server's request buffer is 16 KiB.
constexpr std::size_t kMaxTelemetryPathBytes = 1024;

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

}  // namespace kvmexit
