// SPDX-License-Identifier: Apache-2.0
// collector.vcpu_time against the running kernel: the test VMM's vCPUs spin
// or halt on this host's /dev/kvm, the exporter (its VM put into the real BPF
// map, since kvm:kvm_exit may never fire here) reads their threads, and the
// scrape's kvm_vm_vcpu_seconds_total must show where the time went. Wide
// bounds: this host's CPUs are shared, so a spinning vCPU may wait for one;
// the nested suites check the shares tightly on a CPU of their own.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <map>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "app/exporter_app.h"
#include "identity/process_info.h"
#include "source/task_times.h"

namespace kvmexit {
namespace {

using namespace std::chrono_literals;

// A vcpu_time_vmm child, killed at the end of the test.
class Vmm {
 public:
  Vmm(const char* mode, const char* seconds) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl(KVMEXIT_VCPU_TIME_VMM_PATH, "vcpu_time_vmm", "-name", "guest=itest", "--mode", mode,
              "--seconds", seconds, "--spin-ms", "300", static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Vmm() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  Vmm(const Vmm&) = delete;
  Vmm& operator=(const Vmm&) = delete;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// mode -> seconds of kvm_vm_vcpu_seconds_total{vm="itest"} in `text`.
std::map<std::string, double> Modes(const std::string& text) {
  std::map<std::string, double> modes;
  const std::string prefix = "kvm_vm_vcpu_seconds_total{vm=\"itest\",";
  for (std::size_t at = text.find(prefix); at != std::string::npos;
       at = text.find(prefix, at + 1)) {
    const std::size_t mode = text.find("mode=\"", at) + 6;
    const std::size_t end = text.find('"', mode);
    modes[text.substr(mode, end - mode)] = std::stod(text.substr(text.find("} ", end) + 2));
  }
  return modes;
}

class VcpuTimeIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to load the BPF program";
    if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm";
  }

  // The shares of each mode between two scrapes `gap` apart, while `vmm` runs.
  std::map<std::string, double> Shares(const Vmm& vmm, std::chrono::seconds gap) {
    // vCPU threads are those the kernel has charged guest time: a kernel that
    // charges none (kvm_pvm, which runs guests without hardware
    // virtualization) has none to show.
    std::this_thread::sleep_for(1s);
    const auto start = ReadStartTicks("/proc", static_cast<std::uint32_t>(vmm.pid()));
    const auto threads =
        ReadTaskTimes("/proc", static_cast<std::uint32_t>(vmm.pid()), start.value_or(0));
    bool guest = false;
    for (const TaskTimes& thread : threads.value_or(std::vector<TaskTimes>{})) {
      guest = guest || thread.stat.guest_ticks > 0;
    }
    if (!guest) {
      skipped_ = true;
      return {};
    }
    Config config;
    config.web.listen_address = {.host = "127.0.0.1", .port = 0};
    config.collector.vcpu_time_interval = 1s;
    config.rates.sample_interval = 200ms;
    ExporterApp app(config);
    if (const std::string error = app.Start(); !error.empty()) {
      ADD_FAILURE() << error;
      return {};
    }
    const vm_exit_key key{static_cast<std::uint32_t>(vmm.pid()), KVM_EXIT_ALL_VCPUS,
                          KVM_EXIT_ISA_SVM, 0x7b};
    if (const std::string error = app.FillMapsForTesting({{key, 1}}); !error.empty()) {
      ADD_FAILURE() << error;
      return {};
    }
    std::this_thread::sleep_for(1500ms);  // tracked, then a vCPU time sample
    const auto before = Modes(app.Scrape());
    std::this_thread::sleep_for(gap);
    const auto after = Modes(app.Scrape());
    EXPECT_EQ(before.size(), 4u);
    EXPECT_EQ(after.size(), 4u);
    double total = 0;
    std::map<std::string, double> shares;
    for (const auto& [mode, seconds] : after) total += seconds - before.at(mode);
    // The samples are 1 s apart at most: the modes add up to the gap within that.
    EXPECT_NEAR(total, static_cast<double>(gap.count()), 1.1);
    for (const auto& [mode, seconds] : after) shares[mode] = (seconds - before.at(mode)) / total;
    return shares;
  }

  bool skipped_ = false;
};

TEST_F(VcpuTimeIntegrationTest, ASpinningVcpuIsInGuestModeOrWaiting) {
  const Vmm vmm("spin", "10");
  const auto shares = Shares(vmm, 5s);
  if (skipped_) GTEST_SKIP() << "the kernel charged no guest time to a spinning vCPU thread";
  // On a shared host the vCPU may wait for a CPU, but never sleeps.
  EXPECT_GE(shares.at("guest") + shares.at("waiting"), 0.85);
  EXPECT_LE(shares.at("sleeping"), 0.05);
}

TEST_F(VcpuTimeIntegrationTest, AHaltedVcpuSleeps) {
  const Vmm vmm("spinhalt", "10");
  const auto shares = Shares(vmm, 5s);
  if (skipped_) GTEST_SKIP() << "the kernel charged no guest time to a spinning vCPU thread";
  EXPECT_GE(shares.at("sleeping"), 0.90);
}

}  // namespace
}  // namespace kvmexit
