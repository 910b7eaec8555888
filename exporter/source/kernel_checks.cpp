// SPDX-License-Identifier: Apache-2.0
#include "source/kernel_checks.h"

#include <linux/types.h>  // kvm_exit.h's __u32, __u64
#include <sys/mount.h>
#include <sys/stat.h>

#include "kvm_exit.h"

namespace kvmexit {

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Checks the preconditions one by one so the message names the missing piece.
std::string CheckKernelSupport(const std::string& tracefs_root) {
  if (!PathExists("/sys/kernel/btf/vmlinux")) {
    return "kernel has no BTF (/sys/kernel/btf/vmlinux missing): CO-RE needs a kernel built "
           "with CONFIG_DEBUG_INFO_BTF=y";
  }
  const std::string events = tracefs_root + "/events";
  if (!PathExists(events)) {
    // tracefs is often present but not mounted; mounting it is harmless.
    ::mount("nodev", tracefs_root.c_str(), "tracefs", 0, nullptr);
  }
  if (!PathExists(events)) {
    return "tracefs is not mounted at " + tracefs_root + " (mount -t tracefs nodev " +
           tracefs_root + ", or set kernel.tracefs_path)";
  }
  if (!PathExists(events + "/kvm/kvm_exit")) {
    return "tracepoint kvm:kvm_exit not found under " + events +
           ": the kvm module is not loaded (modprobe kvm_intel or kvm_amd); will retry";
  }
#if defined(__aarch64__)
  // KVM is built into arm64 kernels: its tracepoints exist even where it could
  // not start, and only its device says whether any VM can run.
  if (!PathExists("/sys/class/misc/kvm")) {
    return "KVM is not available: kvm:kvm_exit exists but /dev/kvm was never registered (the "
           "kernel did not boot at EL2, so KVM could not start; see dmesg for \"kvm [1]\"); "
           "will retry";
  }
#endif
  return "";
}

std::optional<VendorModule> FindVendorModule(const std::string& sys_root) {
#if defined(__aarch64__)
  // One vendor, built in: its vCPU structs are in vmlinux's BTF.
  if (PathExists(sys_root + "/class/misc/kvm")) return VendorModule{KVM_EXIT_ISA_ARM64, "vmlinux"};
  return std::nullopt;
#endif
  if (PathExists(sys_root + "/module/kvm_amd")) return VendorModule{KVM_EXIT_ISA_SVM, "kvm_amd"};
  if (PathExists(sys_root + "/module/kvm_intel")) {
    return VendorModule{KVM_EXIT_ISA_VMX, "kvm_intel"};
  }
  return std::nullopt;
}

}  // namespace kvmexit
