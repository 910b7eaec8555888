// SPDX-License-Identifier: Apache-2.0
// Firecracker, cloud-hypervisor and crosvm: recognition and their own VM ids.
// How these combine with other sources into a VM identity: vm_identity_test.
#include "identity/other_vmm.h"

#include <gtest/gtest.h>

#include "identity/vm_identity.h"

namespace kvmexit {
namespace {

TEST(DetectOtherVmmTest, ByProgramFileNameOrTruncatedComm) {
  EXPECT_EQ(DetectOtherVmm(ProcessInfo{.argv = {"/usr/bin/firecracker"}}), OtherVmm::kFirecracker);
  EXPECT_EQ(DetectOtherVmm(ProcessInfo{.comm = "cloud-hyperviso"}), OtherVmm::kCloudHypervisor);
  EXPECT_EQ(DetectOtherVmm(ProcessInfo{.comm = "crosvm"}), OtherVmm::kCrosvm);
  EXPECT_EQ(DetectOtherVmm(ProcessInfo{.comm = "qemu-system-x86", .argv = {"qemu"}}),
            OtherVmm::kNone);
}

TEST(OtherVmmPlatformTest, OneValuePerVmm) {
  EXPECT_EQ(OtherVmmPlatform(OtherVmm::kFirecracker), kPlatformFirecracker);
  EXPECT_EQ(OtherVmmPlatform(OtherVmm::kCloudHypervisor), kPlatformCloudHypervisor);
  EXPECT_EQ(OtherVmmPlatform(OtherVmm::kCrosvm), kPlatformCrosvm);
  EXPECT_EQ(OtherVmmPlatform(OtherVmm::kNone), kPlatformProcess);
}

TEST(OtherVmmIdTest, FirecrackerId) {
  EXPECT_EQ(OtherVmmId(OtherVmm::kFirecracker, {"firecracker", "--id", "fc-1"}), "fc-1");
  EXPECT_EQ(OtherVmmId(OtherVmm::kFirecracker, {"firecracker", "--id=fc-2"}), "fc-2");
  EXPECT_EQ(OtherVmmId(OtherVmm::kFirecracker, {"firecracker"}), "");
}

TEST(OtherVmmIdTest, CloudHypervisorSocketPathNamesTheVm) {
  const auto id = [](const std::string& socket) {
    return OtherVmmId(OtherVmm::kCloudHypervisor, {"cloud-hypervisor", "--api-socket", socket});
  };
  EXPECT_EQ(id("/run/ch/web01.sock"), "web01");
  EXPECT_EQ(id("path=/run/vc/vm/sandbox-7/clh-api.sock"), "sandbox-7");  // generic file name
  EXPECT_EQ(id("fd=3"), "");
  EXPECT_EQ(id("/api.sock"), "");  // generic file name, no directory
}

TEST(OtherVmmIdTest, CrosvmSyslogTagBeforeSocket) {
  EXPECT_EQ(OtherVmmId(OtherVmm::kCrosvm, {"crosvm", "run", "-s", "/run/a/vm1.sock"}), "vm1");
  EXPECT_EQ(OtherVmmId(OtherVmm::kCrosvm,
                       {"crosvm", "run", "--syslog-tag", "termina", "-s", "/run/a/vm1.sock"}),
            "termina");
}

TEST(OtherVmmIdTest, NoneHasNoId) {
  EXPECT_EQ(OtherVmmId(OtherVmm::kNone, {"x", "--id", "y"}), "");
}

}  // namespace
}  // namespace kvmexit
