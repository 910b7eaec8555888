// SPDX-License-Identifier: Apache-2.0
// cgroup layouts: libvirt machines, Proxmox scopes and VM configs, Kubernetes pods.
// How these combine with other sources into a VM identity: vm_identity_test.
#include "identity/cgroup_layout.h"

#include <gtest/gtest.h>

#include <string>

#include "temp_dir.h"

namespace kvmexit {
namespace {

using test_util::TempDir;
using test_util::WriteFile;
using Kind = CgroupVm::Kind;

TEST(ParseCgroupLayoutTest, LibvirtSystemdScopeAndCgroupfsMachine) {
  const auto scope = ParseCgroupLayout(R"(/machine.slice/machine-qemu\x2d3\x2dmy\x2dvm.scope)");
  EXPECT_EQ(scope.kind, Kind::kLibvirtMachine);
  EXPECT_EQ(scope.name, "my-vm");
  EXPECT_EQ(ParseCgroupLayout("/machine/qemu-4-mail.libvirt-qemu/emulator").name, "mail");
  EXPECT_EQ(ParseCgroupLayout("/machine/odd.libvirt-qemu").name, "odd");
}

TEST(ParseCgroupLayoutTest, ProxmoxScope) {
  const auto vm = ParseCgroupLayout("/qemu.slice/100.scope");
  EXPECT_EQ(vm.kind, Kind::kProxmox);
  EXPECT_EQ(vm.id, "100");
  EXPECT_EQ(ParseCgroupLayout("/qemu.slice/abc.scope").kind, Kind::kNone);
}

TEST(ParseCgroupLayoutTest, KubernetesPodUnderEitherDriver) {
  const auto systemd = ParseCgroupLayout(
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0B7E5A3C_96f1.slice/x.scope");
  EXPECT_EQ(systemd.kind, Kind::kKubernetesPod);
  EXPECT_EQ(systemd.id, "0b7e5a3c-96f1");
  EXPECT_EQ(ParseCgroupLayout("/kubepods/besteffort/pod0b7e5a3c-96f1/c").id, "0b7e5a3c-96f1");
  EXPECT_EQ(ParseCgroupLayout("/user.slice/pod0b7e5a3c.slice").kind, Kind::kNone);
  // Found by fuzz_vm_identity: a "UID" of 130 hex digits made a 136-byte VM name.
  EXPECT_EQ(ParseCgroupLayout("/kubepods/pod" + std::string(37, 'a') + "/c").kind, Kind::kNone);
  EXPECT_EQ(ParseCgroupLayout("/kubepods/pod" + std::string(36, 'a') + "/c").id,
            std::string(36, 'a'));
}

TEST(ParseCgroupLayoutTest, NothingRecognised) {
  EXPECT_EQ(ParseCgroupLayout("/").kind, Kind::kNone);
  EXPECT_EQ(ParseCgroupLayout("").kind, Kind::kNone);
}

TEST(NameFromCgroupTest, LibvirtDomainOrPodUid) {
  // As found: IdentifyVm, not the source, makes it a label value.
  EXPECT_EQ(NameFromCgroup({Kind::kLibvirtMachine, " db ", ""}), " db ");
  EXPECT_EQ(NameFromCgroup({Kind::kKubernetesPod, "", "0b7e"}), "pod-0b7e");
  EXPECT_EQ(NameFromCgroup({Kind::kProxmox, "", "100"}), "");
}

TEST(ProxmoxConfigTest, NameAndUuidOfTheCurrentConfigurationOnly) {
  TempDir pve;
  WriteFile(pve.path() / "qemu-server" / "100.conf",
            "cores: 4\nname: db-server\nsmbios1: uuid=8F0D4A3E-1C2B-4D5E-9F60-718293A4B5C6\n"
            "\n[snapshot]\nname: old-name\n");
  const auto config = ReadProxmoxConfig(pve.path().string(), "100");
  EXPECT_EQ(config.name, "db-server");
  EXPECT_EQ(config.uuid, "8f0d4a3e-1c2b-4d5e-9f60-718293a4b5c6");
  EXPECT_EQ(ReadProxmoxConfig(pve.path().string(), "101").name, "");  // no such file
  EXPECT_EQ(ReadProxmoxConfig("", "100").name, "");
}

TEST(ProxmoxNameTest, ConfiguredNameElseVmid) {
  EXPECT_EQ(ProxmoxName("100", {.name = "db", .uuid = ""}), "db");
  EXPECT_EQ(ProxmoxName("100", {}), "vmid-100");
  EXPECT_EQ(ProxmoxName("", {.name = "db", .uuid = ""}), "");
  EXPECT_EQ(ProxmoxName("100", {.name = " \t", .uuid = ""}), "vmid-100");  // blank: no name
}

TEST(KubevirtNameTest, FirstUnderscoreSeparatesNamespaceAndVmi) {
  EXPECT_EQ(KubevirtName("default_testvm"), "default/testvm");
  EXPECT_EQ(KubevirtName("plain"), "plain");
}

}  // namespace
}  // namespace kvmexit
