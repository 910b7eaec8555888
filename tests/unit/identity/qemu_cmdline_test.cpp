// SPDX-License-Identifier: Apache-2.0
// QEMU/libvirt command lines and the option syntax other sources share.
// How these combine with other sources into a VM identity: vm_identity_test.
#include "identity/qemu_cmdline.h"

#include <gtest/gtest.h>

namespace kvmexit {
namespace {

constexpr char kUuid[] = "8f0d4a3e-1c2b-4d5e-9f60-718293a4b5c6";

using Args = std::vector<std::string>;

TEST(ParseQemuCmdlineTest, GuestKeyUuidAndProxmoxId) {
  const auto qemu = ParseQemuCmdline({"kvm", "-id", "102", "-name", "guest=web01,debug-threads=on",
                                      "-uuid", "8F0D4A3E-1C2B-4D5E-9F60-718293A4B5C6"});
  EXPECT_EQ(qemu.name, "web01");
  EXPECT_FALSE(qemu.started_by_libvirt);  // guest= is QEMU syntax anyone writes
  EXPECT_EQ(qemu.uuid, kUuid);
  EXPECT_EQ(qemu.proxmox_vmid, "102");
}

TEST(ParseQemuCmdlineTest, LibvirtsMasterKeyInEitherObjectSyntax) {
  const Args libvirt_9 = {"qemu-system-x86_64",
                          "-name",
                          "guest=web01,debug-threads=on",
                          "-S",
                          "-object",
                          R"({"qom-type":"secret","id":"masterKey0","format":"raw",)"
                          R"("file":"/var/lib/libvirt/qemu/domain-1-web01/master-key.aes"})"};
  EXPECT_TRUE(ParseQemuCmdline(libvirt_9).started_by_libvirt);
  EXPECT_TRUE(ParseQemuCmdline({"qemu-kvm", "-object",
                                "secret,id=masterKey0,format=raw,file=/var/lib/libvirt/"
                                "qemu/domain-2-db/master-key.aes"})
                  .started_by_libvirt);
  EXPECT_FALSE(ParseQemuCmdline({"qemu-kvm", "-object", "secret,id=mysecret,data=x", "-name",
                                 "guest=masterKey0"})
                   .started_by_libvirt);
}

TEST(ParseQemuCmdlineTest, ImpliedNameKey) {
  const auto qemu = ParseQemuCmdline({"qemu-system-x86_64", "-name", "plain,process=p"});
  EXPECT_EQ(qemu.name, "plain");
  EXPECT_FALSE(qemu.started_by_libvirt);
  EXPECT_EQ(qemu.proxmox_vmid, "");
}

TEST(ParseQemuCmdlineTest, SmbiosUuidOnlyWithoutAValidUuidOption) {
  const std::string smbios = std::string("type=1,uuid=") + kUuid;
  EXPECT_EQ(ParseQemuCmdline({"qemu", "-uuid", "bad", "-smbios", smbios}).uuid, kUuid);
  EXPECT_EQ(ParseQemuCmdline({"qemu", "-smbios", std::string("type=2,uuid=") + kUuid}).uuid, "");
}

TEST(ParseQemuCmdlineTest, NonNumericIdIsNotAProxmoxVmid) {
  EXPECT_EQ(ParseQemuCmdline({"qemu", "-id", "abc"}).proxmox_vmid, "");
}

TEST(LooksLikeQemuTest, ByProgramCommNameOrUuid) {
  EXPECT_TRUE(LooksLikeQemu(ProcessInfo{.argv = {"/usr/bin/kvm"}}, {}));
  EXPECT_TRUE(LooksLikeQemu(ProcessInfo{.comm = "qemu-system-x86"}, {}));
  EXPECT_TRUE(LooksLikeQemu(ProcessInfo{.argv = {"vmm"}}, QemuCmdline{.name = "a"}));
  EXPECT_FALSE(LooksLikeQemu(ProcessInfo{.comm = "my-vmm", .argv = {"my-vmm"}}, {}));
}

TEST(LastOptionValueTest, LastOneWinsAndEqualsFormOnlyWhenAllowed) {
  const Args argv = {"prog", "--id", "a", "--id=b", "-s", "c"};
  EXPECT_EQ(LastOptionValue(argv, {"--id"}, true), "b");
  EXPECT_EQ(LastOptionValue(argv, {"--id"}, false), "a");
  EXPECT_EQ(LastOptionValue(argv, {"--socket", "-s"}, true), "c");
  EXPECT_EQ(LastOptionValue({"prog", "--id"}, {"--id"}, true), std::nullopt);  // no value
  EXPECT_EQ(LastOptionValue({"--id", "x"}, {"--id"}, true), std::nullopt);     // argv[0]
}

TEST(QemuOptionListTest, DoubledCommaIsALiteralComma) {
  EXPECT_EQ(SplitQemuOptionList("a,,b,key=v,,w,flag"), (Args{"a,b", "key=v,w", "flag"}));
  EXPECT_EQ(SplitQemuOptionList(""), Args{""});
  const auto elements = SplitQemuOptionList("x,key=1,key=2");
  EXPECT_EQ(QemuOptionValue(elements, "key"), "1");
  EXPECT_EQ(QemuOptionValue(elements, "x"), std::nullopt);
}

TEST(CanonicalUuidTest, LowercaseEightFourFourFourTwelve) {
  EXPECT_EQ(CanonicalUuid(" 8F0D4A3E-1C2B-4D5E-9F60-718293A4B5C6\n"), kUuid);
  EXPECT_EQ(CanonicalUuid("8f0d4a3e1c2b4d5e9f60718293a4b5c6"), "");
  EXPECT_EQ(CanonicalUuid("8f0d4a3e-1c2b-4d5e-9f60-718293a4b5cg"), "");
}

}  // namespace
}  // namespace kvmexit
