// SPDX-License-Identifier: Apache-2.0
// Stand-ins for VMM processes in the benchmarks: children that only wait, so
// that the exporter finds a live /proc/<pid> for every fake VM. Killed and
// reaped when the owner goes.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

namespace kvmexit::bench {

class FakeVmms {
 public:
  // `count` children, each with `threads_per_vmm` threads besides its main one.
  explicit FakeVmms(int count, int threads_per_vmm = 0) {
    for (int i = 0; i < count; ++i) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        for (int t = 0; t < threads_per_vmm; ++t) StartIdleThread();
        ::pause();
        ::_exit(0);
      }
      pids_.push_back(pid);
    }
    if (threads_per_vmm > 0) ::usleep(500'000);  // every thread started
  }
  ~FakeVmms() {
    for (pid_t pid : pids_) ::kill(pid, SIGKILL);
    for (pid_t pid : pids_) ::waitpid(pid, nullptr, 0);
  }
  FakeVmms(const FakeVmms&) = delete;
  FakeVmms& operator=(const FakeVmms&) = delete;
  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  static void* Idle(void*) {
    ::pause();
    return nullptr;
  }
  // A small stack: a thousand children of four threads each stay cheap.
  static void StartIdleThread() {
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_create(&thread, &attr, Idle, nullptr);
    pthread_attr_destroy(&attr);
  }

  std::vector<pid_t> pids_;
};

}  // namespace kvmexit::bench
