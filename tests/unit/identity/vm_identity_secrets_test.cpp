// SPDX-License-Identifier: Apache-2.0
// Command-line secrets never reach a label. A QEMU command line carries
// passwords and keys (`-object secret,data=...`, `password=` of -vnc/-spice,
// Ceph keys in -drive); /metrics is readable by anyone who reaches the port.
// Every label a VM gets comes from VmIdentity (name: the `vm` label of every
// per-VM series; name, uuid, platform: kvm_vm_info), so no field of it may
// contain the secret, whichever source names the VM. docs/security.md cites
// this test.
#include <gtest/gtest.h>

#include "config/config.h"  // NamingRule
#include "identity/vm_identity.h"

namespace kvmexit {
namespace {

constexpr char kSecret[] = "hunter2";
constexpr char kUuid[] = "8f0d4a3e-1c2b-4d5e-9f60-718293a4b5c6";

// The secret-bearing options QEMU and libvirt really write, in one list.
std::vector<std::string> WithSecrets(std::vector<std::string> argv) {
  for (const char* arg :
       {"-object", "secret,id=sec0,data=hunter2,format=raw", "-object",
        "secret,id=masterKey0,format=raw,file=/var/lib/libvirt/qemu/domain-1/master-key.aes",
        "-vnc", "0.0.0.0:0,password=on", "-spice", "port=5900,password=hunter2", "-drive",
        "file=rbd:pool/disk:id=admin:key=hunter2:auth_supported=cephx,format=raw", "-iscsi",
        "user=admin,password=hunter2", "-smbios",
        "type=1,serial=hunter2,uuid=8f0d4a3e-1c2b-4d5e-9f60-718293a4b5c6"}) {
    argv.emplace_back(arg);
  }
  return argv;
}

ProcessInfo Qemu(std::vector<std::string> argv, std::string cgroup = "/") {
  ProcessInfo process;
  process.pid = 4242;
  process.comm = "qemu-system-x86";
  process.argv = std::move(argv);
  process.cgroup = std::move(cgroup);
  return process;
}

void ExpectNoSecret(const VmIdentity& identity) {
  for (const std::string* label : {&identity.name, &identity.uuid, &identity.platform}) {
    EXPECT_EQ(label->find(kSecret), std::string::npos) << "label value '" << *label << "'";
    EXPECT_EQ(label->find("password"), std::string::npos) << "label value '" << *label << "'";
    EXPECT_EQ(label->find("data="), std::string::npos) << "label value '" << *label << "'";
  }
}

TEST(VmIdentitySecretsTest, LibvirtGuestNamedFromNameOnly) {
  const VmIdentity identity = IdentifyVm(
      Qemu(WithSecrets({"/usr/bin/qemu-system-x86_64", "-name", "guest=web1,debug-threads=on"})),
      {}, "/nonexistent/pve");
  EXPECT_EQ(identity.name, "web1");
  EXPECT_EQ(identity.uuid, kUuid);  // from -smbios, without its serial=
  ExpectNoSecret(identity);
}

TEST(VmIdentitySecretsTest, QemuWithoutNameFallsBackToTheProcessName) {
  const VmIdentity identity =
      IdentifyVm(Qemu(WithSecrets({"/usr/bin/qemu-system-x86_64"})), {}, "/nonexistent/pve");
  EXPECT_EQ(identity.name, "qemu-system-x86");
  ExpectNoSecret(identity);
}

TEST(VmIdentitySecretsTest, ProxmoxNamedFromItsId) {
  const VmIdentity identity =
      IdentifyVm(Qemu(WithSecrets({"/usr/bin/kvm", "-id", "101"}), "/qemu.slice/101.scope"), {},
                 "/nonexistent/pve");
  EXPECT_EQ(identity.platform, "proxmox");
  ExpectNoSecret(identity);
}

TEST(VmIdentitySecretsTest, SecretsAsTheOnlyArgumentsNameNothing) {
  // Secrets placed where a name could be looked for: right after the program.
  const VmIdentity identity = IdentifyVm(
      Qemu({"/usr/bin/qemu-system-x86_64", "password=hunter2", "-object", "secret,data=hunter2"}),
      {}, "/nonexistent/pve");
  ExpectNoSecret(identity);
}

}  // namespace
}  // namespace kvmexit
