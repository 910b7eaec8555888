// SPDX-License-Identifier: Apache-2.0
// The exporter's configuration: what to count and how to label it.
// Parsed from YAML (yaml-cpp); every problem is reported with file:line:column.
// Which key is read how: config_keys.h; durations: duration.h.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "identity/naming_rules.h"
#include "source/drilldown_kind.h"
#include "source/kernel_hook.h"
#include "util/listen_address.h"

namespace kvmexit {

struct Config {
  struct Web {
    // Parsed once, here: what passes the check is what the server binds.
    ListenAddress listen_address{.host = "0.0.0.0", .port = 9756};
    std::string telemetry_path = "/metrics";
    friend bool operator==(const Web&, const Web&) = default;
  } web;

  struct Kernel {
    std::string tracefs_path = "/sys/kernel/tracing";
    std::chrono::milliseconds attach_retry_interval{10'000};
    KernelHook hook = KernelHook::kAuto;
    // bpffs directory where the BPF maps and links are pinned, so that
    // counting goes on while the exporter restarts; "": nothing is pinned.
    std::string state_path;
    friend bool operator==(const Kernel&, const Kernel&) = default;
  } kernel;

  struct Collector {
    bool per_vm = true;
    bool per_vcpu = false;
    bool exit_handling_time = false;  // time each exit until the vCPU's next entry
    // Where the vCPU threads' time goes (vcpu_time.h), read from /proc by the
    // sampler every vcpu_time_interval: nothing in the BPF program.
    bool vcpu_time = true;
    std::chrono::milliseconds vcpu_time_interval{15'000};
    std::uint32_t vm_map_capacity = 16384;
    // The `le` range of kvm_exit_handling_seconds (exit_metrics.h,
    // SelectExitBuckets): rendering only, so a reload applies it live.
    struct ExitHandlingBuckets {
      std::chrono::microseconds min{1};
      std::chrono::microseconds max{1'000'000};
      friend bool operator==(const ExitHandlingBuckets&, const ExitHandlingBuckets&) = default;
    } exit_handling_buckets;
    // Drill-down kinds counted per VM and item (port, ...), ascending, each
    // once. Empty (the default): no drill-down program is loaded.
    std::vector<DrilldownKind> drilldown{};
    // Per VM and kind, the items with their own series; the rest sum into "other".
    std::uint32_t drilldown_max_keys = 32;
    bool DrilldownOn(DrilldownKind kind) const {
      return std::find(drilldown.begin(), drilldown.end(), kind) != drilldown.end();
    }
    // Drill-down that follows storms: each kind listed here (and not in
    // `drilldown`, which keeps it attached always) is loaded at start but attached only while some
    // VM makes more than `threshold` exits per second of the kind's `reasons`, and detached once
    // that rate has stayed below it for `hold` (model/drilldown_follower.h). Calm, no drill-down
    // program runs; in a storm, the items the known-storm rules need appear.
    struct DrilldownAuto {
      struct Kind {
        DrilldownKind kind = DrilldownKind::kIo;
        // Exit reason names of either vendor (IO_INSTRUCTION, io): the exits
        // that lead to the kind's tracepoint.
        std::vector<std::string> reasons;
        friend bool operator==(const Kind&, const Kind&) = default;
      };
      std::vector<Kind> kinds = {
          {DrilldownKind::kIo, {"IO_INSTRUCTION", "io"}},
          {DrilldownKind::kMsr, {"MSR_READ", "MSR_WRITE", "msr"}},
          {DrilldownKind::kMmio,
           {"EPT_MISCONFIG", "APIC_ACCESS", "EXCEPTION_NMI", "npf", "PF excp", "DABT_LOW"}},
          {DrilldownKind::kUserspace,
           {"IO_INSTRUCTION", "EPT_MISCONFIG", "EXCEPTION_NMI", "io", "npf", "PF excp",
            "DABT_LOW"}},
      };
      std::uint32_t threshold = 500;  // exits per second of one VM
      std::chrono::milliseconds hold{120'000};
      bool Follows(DrilldownKind kind) const {
        return std::any_of(kinds.begin(), kinds.end(),
                           [kind](const Kind& entry) { return entry.kind == kind; });
      }
      friend bool operator==(const DrilldownAuto&, const DrilldownAuto&) = default;
    } drilldown_auto;
    // The kinds that follow storms: drilldown_auto's, less those always attached.
    std::vector<DrilldownAuto::Kind> FollowedKinds() const {
      std::vector<DrilldownAuto::Kind> followed;
      for (const DrilldownAuto::Kind& entry : drilldown_auto.kinds) {
        if (!DrilldownOn(entry.kind)) followed.push_back(entry);
      }
      return followed;
    }
    // Every kind whose program is loaded: drilldown and drilldown_auto's, ascending.
    std::vector<DrilldownKind> DrilldownLoaded() const {
      std::vector<DrilldownKind> kinds = drilldown;
      for (const DrilldownAuto::Kind& entry : drilldown_auto.kinds) kinds.push_back(entry.kind);
      std::sort(kinds.begin(), kinds.end());
      kinds.erase(std::unique(kinds.begin(), kinds.end()), kinds.end());
      return kinds;
    }
    friend bool operator==(const Collector&, const Collector&) = default;
  } collector;

  struct Rates {
    std::chrono::milliseconds window{30'000};
    std::chrono::milliseconds sample_interval{1'000};
    friend bool operator==(const Rates&, const Rates&) = default;
  } rates;

  struct Vms {
    std::uint32_t max_vms = 1000;
    std::chrono::milliseconds grace_period{300'000};
    std::chrono::milliseconds boot_window{120'000};
    std::vector<NamingRule> naming_rules;
    friend bool operator==(const Vms&, const Vms&) = default;
  } vms;

  // Lets a reload tell whether anything changed.
  friend bool operator==(const Config&, const Config&) = default;
};

struct ConfigError {
  std::string message;  // "<source>:<line>:<column>: <what is wrong>; <what is allowed>"
};

// Parses `yaml_text`; `source_name` (a path, or "<embedded default>") prefixes error messages.
// Missing keys keep their defaults; unknown keys, wrong types and out-of-range values are errors.
std::variant<Config, ConfigError> ParseConfig(std::string_view yaml_text,
                                              std::string_view source_name);

// Bound of a config file: a real one is a few kilobytes; a wrong path (a disk
// image, a log) is refused before it is read rather than parsed into memory.
inline constexpr std::size_t kMaxConfigFileBytes = std::size_t{1024} * 1024;

// Reads and parses a file; an unreadable file is a ConfigError naming the path and errno text.
// Only a regular file of at most kMaxConfigFileBytes is read: a FIFO, a device
// or a directory is refused at once.
std::variant<Config, ConfigError> LoadConfigFile(const std::string& path);

// The largest bound the BPF program buckets exit handling time by, 2^20 us
// (KVM_EXIT_TIME_BUCKETS in bpf/kvm_exit.h; config_values.cpp checks they agree).
inline constexpr std::chrono::microseconds kMaxExitHandlingBucket{1 << 20};

// Settings given as command-line flags. Each replaces its YAML key and is
// checked by that key's rule, with the flag's name in the message.
struct ConfigOverrides {
  std::optional<std::string> listen_address;  // --web.listen-address
  std::optional<std::string> telemetry_path;  // --web.telemetry-path
};

// The one way a configuration is made at start-up: the file at `path` (the
// embedded default when `path` is empty), then the overrides, all validated.
std::variant<Config, ConfigError> LoadConfig(const std::string& path,
                                             const ConfigOverrides& overrides);

// The configuration compiled into the binary (exporter/config/default_config.yaml).
extern const std::string_view kDefaultConfigYaml;

}  // namespace kvmexit
