// The exporter's configuration: what to count and how to label it.
// Parsed from YAML (yaml-cpp); every problem is reported with file:line:column.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace kvmexit {

// A site's own VM naming rule: the first rule whose regex matches names the VM.
struct NamingRule {
  enum class Source { kCmdline, kCgroup };
  Source source = Source::kCmdline;
  std::string regex;  // ECMAScript regex, searched (not anchored) in the source text
  std::string name;   // replacement, may use $1..$9 from the regex groups

  friend bool operator==(const NamingRule&, const NamingRule&) = default;
};

// How the BPF program hooks kvm:kvm_exit (config kernel.hook).
enum class KernelHook {
  kAuto,        // tp_btf where it is verified to count exactly (AMD SVM), else tracepoint
  kTpBtf,       // the raw tracepoint; reads the exit reason from kvm's vCPU structs
  kTracepoint,  // the classic tracepoint and its stable record format
};

struct Config {
  struct Web {
    std::string listen_address = "0.0.0.0:9756";
    std::string telemetry_path = "/metrics";
    friend bool operator==(const Web&, const Web&) = default;
  } web;

  struct Kernel {
    std::string tracefs_path = "/sys/kernel/tracing";
    std::chrono::milliseconds attach_retry_interval{10'000};
    KernelHook hook = KernelHook::kAuto;
    friend bool operator==(const Kernel&, const Kernel&) = default;
  } kernel;

  struct Collector {
    bool per_vm = true;
    bool per_vcpu = false;
    std::uint32_t vm_map_capacity = 16384;
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

// Reads and parses a file; an unreadable file is a ConfigError naming the path and errno text.
std::variant<Config, ConfigError> LoadConfigFile(const std::string& path);

// Parses a duration such as "500ms", "10s", "5m", "1h". Returns nullopt when malformed.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

// The inverse of ParseDuration, in the largest unit that is exact: 90000ms -> "90s",
// 300000ms -> "5m", 0 -> "0s". For messages and logs.
std::string FormatDuration(std::chrono::milliseconds duration);

// Checks web settings given on the command line (which bypass the YAML parser) by
// the same rules. Returns "" or a message naming the flag and what is allowed.
std::string ValidateWebOverrides(const Config& config);

// The configuration compiled into the binary (exporter/default_config.yaml).
extern const std::string_view kDefaultConfigYaml;

}  // namespace kvmexit
