// Loads one kvm_exit counting program (ours, or the reference written the
// common way), keeps it attached until SIGTERM/SIGINT, then prints the
// kernel's BPF statistics for it:
//   LOADER program=<ours|reference> run_cnt=<n> run_time_ns=<n>
// Used by the nested per-exit cost benchmark (bench/exit_cost/README.md).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "kvm_exit.skel.h"
#include "reference_kvmexit.skel.h"

namespace {

// Owns a libbpf skeleton: destroy detaches and frees everything it made.
template <typename Skeleton, void (*Destroy)(Skeleton*)>
struct SkeletonDeleter {
  void operator()(Skeleton* skeleton) const { Destroy(skeleton); }
};
using OursPtr = std::unique_ptr<kvm_exit_bpf, SkeletonDeleter<kvm_exit_bpf, kvm_exit_bpf__destroy>>;
using ReferencePtr =
    std::unique_ptr<reference_kvmexit_bpf,
                    SkeletonDeleter<reference_kvmexit_bpf, reference_kvmexit_bpf__destroy>>;

int WaitForSignal() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::printf("LOADER attached\n");
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  return signal_number;
}

void PrintStats(const char* name, int prog_fd) {
  bpf_prog_info info{};
  std::uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &length) != 0) {
    std::printf("LOADER program=%s stats unavailable: %s\n", name, std::strerror(errno));
    return;
  }
  std::printf("LOADER program=%s run_cnt=%llu run_time_ns=%llu\n", name,
              static_cast<unsigned long long>(info.run_cnt),
              static_cast<unsigned long long>(info.run_time_ns));
}

int Fail(const char* what, int err) {
  std::fprintf(stderr, "exit_cost_loader: %s failed: %s\n", what, std::strerror(-err));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string program = argc > 1 ? argv[1] : "";
  if (program == "ours") {
    OursPtr skeleton(kvm_exit_bpf__open_and_load());
    if (!skeleton) return Fail("loading ours", -errno);
    if (int err = kvm_exit_bpf__attach(skeleton.get()); err != 0) return Fail("attaching", err);
    WaitForSignal();
    PrintStats("ours", bpf_program__fd(skeleton->progs.count_kvm_exit));
    return 0;
  }
  if (program == "reference") {
    ReferencePtr skeleton(reference_kvmexit_bpf__open_and_load());
    if (!skeleton) return Fail("loading reference", -errno);
    if (int err = reference_kvmexit_bpf__attach(skeleton.get()); err != 0) {
      return Fail("attaching", err);
    }
    WaitForSignal();
    PrintStats("reference", bpf_program__fd(skeleton->progs.reference_kvm_exit));
    return 0;
  }
  std::fprintf(stderr, "usage: exit_cost_loader ours|reference\n");
  return 2;
}
