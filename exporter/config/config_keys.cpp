// SPDX-License-Identifier: Apache-2.0
#include "config/config_keys.h"

#include <chrono>
#include <cstdint>

#include "config/config_values.h"
#include "config/duration.h"

namespace kvmexit {
namespace {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

// The row of the key `name`, kept in config.*kSection.*kField and read by
// `read`, a function from the YAML value to the field's value.
template <auto kSection, auto kField, typename Read>
ConfigKey Key(std::string_view name, Read read) {
  return ConfigKey{
      name,
      [read](const YamlValue& value, Config& config) { (config.*kSection).*kField = read(value); },
      [](const Config& a, const Config& b) {
        return (a.*kSection).*kField == (b.*kSection).*kField;
      }};
}

// Readers of a number or duration within a range.
auto Duration(milliseconds min, milliseconds max) {
  return [min, max](const YamlValue& value) { return ReadDuration(value, min, max); };
}
auto Integer(std::uint32_t min, std::uint32_t max) {
  return [min, max](const YamlValue& value) { return ReadUint32(value, min, max); };
}

// The shortest sample interval; a window holds at least two samples.
constexpr milliseconds kMinSampleInterval = 100ms;

}  // namespace

const std::vector<ConfigKey>& ConfigKeys() {
  using Web = Config::Web;
  using Kernel = Config::Kernel;
  using Collector = Config::Collector;
  using Rates = Config::Rates;
  using Vms = Config::Vms;
  static const std::vector<ConfigKey> keys = {
      Key<&Config::web, &Web::listen_address>("web.listen_address", ReadListenAddress),
      Key<&Config::web, &Web::telemetry_path>("web.telemetry_path", ReadTelemetryPath),

      Key<&Config::kernel, &Kernel::tracefs_path>("kernel.tracefs_path", ReadAbsolutePath),
      Key<&Config::kernel, &Kernel::attach_retry_interval>("kernel.attach_retry_interval",
                                                           Duration(100ms, 1h)),
      Key<&Config::kernel, &Kernel::hook>("kernel.hook", ReadKernelHook),
      Key<&Config::kernel, &Kernel::state_path>("kernel.state_path", ReadStatePath),

      Key<&Config::collector, &Collector::per_vm>("collector.per_vm", ReadBool),
      Key<&Config::collector, &Collector::per_vcpu>("collector.per_vcpu", ReadBool),
      Key<&Config::collector, &Collector::exit_handling_time>("collector.exit_handling_time",
                                                              ReadBool),
      Key<&Config::collector, &Collector::vcpu_time>("collector.vcpu_time", ReadBool),
      Key<&Config::collector, &Collector::vcpu_time_interval>("collector.vcpu_time_interval",
                                                              Duration(1s, 5min)),
      Key<&Config::collector, &Collector::vm_map_capacity>("collector.vm_map_capacity",
                                                           Integer(16, 4'194'304)),
      Key<&Config::collector, &Collector::exit_handling_buckets>("collector.exit_handling_buckets",
                                                                 ReadExitHandlingBuckets),
      Key<&Config::collector, &Collector::drilldown>("collector.drilldown", ReadDrilldownKinds),
      Key<&Config::collector, &Collector::drilldown_auto>("collector.drilldown_auto",
                                                          ReadDrilldownAuto),
      Key<&Config::collector, &Collector::drilldown_max_keys>("collector.drilldown_max_keys",
                                                              Integer(1, kMaxDrilldownKeys)),

      Key<&Config::rates, &Rates::window>("rates.window", Duration(2 * kMinSampleInterval, 1h)),
      Key<&Config::rates, &Rates::sample_interval>("rates.sample_interval",
                                                   Duration(kMinSampleInterval, 1min)),

      Key<&Config::vms, &Vms::max_vms>("vms.max_vms", Integer(1, 100'000)),
      Key<&Config::vms, &Vms::grace_period>("vms.grace_period", Duration(0ms, 24h)),
      Key<&Config::vms, &Vms::boot_window>("vms.boot_window", Duration(1s, 24h)),
      Key<&Config::vms, &Vms::naming_rules>("vms.naming_rules", ReadNamingRules),
  };
  return keys;
}

const YamlValue& GivenValues::FirstGiven(std::initializer_list<std::string_view> keys) const {
  for (const std::string_view key : keys) {
    for (const auto& [given_key, value] : by_key) {
      if (given_key == key) return value;
    }
  }
  return section;
}

void CheckKeysTogether(std::string_view section, const Config& config, const GivenValues& given) {
  if (section == "rates") {
    const Config::Rates& rates = config.rates;
    // A rate needs at least two samples inside the window.
    if (rates.window < 2 * rates.sample_interval) {
      given.FirstGiven({"window", "sample_interval"})
          .Fail("rates.window (" + FormatDuration(rates.window) +
                ") must be at least twice rates.sample_interval (" +
                FormatDuration(rates.sample_interval) + ")");
    }
  }
}

}  // namespace kvmexit
