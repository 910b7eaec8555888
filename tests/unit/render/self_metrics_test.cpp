// SPDX-License-Identifier: Apache-2.0
// The exporter's own instrumentation: what each event does to its family, in
// the exposition text prometheus-cpp writes.
#include "render/self_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace kvmexit {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Text(const SelfMetrics& metrics) {
  std::string text;
  metrics.AppendTo(text);
  return text;
}

// Each of `lines` is a whole line of `text` (the trailing newline is added here).
void ExpectLines(const std::string& text, std::initializer_list<std::string_view> lines) {
  for (const std::string_view line : lines) {
    EXPECT_THAT(text, HasSubstr(std::string(line) + "\n"));
  }
}

TEST(SelfMetricsTest, BeforeAttachEveryErrorKindAndStateIsThereAtZero) {
  const SelfMetrics metrics;
  const std::string text = Text(metrics);
  EXPECT_THAT(text, HasSubstr("kvm_exit_exporter_bpf_attached 0\n"));
  for (const char* kind : {"attach", "map_read", "map_delete", "counter_reuse"}) {
    EXPECT_THAT(
        text, HasSubstr("kvm_exit_exporter_errors_total{kind=\"" + std::string(kind) + "\"} 0\n"));
  }
  EXPECT_THAT(text, HasSubstr("kvm_exit_exporter_build_info{"));
  EXPECT_THAT(text, HasSubstr("# TYPE kvm_exit_exporter_scrape_duration_seconds histogram\n"));
  // No hook is named before one is attached.
  EXPECT_THAT(text, Not(HasSubstr("kvm_exit_exporter_bpf_hook_info")));
}

TEST(SelfMetricsTest, EventsCountWhereTheyHappen) {
  SelfMetrics metrics;
  metrics.AttachFailed();
  metrics.AttachFailed();
  metrics.MapReadFailed();
  metrics.CounterReuseFailed();
  metrics.Attached("tp_btf");
  const std::string text = Text(metrics);
  ExpectLines(text, {
                        "kvm_exit_exporter_errors_total{kind=\"attach\"} 2",
                        "kvm_exit_exporter_errors_total{kind=\"map_read\"} 1",
                        "kvm_exit_exporter_errors_total{kind=\"map_delete\"} 0",
                        "kvm_exit_exporter_errors_total{kind=\"counter_reuse\"} 1",
                        "kvm_exit_exporter_bpf_attached 1",
                        "kvm_exit_exporter_bpf_hook_info{hook=\"tp_btf\"} 1",
                    });
}

TEST(SelfMetricsTest, ReasonNamesOriginHasOneSeriesThatFollowsTheSource) {
  SelfMetrics metrics;
  metrics.ReasonNamesFrom("uapi");
  metrics.ReasonNamesFrom("kernel");
  const std::string text = Text(metrics);
  EXPECT_THAT(text, HasSubstr("kvm_exit_exporter_reason_names_info{origin=\"kernel\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("origin=\"uapi\"")));
}

TEST(SelfMetricsTest, KernelCountersAreFollowedExactlyAndNeverGoBack) {
  SelfMetrics metrics;
  ExitSnapshot snapshot;
  snapshot.vm_counts.resize(3);
  snapshot.vm_map_capacity = 16384;
  snapshot.overflow_capacity = 1024;
  snapshot.overflow = {{{KVM_EXIT_ISA_SVM, 0x7b}, 40}, {{KVM_EXIT_ISA_SVM, 0x72}, 2}};
  snapshot.lost = 7;
  metrics.Observe(snapshot);
  metrics.Observe(BpfProgramStats{
      .run_count = 9'007'199'254'740'000, .run_time_ns = 1'500'000'000, .missed = 3});
  metrics.ObserveVms(12, 2);
  std::string text = Text(metrics);
  ExpectLines(text, {
                        "kvm_exit_exporter_map_entries{map=\"vm_exits\"} 3",
                        "kvm_exit_exporter_map_entries{map=\"host_overflow\"} 2",
                        "kvm_exit_exporter_map_capacity{map=\"vm_exits\"} 16384",
                        "kvm_exit_overflow_exits_total 42",
                        "kvm_exit_lost_exits_total 7",
                    });
  // Exact below 2^53, as a counter of program runs must be.
  ExpectLines(text, {
                        "kvm_exit_exporter_bpf_prog_run_count_total 9007199254740000",
                        "kvm_exit_exporter_bpf_prog_run_time_seconds_total 1.5",
                        "kvm_exit_exporter_bpf_prog_missed_total 3",
                        "kvm_exit_exporter_vms 12",
                        "kvm_exit_exporter_vms_folded 2",
                    });

  snapshot.lost = 9;
  metrics.Observe(snapshot);
  snapshot.lost = 1;  // a counter never goes back, whatever a read says
  metrics.Observe(snapshot);
  EXPECT_THAT(Text(metrics), HasSubstr("kvm_exit_lost_exits_total 9\n"));
}

TEST(SelfMetricsTest, BootExitsHistogramKeepsItsBucketLabels) {
  SelfMetrics metrics;
  metrics.BootWindowClosed(9001);
  metrics.BootWindowClosed(2'000'000);
  const std::string text = Text(metrics);
  ExpectLines(text, {
                        "# TYPE kvm_vm_boot_exits_count histogram",
                        "kvm_vm_boot_exits_count_count 2",
                        "kvm_vm_boot_exits_count_sum 2009001",
                    });
  // `le` is a label, so its text is part of the series' identity: the long
  // form ("3000000", not "3e+06") that earlier releases wrote.
  ExpectLines(text, {
                        "kvm_vm_boot_exits_count_bucket{le=\"3000\"} 0",
                        "kvm_vm_boot_exits_count_bucket{le=\"10000\"} 1",
                        "kvm_vm_boot_exits_count_bucket{le=\"3000000\"} 2",
                        "kvm_vm_boot_exits_count_bucket{le=\"+Inf\"} 2",
                    });
}

// What a restarted exporter adopts: the windows an earlier process closed,
// kept per bucket (BootExitsBucket) with the state, go on in the histogram.
TEST(SelfMetricsTest, BootWindowsOfAnEarlierProcessContinueTheHistogram) {
  std::vector<double> kept(BootExitsBuckets().size() + 1, 0.0);
  kept[BootExitsBucket(9001)] += 1;        // le 10000
  kept[BootExitsBucket(2'000'000)] += 1;   // le 3000000
  kept[BootExitsBucket(20'000'000)] += 1;  // +Inf
  EXPECT_EQ(BootExitsBucket(1000), 0u);    // le is inclusive
  EXPECT_EQ(BootExitsBucket(1001), 1u);
  EXPECT_EQ(BootExitsBucket(20'000'000), BootExitsBuckets().size());
  SelfMetrics metrics;
  metrics.BootWindowsBefore(kept, 22'009'001);
  metrics.BootWindowClosed(500);
  ExpectLines(Text(metrics), {
                                 "kvm_vm_boot_exits_count_count 4",
                                 "kvm_vm_boot_exits_count_sum 22009501",
                                 "kvm_vm_boot_exits_count_bucket{le=\"1000\"} 1",
                                 "kvm_vm_boot_exits_count_bucket{le=\"10000\"} 2",
                                 "kvm_vm_boot_exits_count_bucket{le=\"3000000\"} 3",
                                 "kvm_vm_boot_exits_count_bucket{le=\"+Inf\"} 4",
                             });
}

TEST(SelfMetricsTest, ScrapeDurationIsAHistogramInSeconds) {
  SelfMetrics metrics;
  metrics.ScrapeTook(0.003);
  metrics.ScrapeTook(0.2);
  const std::string text = Text(metrics);
  ExpectLines(text, {
                        "kvm_exit_exporter_scrape_duration_seconds_count 2",
                        "kvm_exit_exporter_scrape_duration_seconds_bucket{le=\"0.0025\"} 0",
                        "kvm_exit_exporter_scrape_duration_seconds_bucket{le=\"0.005\"} 1",
                        "kvm_exit_exporter_scrape_duration_seconds_bucket{le=\"0.25\"} 2",
                    });
}

TEST(SelfMetricsTest, VcpuTimeSampleDurationIsAHistogramInSeconds) {
  SelfMetrics metrics;
  EXPECT_THAT(Text(metrics),
              HasSubstr("kvm_exit_exporter_vcpu_time_sample_duration_seconds_count 0\n"));
  metrics.VcpuTimeSampleTook(0.004);
  metrics.VcpuTimeSampleTook(0.03);
  metrics.VcpuTimeSampleTook(0.03);
  const std::string text = Text(metrics);
  ExpectLines(text,
              {
                  "kvm_exit_exporter_vcpu_time_sample_duration_seconds_count 3",
                  "kvm_exit_exporter_vcpu_time_sample_duration_seconds_sum 0.064",
                  "kvm_exit_exporter_vcpu_time_sample_duration_seconds_bucket{le=\"0.005\"} 1",
                  "kvm_exit_exporter_vcpu_time_sample_duration_seconds_bucket{le=\"0.025\"} 1",
                  "kvm_exit_exporter_vcpu_time_sample_duration_seconds_bucket{le=\"0.05\"} 3",
              });
}

double Value(const std::string& text, const std::string& name) {
  const std::string prefix = "\n" + name + " ";
  const std::size_t at = text.find(prefix);
  if (at == std::string::npos) {
    ADD_FAILURE() << name << " missing in:\n" << text;
    return -1;
  }
  return std::stod(text.substr(at + prefix.size()));
}

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TEST(SelfMetricsTest, FailedReloadKeepsTheLastSuccessTimestamp) {
  constexpr const char* kSuccessful = "kvm_exit_exporter_config_last_reload_successful";
  constexpr const char* kTimestamp =
      "kvm_exit_exporter_config_last_reload_success_timestamp_seconds";
  SelfMetrics metrics;
  const double before = Now();
  metrics.ConfigLoaded(true);
  const double loaded_at = Value(Text(metrics), kTimestamp);
  EXPECT_EQ(Value(Text(metrics), kSuccessful), 1);
  EXPECT_GE(loaded_at, before - 1);  // the text has whole seconds or less precision
  EXPECT_LE(loaded_at, Now() + 1);

  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  metrics.ConfigLoaded(false);
  EXPECT_EQ(Value(Text(metrics), kSuccessful), 0);
  EXPECT_EQ(Value(Text(metrics), kTimestamp), loaded_at);

  metrics.ConfigLoaded(true);
  EXPECT_EQ(Value(Text(metrics), kSuccessful), 1);
  EXPECT_GT(Value(Text(metrics), kTimestamp), loaded_at);
}

}  // namespace
}  // namespace kvmexit
