// SPDX-License-Identifier: Apache-2.0
/* A stand-in VMM process for the vm_identity tests: the tests give it a
 * QEMU/Firecracker/... command line and cgroup; it ignores its arguments and
 * waits to be killed. The alarm ends it should a crashed test leave it behind. */
#include <unistd.h>

int main(void) {
  alarm(600);
  for (;;) pause();
}
