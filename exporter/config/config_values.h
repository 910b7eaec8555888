// SPDX-License-Identifier: Apache-2.0
// How each kind of value in the configuration file is read and checked:
// durations within a range, paths, the listen address, the kernel hook, the
// drill-down list, the exit handling buckets and the VM naming rules. Each
// reader takes the value where the walk found it (yaml_walker.h) and throws at
// its place, naming the key and what it allows. config_keys.cpp says which key
// is read by which.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/yaml_walker.h"
#include "identity/naming_rules.h"
#include "source/drilldown_kind.h"
#include "source/kernel_hook.h"
#include "util/listen_address.h"

namespace kvmexit {

// A duration from `min` to `max`, in ms, s, m or h ("30s").
std::chrono::milliseconds ReadDuration(const YamlValue& value, std::chrono::milliseconds min,
                                       std::chrono::milliseconds max);

// A duration from `min` to `max`, in us, ms, s, m or h ("100us").
std::chrono::microseconds ReadFineDuration(const YamlValue& value, std::chrono::microseconds min,
                                           std::chrono::microseconds max);

ListenAddress ReadListenAddress(const YamlValue& value);
std::string ReadTelemetryPath(const YamlValue& value);
std::string ReadAbsolutePath(const YamlValue& value);
// kernel.state_path: "" or an absolute path other than "/".
std::string ReadStatePath(const YamlValue& value);
KernelHook ReadKernelHook(const YamlValue& value);

// A list of drill-down kinds, each once; returned ascending.
std::vector<DrilldownKind> ReadDrilldownKinds(const YamlValue& list);

// collector.drilldown_auto: {kinds: {KIND: [REASON, ...]}, threshold, hold};
// each kind once, each reason an exit reason name of Intel or AMD.
Config::Collector::DrilldownAuto ReadDrilldownAuto(const YamlValue& map);

// collector.exit_handling_buckets: {min, max}, each from 1us to the largest
// BPF bound, min <= max.
Config::Collector::ExitHandlingBuckets ReadExitHandlingBuckets(const YamlValue& map);

// vms.naming_rules: at most kMaxNamingRules {source, regex, name} maps, each
// compiled here (CompileNamingRule), so that a rule that cannot work is
// refused with the file's place.
std::vector<NamingRule> ReadNamingRules(const YamlValue& list);

// What web.telemetry_path allows; the --web.telemetry-path flag is checked by
// the same rule.
bool IsTelemetryPath(std::string_view path);
inline constexpr std::string_view kTelemetryPathRule =
    "a URL path starting with \"/\" other than \"/\", of at most 1024 bytes, without "
    "spaces, \"?\", \"#\", \"//\", \".\" or \"..\" segments or percent-encoding, "
    "e.g. \"/metrics\"";

}  // namespace kvmexit
