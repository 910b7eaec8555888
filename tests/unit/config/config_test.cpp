// SPDX-License-Identifier: Apache-2.0
#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <ostream>
#include <string>

#include "config/duration.h"
#include "temp_dir.h"
#include "util/unique_fd.h"

namespace kvmexit {
namespace {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

constexpr std::string_view kSource = "cfg.yml";

Config ParseOk(std::string_view yaml) {
  auto result = ParseConfig(yaml, kSource);
  if (const auto* error = std::get_if<ConfigError>(&result)) {
    ADD_FAILURE() << "unexpected error: " << error->message << "\nfor:\n" << yaml;
    return Config{};
  }
  return std::get<Config>(std::move(result));
}

std::string ParseFails(std::string_view yaml) {
  const auto result = ParseConfig(yaml, kSource);
  if (const auto* error = std::get_if<ConfigError>(&result)) return error->message;
  ADD_FAILURE() << "parsed without error:\n" << yaml;
  return "";
}

TEST(ConfigDefaults, EmbeddedDefaultConfigMatchesTheStructDefaults) {
  auto result = ParseConfig(kDefaultConfigYaml, "<embedded default>");
  ASSERT_TRUE(std::holds_alternative<Config>(result)) << std::get<ConfigError>(result).message;
  EXPECT_TRUE(std::get<Config>(result) == Config{});
}

TEST(ConfigDefaults, EmptyDocumentsGiveDefaults) {
  for (const std::string_view yaml : {"", "{}", "# nothing set\n", "---\n", "web:\nvms:\n"}) {
    EXPECT_TRUE(ParseOk(yaml) == Config{}) << yaml;
  }
}

TEST(ConfigParse, MissingKeysKeepDefaults) {
  const Config config = ParseOk("web:\n  telemetry_path: /kvm\n");
  EXPECT_EQ(config.web.telemetry_path, "/kvm");
  EXPECT_EQ(config.web.listen_address, Config{}.web.listen_address);
  EXPECT_TRUE(config.collector == Config{}.collector);
}

TEST(ConfigParse, TelemetryPathsThatReachTheServerUnchangedAreAccepted) {
  for (const std::string& path :
       {std::string("/metrics/"), std::string("/a.b/..c/.d"), std::string("/100%"),
        std::string("/a%zz"), std::string("/m") + std::string(1022, 'm')}) {
    EXPECT_EQ(ParseOk("web:\n  telemetry_path: \"" + path + "\"\n").web.telemetry_path, path);
  }
}

TEST(ConfigParse, EveryKernelHookName) {
  for (const KernelHook hook :
       {KernelHook::kAuto, KernelHook::kTpBtf, KernelHook::kRawTp, KernelHook::kTracepoint}) {
    const std::string name(KernelHookName(hook));
    EXPECT_EQ(ParseOk("kernel:\n  hook: " + name + "\n").kernel.hook, hook) << name;
  }
}

TEST(ConfigParse, TelemetryPathLongerThan1024BytesIsRefused) {
  const std::string path = "/" + std::string(1024, 'm');
  EXPECT_NE(ParseFails("web:\n  telemetry_path: " + path + "\n")
                .find("cfg.yml:2:19: web.telemetry_path must be a URL path"),
            std::string::npos);
}

TEST(ConfigParse, ReadsEveryKey) {
  const Config config = ParseOk(R"yaml(
web:
  listen_address: "[::1]:9100"
  telemetry_path: /kvm/metrics
kernel:
  tracefs_path: /sys/kernel/debug/tracing
  attach_retry_interval: 500ms
  hook: tracepoint
  state_path: /sys/fs/bpf/kvmx
collector:
  per_vm: false
  per_vcpu: True
  exit_handling_time: true
  vcpu_time: false
  vcpu_time_interval: 2m
  vm_map_capacity: 65536
  exit_handling_buckets:
    min: 100us
    max: 100ms
rates:
  window: 1m
  sample_interval: 2s
vms:
  max_vms: 50
  grace_period: 0s
  boot_window: 1h
  naming_rules:
    - source: cgroup
      regex: 'machine-qemu\\x2d(\d+)\\x2d([^.]+)\.scope'
      name: "$2"
    - regex: "-name (?:guest=)?([^, ]+)"
      name: vm-$1
)yaml");
  EXPECT_EQ(config.web.listen_address, (ListenAddress{.host = "::1", .port = 9100, .ipv6 = true}));
  EXPECT_EQ(config.web.telemetry_path, "/kvm/metrics");
  EXPECT_EQ(config.kernel.tracefs_path, "/sys/kernel/debug/tracing");
  EXPECT_EQ(config.kernel.attach_retry_interval, 500ms);
  EXPECT_EQ(config.kernel.hook, KernelHook::kTracepoint);
  EXPECT_EQ(config.kernel.state_path, "/sys/fs/bpf/kvmx");
  EXPECT_FALSE(config.collector.per_vm);
  EXPECT_TRUE(config.collector.per_vcpu);
  EXPECT_TRUE(config.collector.exit_handling_time);  // off by default: its cost (README)
  EXPECT_FALSE(config.collector.vcpu_time);          // on by default: /proc reads, in budget
  EXPECT_EQ(config.collector.vcpu_time_interval, 2min);
  EXPECT_EQ(config.collector.vm_map_capacity, 65536U);
  EXPECT_EQ(config.collector.exit_handling_buckets.min, 100us);
  EXPECT_EQ(config.collector.exit_handling_buckets.max, 100ms);
  EXPECT_EQ(config.rates.window, 60s);
  EXPECT_EQ(config.rates.sample_interval, 2s);
  EXPECT_EQ(config.vms.max_vms, 50U);
  EXPECT_EQ(config.vms.grace_period, 0ms);
  EXPECT_EQ(config.vms.boot_window, 1h);
  ASSERT_EQ(config.vms.naming_rules.size(), 2U);
  EXPECT_EQ(config.vms.naming_rules[0].source, NamingRule::Source::kCgroup);
  EXPECT_EQ(config.vms.naming_rules[0].regex, R"(machine-qemu\\x2d(\d+)\\x2d([^.]+)\.scope)");
  EXPECT_EQ(config.vms.naming_rules[0].name, "$2");
  EXPECT_EQ(config.vms.naming_rules[1].source, NamingRule::Source::kCmdline);
  EXPECT_EQ(config.vms.naming_rules[1].name, "vm-$1");
}

TEST(ConfigParse, DrilldownIsOffByDefaultAndTakesAListOfKinds) {
  const Config defaults = ParseOk("");
  EXPECT_TRUE(defaults.collector.drilldown.empty());  // always attached: none
  EXPECT_EQ(defaults.collector.drilldown_max_keys, 32U);
  EXPECT_FALSE(defaults.collector.DrilldownOn(DrilldownKind::kIo));
  const Config io = ParseOk("collector:\n  drilldown: [io]\n  drilldown_max_keys: 64\n");
  EXPECT_TRUE(io.collector.DrilldownOn(DrilldownKind::kIo));
  EXPECT_EQ(io.collector.drilldown_max_keys, 64U);
  EXPECT_TRUE(ParseOk("collector:\n  drilldown: []\n").collector.drilldown.empty());
  // Every kind, in any order: kept ascending, as bpf/kvm_exit.h numbers them.
  const Config all = ParseOk("collector:\n  drilldown: [userspace, hypercall, mmio, msr, io]\n");
  EXPECT_EQ(
      all.collector.drilldown,
      (std::vector<DrilldownKind>{DrilldownKind::kIo, DrilldownKind::kMsr, DrilldownKind::kMmio,
                                  DrilldownKind::kHypercall, DrilldownKind::kUserspace}));
}

TEST(ConfigParse, DrilldownAutoFollowsStormsOfTheKindsTheStormSignaturesNeed) {
  const Config defaults = ParseOk("");
  const auto& follow = defaults.collector.drilldown_auto;
  EXPECT_EQ(follow.threshold, 500U);
  EXPECT_EQ(follow.hold, 2min);
  ASSERT_EQ(follow.kinds.size(), 4U);
  EXPECT_EQ(follow.kinds[0].kind, DrilldownKind::kIo);
  EXPECT_EQ(follow.kinds[0].reasons, (std::vector<std::string>{"IO_INSTRUCTION", "io"}));
  EXPECT_EQ(defaults.collector.DrilldownLoaded(),
            (std::vector<DrilldownKind>{DrilldownKind::kIo, DrilldownKind::kMsr,
                                        DrilldownKind::kMmio, DrilldownKind::kUserspace}));

  const Config mine = ParseOk(
      "collector:\n  drilldown: [io]\n  drilldown_auto:\n    threshold: 2000\n    hold: 30s\n"
      "    kinds:\n      hypercall: [VMCALL, hypercall]\n      io: [IO_INSTRUCTION]\n");
  const auto& mine_follow = mine.collector.drilldown_auto;
  EXPECT_EQ(mine_follow.threshold, 2000U);
  EXPECT_EQ(mine_follow.hold, 30s);
  ASSERT_EQ(mine_follow.kinds.size(), 2U);  // ascending by kind
  EXPECT_EQ(mine_follow.kinds[0].kind, DrilldownKind::kIo);
  EXPECT_EQ(mine_follow.kinds[1].kind, DrilldownKind::kHypercall);
  // io is always attached (collector.drilldown): it does not follow storms.
  const auto followed = mine.collector.FollowedKinds();
  ASSERT_EQ(followed.size(), 1U);
  EXPECT_EQ(followed[0].kind, DrilldownKind::kHypercall);
  EXPECT_EQ(mine.collector.DrilldownLoaded(),
            (std::vector<DrilldownKind>{DrilldownKind::kIo, DrilldownKind::kHypercall}));

  const Config off = ParseOk("collector:\n  drilldown_auto:\n    kinds: {}\n");
  EXPECT_TRUE(off.collector.drilldown_auto.kinds.empty());
  EXPECT_TRUE(off.collector.DrilldownLoaded().empty());
}

TEST(ConfigParse, AcceptsListenAddressForms) {
  for (const std::string_view address : {":9756", "0.0.0.0:1", "localhost:65535", "[::]:9756",
                                         "[::1]:80", "[fe80::1%eth0]:9756", "my-host.lan:8080"}) {
    const Config config = ParseOk("web:\n  listen_address: \"" + std::string(address) + "\"\n");
    EXPECT_EQ(FormatListenAddress(config.web.listen_address), address);
  }
}

TEST(ConfigParse, AcceptsRangeLimits) {
  const Config low = ParseOk(
      "kernel: {attach_retry_interval: 100ms}\ncollector: {vm_map_capacity: 16}\n"
      "rates: {sample_interval: 100ms, window: 200ms}\n"
      "vms: {max_vms: 1, grace_period: 0ms, boot_window: 1s}\n");
  EXPECT_EQ(low.kernel.attach_retry_interval, 100ms);
  EXPECT_EQ(low.collector.vm_map_capacity, 16U);
  EXPECT_EQ(low.rates.window, 200ms);
  const Config high = ParseOk(
      "kernel: {attach_retry_interval: 1h}\ncollector: {vm_map_capacity: 4194304}\n"
      "rates: {sample_interval: 1m, window: 60m}\n"
      "vms: {max_vms: 100000, grace_period: 24h, boot_window: 1440m}\n");
  EXPECT_EQ(high.collector.vm_map_capacity, 4194304U);
  EXPECT_EQ(high.rates.window, 1h);
  EXPECT_EQ(high.vms.boot_window, 24h);
}

TEST(ConfigParse, ExitHandlingBucketsDefaultToTheFullRangeAndTakeTheirLimits) {
  EXPECT_EQ(Config{}.collector.exit_handling_buckets.min, 1us);
  EXPECT_EQ(Config{}.collector.exit_handling_buckets.max, 1s);
  const Config limits =
      ParseOk("collector:\n  exit_handling_buckets: {min: 1us, max: 1048576us}\n");
  EXPECT_EQ(limits.collector.exit_handling_buckets.min, 1us);
  EXPECT_EQ(limits.collector.exit_handling_buckets.max, 1'048'576us);
  const Config one = ParseOk("collector:\n  exit_handling_buckets: {min: 4ms, max: 4ms}\n");
  EXPECT_EQ(one.collector.exit_handling_buckets.min, 4ms);
  EXPECT_EQ(one.collector.exit_handling_buckets.max, 4ms);
  // Either key alone keeps the other's default; an empty map keeps both.
  const Config only_min = ParseOk("collector:\n  exit_handling_buckets:\n    min: 10us\n");
  EXPECT_EQ(only_min.collector.exit_handling_buckets.min, 10us);
  EXPECT_EQ(only_min.collector.exit_handling_buckets.max, 1s);
  EXPECT_TRUE(ParseOk("collector:\n  exit_handling_buckets:\n") == Config{});
  EXPECT_TRUE(ParseOk("collector:\n  exit_handling_buckets: {}\n") == Config{});
}

struct BadConfig {
  std::string_view yaml;
  std::string_view expected;  // a substring of the message, position included
};

// Each message must say where (file:line:column, 1-based) and what is allowed.
const BadConfig kBadConfigs[] = {
    // Structure.
    {"web:\n  listen_adress: x\n",
     "cfg.yml:2:3: unknown key \"listen_adress\" in section \"web\"; allowed keys: "
     "listen_address, telemetry_path"},
    {"collector: {}\nwebb:\n  x: 1\n",
     "cfg.yml:2:1: unknown section \"webb\"; allowed sections: web, kernel, collector, rates, vms"},
    {"web: [a, b]\n",
     "cfg.yml:1:6: section \"web\" must be a map of keys (listen_address, telemetry_path), got a "
     "list"},
    {"kernel: /sys\n", "cfg.yml:1:9: section \"kernel\" must be a map of keys"},
    {"- web\n",
     "cfg.yml:1:1: the configuration must be a map of sections (web, kernel, "
     "collector, rates, vms), got a list"},
    {"hello\n", "cfg.yml:1:1: the configuration must be a map of sections"},
    {"web:\n  telemetry_path: /a\n  telemetry_path: /b\n",
     "cfg.yml:3:3: duplicate key \"telemetry_path\" in section \"web\" (first at line 2)"},
    {"? [a]\n: 1\n", "cfg.yml:1:3: the configuration: a section must be a plain name, got a list"},
    {"web: {}\n---\nweb: {}\n", "cfg.yml:3:1: only one YAML document is allowed, found 2"},
    // yaml-cpp 0.7's LoadAll looped forever on these (found by tests/fuzz/fuzz_config).
    {",", "cfg.yml:1:1: invalid YAML: unexpected \",\" (no value can start with it)"},
    {"web: {}\n---\n,\n", "cfg.yml:3:1: invalid YAML: unexpected \",\""},
    // YAML syntax.
    {"web: [\n", "cfg.yml:2:1: invalid YAML: end of sequence flow not found"},
    {"web:\n  a: b\n c: d\n", "cfg.yml:3:2: invalid YAML: end of map not found"},
    {"web: {listen_address: \"x}\n", "cfg.yml:2:1: invalid YAML: end of map flow not found"},
    // web.
    {"web:\n  listen_address: 9756\n",
     "cfg.yml:2:19: web.listen_address must be host:port or :port with a port from 1 to 65535 "
     "(IPv6 as [::1]:9756), got \"9756\""},
    {"web:\n  listen_address: \"host:0\"\n", "cfg.yml:2:19: web.listen_address must be"},
    {"web:\n  listen_address: \":65536\"\n", "got \":65536\""},
    {"web:\n  listen_address: \":http\"\n", "got \":http\""},
    {"web:\n  listen_address: \"::1:9756\"\n", "got \"::1:9756\""},
    {"web:\n  listen_address: \"[::1]9756\"\n", "got \"[::1]9756\""},
    {"web:\n  listen_address: \"[]:9756\"\n", "got \"[]:9756\""},
    {"web:\n  listen_address: \"a b:80\"\n", "got \"a b:80\""},
    {"web:\n  listen_address: \"1.2.3.4.5:80\"\n",
     "cfg.yml:2:19: web.listen_address must be host:port or :port with a port from 1 to 65535 "
     "(IPv6 as [::1]:9756), got \"1.2.3.4.5:80\""},
    {"web:\n  listen_address: \"[1::2::3]:80\"\n", "got \"[1::2::3]:80\""},
    {"web:\n  listen_address:\n", "cfg.yml:2:3: web.listen_address must be host:port"},
    {"web:\n  listen_address: {a: 1}\n", "cfg.yml:2:19: web.listen_address must be "},
    {"web:\n  telemetry_path: metrics\n",
     "cfg.yml:2:19: web.telemetry_path must be a URL path starting with \"/\" other than \"/\", "
     "of at most 1024 bytes, without spaces, \"?\", \"#\", \"//\", \".\" or \"..\" segments or "
     "percent-encoding, e.g. \"/metrics\", got \"metrics\""},
    {"web:\n  telemetry_path: /\n", "web.telemetry_path must be a URL path"},
    {"web:\n  telemetry_path: \"/a b\"\n", "got \"/a b\""},
    // Paths that clients normalise or the server decodes could never be scraped.
    {"web:\n  telemetry_path: /../metrics\n", "got \"/../metrics\""},
    {"web:\n  telemetry_path: /./metrics\n", "got \"/./metrics\""},
    {"web:\n  telemetry_path: /a/..\n", "got \"/a/..\""},
    {"web:\n  telemetry_path: /a/./b\n", "got \"/a/./b\""},
    {"web:\n  telemetry_path: /.\n", "got \"/.\""},
    {"web:\n  telemetry_path: //metrics\n", "got \"//metrics\""},
    {"web:\n  telemetry_path: /a//b\n", "got \"/a//b\""},
    {"web:\n  telemetry_path: /m%65trics\n", "got \"/m%65trics\""},
    {"web:\n  telemetry_path: /a%2Fb\n", "got \"/a%2Fb\""},
    // kernel.
    {"kernel:\n  tracefs_path: sys/kernel/tracing\n",
     "cfg.yml:2:17: kernel.tracefs_path must be an absolute path, got \"sys/kernel/tracing\""},
    {"kernel:\n  state_path: sys/fs/bpf/kvm_exit_exporter\n",
     "cfg.yml:2:15: kernel.state_path must be \"\" (keep no state) or an absolute path of a "
     "directory on bpffs, got \"sys/fs/bpf/kvm_exit_exporter\""},
    {"kernel:\n  state_path: /\n", "kernel.state_path must be"},
    {"kernel:\n  hook: kprobe\n",
     "cfg.yml:2:9: kernel.hook must be auto, tp_btf, raw_tp or tracepoint, got \"kprobe\""},
    {"kernel:\n  attach_retry_interval: 50ms\n",
     "cfg.yml:2:26: kernel.attach_retry_interval must be from 100ms to 1h, got \"50ms\""},
    {"kernel:\n  attach_retry_interval: 61m\n", "must be from 100ms to 1h, got \"61m\""},
    {"kernel:\n  attach_retry_interval: 10\n",
     "cfg.yml:2:26: kernel.attach_retry_interval: invalid duration \"10\"; use a number with ms, "
     "s, m or h, e.g. \"30s\""},
    // collector.
    {"collector:\n  vm_map_capacity: abc\n",
     "cfg.yml:2:20: collector.vm_map_capacity must be an integer from 16 to 4194304, got \"abc\""},
    {"collector:\n  vm_map_capacity: 15\n", "from 16 to 4194304, got \"15\""},
    {"collector:\n  drilldown: [msrs]\n",
     "cfg.yml:2:15: collector.drilldown[0]: unknown or not yet supported drill-down kind \"msrs\"; "
     "supported: io, msr, mmio, hypercall, userspace, hvc, sysreg"},
    {"collector:\n  drilldown: [io, io]\n", "collector.drilldown[1]: \"io\" is listed twice"},
    {"collector:\n  drilldown: io\n", "collector.drilldown must be a list of drill-down kinds"},
    {"collector:\n  drilldown_max_keys: 0\n", "from 1 to 64, got \"0\""},
    {"collector:\n  drilldown_auto:\n    kinds:\n      ports: [io]\n",
     "collector.drilldown_auto.kinds: unknown drill-down kind \"ports\"; supported: io, msr"},
    {"collector:\n  drilldown_auto:\n    kinds:\n      io: [IO_INSTRUCTON]\n",
     "cfg.yml:4:12: collector.drilldown_auto.kinds.io[0]: unknown exit reason \"IO_INSTRUCTON\"; "
     "use a name of kvm_exits_total's reason label"},
    {"collector:\n  drilldown_auto:\n    kinds:\n      io: []\n",
     "collector.drilldown_auto.kinds.io: lists no exit reason"},
    {"collector:\n  drilldown_auto:\n    kinds:\n      io: io\n",
     "collector.drilldown_auto.kinds.io must be a list of exit reason names"},
    {"collector:\n  drilldown_auto:\n    threshold: 0\n", "from 1 to 100000000, got \"0\""},
    {"collector:\n  drilldown_auto:\n    hold: 500ms\n", "must be from 1s to 24h"},
    {"collector:\n  drilldown_auto:\n    holds: 5s\n", "holds"},
    {"collector:\n  drilldown_max_keys: 65\n", "from 1 to 64, got \"65\""},
    {"collector:\n  vm_map_capacity: 4194305\n", "from 16 to 4194304, got \"4194305\""},
    {"collector:\n  vm_map_capacity: -16\n", "from 16 to 4194304, got \"-16\""},
    {"collector:\n  vm_map_capacity: 99999999999999999999\n", "got \"99999999999999999999\""},
    {"collector:\n  vm_map_capacity: 1.5e4\n", "got \"1.5e4\""},
    {"collector:\n  per_vm: yes\n",
     "cfg.yml:2:11: collector.per_vm must be true or false (a YAML boolean, unquoted), got "
     "\"yes\""},
    {"collector:\n  per_vcpu: \"true\"\n",
     "cfg.yml:2:13: collector.per_vcpu must be true or false"},
    {"collector:\n  per_vcpu: 1\n", "collector.per_vcpu must be true or false"},
    {"collector:\n  exit_handling_time: on\n",
     "cfg.yml:2:23: collector.exit_handling_time must be true or false"},
    {"collector:\n  vcpu_time: 0\n", "cfg.yml:2:14: collector.vcpu_time must be true or false"},
    {"collector:\n  vcpu_time_interval: 500ms\n",
     "collector.vcpu_time_interval must be from 1s to 5m, got \"500ms\""},
    {"collector:\n  vcpu_time_interval: 6m\n", "got \"6m\""},
    {"collector:\n  per_vcpu: [true]\n",
     "must be true or false (a YAML boolean, unquoted), got a "
     "list"},
    // collector.exit_handling_buckets.
    {"collector:\n  exit_handling_buckets: {min: 0us}\n",
     "cfg.yml:2:32: collector.exit_handling_buckets.min must be from 1us to 1048576us, got "
     "\"0us\""},
    {"collector:\n  exit_handling_buckets:\n    max: 2s\n",
     "cfg.yml:3:10: collector.exit_handling_buckets.max must be from 1us to 1048576us, got "
     "\"2s\""},
    {"collector:\n  exit_handling_buckets: {min: 2ms, max: 1ms}\n",
     "cfg.yml:2:32: collector.exit_handling_buckets.min (2ms) must not exceed "
     "collector.exit_handling_buckets.max (1ms)"},
    {"collector:\n  exit_handling_buckets: {min: 1048576us}\n",
     "cfg.yml:2:32: collector.exit_handling_buckets.min (1048576us) must not exceed "
     "collector.exit_handling_buckets.max (1s)"},
    {"collector:\n  exit_handling_buckets: {min: 1.5us}\n",
     "cfg.yml:2:32: collector.exit_handling_buckets.min: invalid duration \"1.5us\"; use a number "
     "with us, ms, s, m or h, e.g. \"100us\""},
    {"collector:\n  exit_handling_buckets: {min: 1}\n", "invalid duration \"1\""},
    {"collector:\n  exit_handling_buckets: {max: 1 s}\n", "invalid duration \"1 s\""},
    {"collector:\n  exit_handling_buckets: {le: 1ms}\n",
     "cfg.yml:2:27: unknown key \"le\" in collector.exit_handling_buckets; allowed keys: min, max"},
    {"collector:\n  exit_handling_buckets: 1ms\n",
     "cfg.yml:2:26: collector.exit_handling_buckets must be a map of keys (min, max), got \"1ms\""},
    {"collector:\n  exit_handling_buckets: {min: [1us]}\n",
     "collector.exit_handling_buckets.min must be a duration such as \"30s\", got a list"},
    // rates.
    {"rates:\n  window: 10x\n",
     "cfg.yml:2:11: rates.window: invalid duration \"10x\"; use a number with ms, s, m or h, e.g. "
     "\"30s\""},
    {"rates:\n  window: 2h\n", "cfg.yml:2:11: rates.window must be from 200ms to 1h, got \"2h\""},
    {"rates:\n  sample_interval: 50ms\n",
     "cfg.yml:2:20: rates.sample_interval must be from 100ms to 1m, got \"50ms\""},
    {"rates:\n  sample_interval: 2m\n", "must be from 100ms to 1m, got \"2m\""},
    {"rates:\n  sample_interval: 20s\n",
     "cfg.yml:2:20: rates.window (30s) must be at least twice rates.sample_interval (20s)"},
    {"rates:\n  window: 1s\n  sample_interval: 1s\n",
     "cfg.yml:2:11: rates.window (1s) must be at least twice rates.sample_interval (1s)"},
    {"rates:\n  window: 1.5s\n", "invalid duration \"1.5s\""},
    {"rates:\n  window: -30s\n", "invalid duration \"-30s\""},
    {"rates:\n  window: 30 s\n", "invalid duration \"30 s\""},
    {"rates:\n  window: 30S\n", "invalid duration \"30S\""},
    // vms.
    {"vms:\n  max_vms: 0\n",
     "cfg.yml:2:12: vms.max_vms must be an integer from 1 to 100000, got \"0\""},
    {"vms:\n  max_vms: 100001\n", "from 1 to 100000, got \"100001\""},
    {"vms:\n  grace_period: 25h\n",
     "cfg.yml:2:17: vms.grace_period must be from 0s to 24h, got \"25h\""},
    {"vms:\n  boot_window: 999ms\n",
     "cfg.yml:2:16: vms.boot_window must be from 1s to 24h, got \"999ms\""},
    {"vms:\n  naming_rules: {regex: a, name: b}\n",
     "cfg.yml:2:17: vms.naming_rules must be a list of {source, regex, name} maps, got a map"},
    {"vms:\n  naming_rules:\n    - just-a-string\n",
     "cfg.yml:3:7: vms.naming_rules[0] must be a map of keys (source, regex, name), got "
     "\"just-a-string\""},
    {"vms:\n  naming_rules:\n    - {regex: a, name: b}\n    - {name: b}\n",
     "cfg.yml:4:7: vms.naming_rules[1] is missing key \"regex\"; a naming rule needs regex and "
     "name, and optionally source (cmdline or cgroup, default cmdline)"},
    {"vms:\n  naming_rules:\n    - regex: a\n",
     "cfg.yml:3:7: vms.naming_rules[0] is missing key "
     "\"name\""},
    {"vms:\n  naming_rules:\n    - {source: environ, regex: a, name: b}\n",
     "cfg.yml:3:16: vms.naming_rules[0].source must be cmdline or cgroup, got \"environ\""},
    {"vms:\n  naming_rules:\n    - {regex: \"([a-z\", name: b}\n",
     "cfg.yml:3:15: vms.naming_rules[0].regex: invalid regular expression \"([a-z\": missing ]: "
     "[a-z (RE2 syntax, as in Prometheus relabelling: no backreferences or lookaround)"},
    // std::regex accepted these; RE2 (linear time) has neither.
    {"vms:\n  naming_rules:\n    - {regex: \"(a)\\\\1\", name: b}\n",
     "cfg.yml:3:15: vms.naming_rules[0].regex: invalid regular expression \"(a)\\1\": invalid "
     "escape sequence: \\1 (RE2 syntax"},
    {"vms:\n  naming_rules:\n    - {regex: \"qemu(?=-system)\", name: b}\n",
     "vms.naming_rules[0].regex: invalid regular expression \"qemu(?=-system)\": invalid perl "
     "operator: (?="},
    {"vms:\n  naming_rules:\n    - {regex: \"\", name: b}\n",
     "cfg.yml:3:15: vms.naming_rules[0].regex must be a non-empty string, got \"\""},
    {"vms:\n  naming_rules:\n    - {regex: \"-name (\\\\S+)\", name: \"$1-$2\"}\n",
     "cfg.yml:3:37: vms.naming_rules[0].name: \"$2\" refers to group 2, but the regex has 1 "
     "capture group(s)"},
    {"vms:\n  naming_rules:\n    - {regex: \"-name (\\\\S+)\", name: \"vm-${2}\"}\n",
     "cfg.yml:3:37: vms.naming_rules[0].name: \"${2}\" refers to group 2, but the regex has 1 "
     "capture group(s)"},
    {"vms:\n  naming_rules:\n    - {regex: \"-name (\\\\S+)\", name: \"vm$10\"}\n",
     "vms.naming_rules[0].name: \"$10\" is ambiguous: write ${1}0 for group 1 then \"0\", or "
     "${10} for group 10"},
    {"vms:\n  naming_rules:\n    - {regex: \"-name (\\\\S+)\", name: \"US$ $1\"}\n",
     "vms.naming_rules[0].name: \"$ \" at byte 3: a \"$\" must start $N or ${N} (a group of the "
     "match) or $$ (a dollar sign)"},
    {"vms:\n  naming_rules:\n    - {regex: \"-name (\\\\S+)\", name: \"vm-$\"}\n",
     R"(vms.naming_rules[0].name: "$" at byte 4: a "$" must start)"},
    {"vms:\n  naming_rules:\n    - {regex: \"-name (?P<vm>\\\\S+)\", name: \"${vm}\"}\n",
     "vms.naming_rules[0].name: \"${vm}\" is not a group reference: write ${N} with N a group "
     "number (named groups are not supported)"},
    {"vms:\n  naming_rules:\n    - {regex: \"-name (\\\\S+)\", name: \"${1\"}\n",
     "vms.naming_rules[0].name: \"${1\" is not a group reference"},
    {"vms:\n  naming_rules:\n    - {regex: a, name: b, match: all}\n",
     "cfg.yml:3:27: unknown key \"match\" in vms.naming_rules[0]; allowed keys: source, regex, "
     "name"},
};

// Names a failing case by its message rather than by its bytes.
void PrintTo(const BadConfig& config, std::ostream* out) {
  *out << "expecting \"" << config.expected << "\"";
}

class ConfigBadTest : public testing::TestWithParam<BadConfig> {};

TEST_P(ConfigBadTest, ReportsWhereAndWhat) {
  const std::string message = ParseFails(GetParam().yaml);
  EXPECT_NE(message.find(GetParam().expected), std::string::npos)
      << "message:  " << message << "\nexpected: " << GetParam().expected << "\nfor:\n"
      << GetParam().yaml;
}

INSTANTIATE_TEST_SUITE_P(Table, ConfigBadTest, testing::ValuesIn(kBadConfigs));

TEST(ConfigNamingRules, DeeplyNestedRegexIsRefusedNotACrash) {
  // std::regex overflowed the stack compiling this (the exporter crashed).
  const std::string nested = std::string(20'000, '(') + "a" + std::string(20'000, ')');
  EXPECT_EQ(ParseFails("vms:\n  naming_rules:\n    - regex: \"" + nested + "\"\n      name: b\n"),
            "cfg.yml:3:14: vms.naming_rules[0].regex: regular expression nests parentheses 20000 "
            "deep; at most 1000 allowed");
}

TEST(ConfigNamingRules, AtMost1000Rules) {
  std::string yaml = "vms:\n  naming_rules:\n";
  for (int i = 0; i < 1000; ++i) {
    yaml += "    - {regex: \"-name vm" + std::to_string(i) + "\", name: x}\n";
  }
  EXPECT_EQ(ParseOk(yaml).vms.naming_rules.size(), 1000U);
  yaml += "    - {regex: \"-name last\", name: x}\n";
  EXPECT_EQ(ParseFails(yaml),
            "cfg.yml:3:5: vms.naming_rules has 1001 rules; at most 1000 are allowed (each is a "
            "regex tried on every VM)");
}

TEST(ConfigNamingRules, EachRuleIsCompiledOnceAndSharedByCopies) {
  const Config config =
      ParseOk("vms:\n  naming_rules:\n    - {regex: \"-name (\\\\S+)\", name: x}\n");
  ASSERT_EQ(config.vms.naming_rules.size(), 1U);
  ASSERT_NE(config.vms.naming_rules[0].compiled, nullptr);
  const Config copy = config;  // what a reload does
  EXPECT_EQ(copy.vms.naming_rules[0].compiled, config.vms.naming_rules[0].compiled);
  EXPECT_TRUE(copy == config);
}

TEST(ConfigNamingRules, RulesCompareByTheirText) {
  const std::string yaml = "vms:\n  naming_rules:\n    - {regex: \"-name (\\\\S+)\", name: x}\n";
  const Config first = ParseOk(yaml);
  const Config second = ParseOk(yaml);  // compiled separately: another RE2 object
  ASSERT_NE(first.vms.naming_rules[0].compiled, second.vms.naming_rules[0].compiled);
  EXPECT_TRUE(first == second);
  Config changed = first;
  changed.vms.naming_rules[0].regex = "-name (\\w+)";
  EXPECT_FALSE(changed == first);
  changed = first;
  changed.vms.naming_rules[0].name = "y";
  EXPECT_FALSE(changed == first);
}

TEST(ConfigParse, GarbageNeverThrows) {
  for (const std::string_view yaml :
       {"\t", "{", "[", "]", ":", "&a [*a]", "*undefined", "!!binary x", "web: !!map {}",
        "\xff\xfe\x00", "%YAML 9.9\n---\n", "web: &x {telemetry_path: /a}\nvms: *x\n"}) {
    EXPECT_NO_THROW((void)ParseConfig(yaml, kSource)) << yaml;
  }
}

TEST(ConfigDuration, ParsesEachUnit) {
  EXPECT_EQ(ParseDuration("0s"), 0ms);
  EXPECT_EQ(ParseDuration("500ms"), 500ms);
  EXPECT_EQ(ParseDuration("10s"), 10s);
  EXPECT_EQ(ParseDuration("5m"), 5min);
  EXPECT_EQ(ParseDuration("1h"), 1h);
  EXPECT_EQ(ParseDuration("007s"), 7s);
}

TEST(ConfigDuration, RejectsMalformed) {
  for (const std::string_view text :
       {"", "s", "10", "10 s", " 10s", "10s ", "-1s", "+1s", "1.5s", "10sec", "10S", "1d", "0x10s",
        "99999999999999999999h", "9223372036854775807h"}) {
    EXPECT_FALSE(ParseDuration(text).has_value()) << text;
  }
}

TEST(ConfigDuration, FineDurationsAddMicroseconds) {
  using std::chrono::microseconds;
  EXPECT_EQ(ParseFineDuration("1us"), 1us);
  EXPECT_EQ(ParseFineDuration("250us"), 250us);
  EXPECT_EQ(ParseFineDuration("10ms"), 10ms);
  EXPECT_EQ(ParseFineDuration("1s"), 1s);
  EXPECT_EQ(ParseFineDuration("2m"), 2min);
  EXPECT_EQ(ParseFineDuration("1h"), 1h);
  for (const std::string_view text :
       {"", "us", "1", "1 us", "1.5us", "-1us", "1µs", "1US", "9223372036854775807s"}) {
    EXPECT_FALSE(ParseFineDuration(text).has_value()) << text;
  }
  EXPECT_FALSE(ParseDuration("1us").has_value()) << "millisecond keys stay in milliseconds";
  EXPECT_EQ(FormatFineDuration(microseconds(0)), "0s");
  EXPECT_EQ(FormatFineDuration(1us), "1us");
  EXPECT_EQ(FormatFineDuration(1'048'576us), "1048576us");
  EXPECT_EQ(FormatFineDuration(2ms), "2ms");
  EXPECT_EQ(FormatFineDuration(1s), "1s");
  EXPECT_EQ(FormatFineDuration(90s), "90s");
  for (const microseconds duration : {microseconds(1), microseconds(1500), microseconds(1s),
                                      microseconds(1'048'576), microseconds(1h)}) {
    EXPECT_EQ(ParseFineDuration(FormatFineDuration(duration)), duration);
  }
}

TEST(ConfigDuration, FormatsInTheLargestExactUnit) {
  EXPECT_EQ(FormatDuration(0ms), "0s");
  EXPECT_EQ(FormatDuration(250ms), "250ms");
  EXPECT_EQ(FormatDuration(1500ms), "1500ms");
  EXPECT_EQ(FormatDuration(90s), "90s");
  EXPECT_EQ(FormatDuration(5min), "5m");
  EXPECT_EQ(FormatDuration(24h), "24h");
  for (const milliseconds duration :
       {milliseconds(1), milliseconds(999), milliseconds(1s), milliseconds(61s), milliseconds(1min),
        milliseconds(61min), milliseconds(1h)}) {
    EXPECT_EQ(ParseDuration(FormatDuration(duration)), duration);
  }
}

class ConfigFileTest : public testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("config_test." + std::to_string(::getpid()) + ".yml"))
                .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void Write(std::string_view text) { std::ofstream(path_) << text; }

  std::string path_;
};

TEST_F(ConfigFileTest, LoadsAFile) {
  Write("collector:\n  per_vcpu: true\n");
  const auto result = LoadConfigFile(path_);
  ASSERT_TRUE(std::holds_alternative<Config>(result)) << std::get<ConfigError>(result).message;
  EXPECT_TRUE(std::get<Config>(result).collector.per_vcpu);
}

TEST_F(ConfigFileTest, ErrorsNameTheFile) {
  Write("\ncollector:\n  per_vcpu: maybe\n");
  const auto result = LoadConfigFile(path_);
  ASSERT_TRUE(std::holds_alternative<ConfigError>(result));
  EXPECT_EQ(std::get<ConfigError>(result).message.rfind(path_ + ":3:13: collector.per_vcpu", 0), 0U)
      << std::get<ConfigError>(result).message;
}

TEST_F(ConfigFileTest, UnreadableFileNamesPathAndReason) {
  const auto result = LoadConfigFile(path_ + ".missing");
  ASSERT_TRUE(std::holds_alternative<ConfigError>(result));
  EXPECT_EQ(std::get<ConfigError>(result).message,
            path_ + ".missing: cannot read the config file: No such file or directory");
}

TEST_F(ConfigFileTest, FlagsOverrideTheFileAndAreCheckedByTheKeysRules) {
  Write("web:\n  listen_address: \"127.0.0.1:9100\"\n  telemetry_path: /m\n");
  const auto result = LoadConfig(path_, {.listen_address = "[::1]:9200"});
  ASSERT_TRUE(std::holds_alternative<Config>(result)) << std::get<ConfigError>(result).message;
  EXPECT_EQ(FormatListenAddress(std::get<Config>(result).web.listen_address), "[::1]:9200");
  EXPECT_EQ(std::get<Config>(result).web.telemetry_path, "/m");

  const auto bad_address = LoadConfig(path_, {.listen_address = "nohost"});
  ASSERT_TRUE(std::holds_alternative<ConfigError>(bad_address));
  EXPECT_EQ(std::get<ConfigError>(bad_address).message,
            "--web.listen-address: invalid address \"nohost\"; use host:port or :port with a port "
            "from 1 to 65535 (IPv6 as [::1]:9756)");
  const auto bad_path = LoadConfig(path_, {.telemetry_path = "metrics"});
  ASSERT_TRUE(std::holds_alternative<ConfigError>(bad_path));
  EXPECT_THAT(std::get<ConfigError>(bad_path).message,
              ::testing::StartsWith("--web.telemetry-path: invalid path \"metrics\""));
}

TEST_F(ConfigFileTest, AcceptsAFileOfExactly1MiB) {
  const std::string head = "collector:\n  per_vcpu: true\n";
  Write(head + "#" + std::string(kMaxConfigFileBytes - head.size() - 2, 'x') + "\n");
  ASSERT_EQ(std::filesystem::file_size(path_), 1024U * 1024U);
  const auto result = LoadConfigFile(path_);
  ASSERT_TRUE(std::holds_alternative<Config>(result)) << std::get<ConfigError>(result).message;
  EXPECT_TRUE(std::get<Config>(result).collector.per_vcpu);
}

TEST_F(ConfigFileTest, RefusesAFileOver1MiBWithoutParsingIt) {
  Write("#" + std::string(std::size_t{1024} * 1024, 'x') + "\n");
  const auto result = LoadConfigFile(path_);
  ASSERT_TRUE(std::holds_alternative<ConfigError>(result));
  EXPECT_EQ(std::get<ConfigError>(result).message,
            path_ +
                ": the config file is larger than the limit of 1048576 bytes (1024 KiB); is "
                "this the right file?");
}

TEST(ConfigFileKindTest, RefusesAFifoAtOnce) {
  const test_util::TempDir dir;
  const std::string fifo = (dir.path() / "config.fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto loading = std::async(std::launch::async, [&] { return LoadConfigFile(fifo); });
  if (loading.wait_for(std::chrono::seconds(5)) == std::future_status::timeout) {
    // Let the blocked reader go (open as writer, then EOF) so the test fails
    // instead of hanging.
    const UniqueFd writer(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    ADD_FAILURE() << "LoadConfigFile blocked on a FIFO";
  }
  const auto result = loading.get();
  ASSERT_TRUE(std::holds_alternative<ConfigError>(result));
  EXPECT_EQ(std::get<ConfigError>(result).message,
            fifo + ": the config file must be a regular file, but this is a FIFO");
}

TEST(ConfigFileKindTest, RefusesDevicesAndDirectories) {
  const auto zero = LoadConfigFile("/dev/zero");
  ASSERT_TRUE(std::holds_alternative<ConfigError>(zero));
  EXPECT_EQ(std::get<ConfigError>(zero).message,
            "/dev/zero: the config file must be a regular file, but this is a character device");
  const test_util::TempDir dir;
  const auto directory = LoadConfigFile(dir.path().string());
  ASSERT_TRUE(std::holds_alternative<ConfigError>(directory));
  EXPECT_EQ(
      std::get<ConfigError>(directory).message,
      dir.path().string() + ": the config file must be a regular file, but this is a directory");
}

TEST(ConfigParse, DeepNestingSaysSoInsteadOfBadFile) {
  for (const std::string& deep :
       {std::string(100'000, '['), std::string(600, '{') + "a: 1",
        std::string("web:\n  telemetry_path: ") + std::string(1000, '[')}) {
    const std::string message = ParseFails(deep);
    EXPECT_THAT(message, ::testing::HasSubstr("invalid YAML: lists and maps nested too deep "
                                              "(more than 499 levels)"));
    EXPECT_THAT(message, ::testing::StartsWith("cfg.yml:"));
  }
}

TEST_F(ConfigFileTest, ListenHostMustResolveAtCheckTime) {
  // .invalid never resolves (RFC 6761), on any machine.
  Write("web:\n  listen_address: \"nohost.invalid:80\"\n");
  const auto from_file = LoadConfig(path_, {});
  ASSERT_TRUE(std::holds_alternative<ConfigError>(from_file));
  EXPECT_THAT(std::get<ConfigError>(from_file).message,
              ::testing::StartsWith(path_ + ": web.listen_address: cannot resolve listen host "
                                            "\"nohost.invalid\": "));

  Write("web:\n  listen_address: \"localhost:80\"\n");
  const auto from_flag = LoadConfig(path_, {.listen_address = "nohost.invalid:80"});
  ASSERT_TRUE(std::holds_alternative<ConfigError>(from_flag));
  EXPECT_THAT(std::get<ConfigError>(from_flag).message,
              ::testing::StartsWith(
                  "--web.listen-address: cannot resolve listen host \"nohost.invalid\": "));

  const auto resolvable = LoadConfig(path_, {});
  EXPECT_TRUE(std::holds_alternative<Config>(resolvable))
      << std::get<ConfigError>(resolvable).message;
}

TEST(LoadConfigTest, NoPathMeansTheEmbeddedDefault) {
  const auto result = LoadConfig("", {});
  ASSERT_TRUE(std::holds_alternative<Config>(result)) << std::get<ConfigError>(result).message;
  EXPECT_EQ(std::get<Config>(result), Config{});
}

TEST(LoadConfigTest, FileErrorsComeBeforeFlagErrors) {
  const auto result = LoadConfig("/nonexistent/kvm_exit.yml", {.listen_address = "bad"});
  ASSERT_TRUE(std::holds_alternative<ConfigError>(result));
  EXPECT_THAT(std::get<ConfigError>(result).message,
              ::testing::StartsWith("/nonexistent/kvm_exit.yml: cannot read the config file"));
}

}  // namespace
}  // namespace kvmexit
