// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * vcpu_time_vmm: a tiny KVM VMM whose vCPUs do one thing for a given time, so
 * the exporter's vCPU time account (collector.vcpu_time) can be checked
 * against what they did:
 *   --mode spin  each vCPU runs `jmp $` in real mode (IF set): in guest mode the whole
 *                time, with no exit of its own (the host's timer interrupts
 *                still make some, handled inside KVM);
 *   --mode halt  each vCPU runs `cli; hlt`: with the in-kernel irqchip KVM
 *                blocks the vCPU thread in the kernel, as a halted guest
 *                does (without one, KVM_EXIT_HLT comes here and the thread
 *                sleeps until the end, as a VMM waiting for an interrupt);
 *   --mode spinhalt  spin for the first --spin-ms, then halt (so a halted
 *                vCPU thread has run in guest mode: vCPU threads are told
 *                apart by their guest time).
 * After --seconds, or at SIGTERM or SIGINT if that comes first, the main
 * thread sets each vCPU's immediate_exit and sends it SIGUSR1: KVM_RUN returns
 * EINTR and the vCPU thread ends. Then it prints
 *   VCPU_TIME_VMM DONE pid=<pid> vm=<name> mode=<mode> vcpus=<n> seconds=<s> tids=<t1,t2..>
 * and holds --hold-ms (SIGTERM ends the hold; one that ended the run skips
 * it). The command line takes QEMU's `-name guest=NAME,...` so the exporter
 * names the VM as it names QEMU's.
 * A separate program from test_vmm.c, whose guest counts exits exactly: this
 * one only has to be in one state for a known time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_VCPUS 64
#define GUEST_MEM 0x10000
#define CODE_SPIN 0x1000     /* jmp $ */
#define CODE_HALT 0x1100     /* cli; hlt; jmp back to hlt */
#define CODE_SPINHALT 0x1200 /* jmp $, until this process moves it to CODE_HALT */

enum mode { MODE_SPIN, MODE_HALT, MODE_SPINHALT };

struct vcpu {
  int fd;
  struct kvm_run *run;
  pthread_t thread;
  pid_t tid;
  int index;
};

static int vm_fd;
static enum mode mode = MODE_SPIN;
static struct vcpu vcpus[MAX_VCPUS];
static int nvcpus = 1;
static double seconds = 5.0;
static long spin_ms = 200;
static long hold_ms;
static const char *vm_name = "vcpu-time";
static atomic_bool stopping;
static atomic_bool halt_now; /* spinhalt: the spin is over */
static atomic_int failures;
static bool irqchip;

static void die(const char *what) {
  fprintf(stderr, "vcpu_time_vmm: %s: %s\n", what, strerror(errno));
  printf("VCPU_TIME_VMM FAILED %s\n", what);
  exit(1);
}

/* SIGTERM or SIGINT: the checks have measured what they wanted, end now. */
static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
  if (sig != SIGUSR1) stop_requested = 1;
}

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Real mode at 0, CS base 0, IP at the mode's code. */
static void setup_vcpu(struct vcpu *v) {
  struct kvm_sregs sregs;
  struct kvm_regs regs;
  if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  sregs.ds = sregs.es = sregs.ss = sregs.cs;
  sregs.ds.type = sregs.es.type = sregs.ss.type = 3;
  if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  memset(&regs, 0, sizeof(regs));
  /* IF set: under Bochs's VMX (the Intel suite) a guest entered with IF
   * clear never leaves for the host's timer interrupt, and the spin starved
   * the host (tests/e2e/README.md, "Bochs and the guest's IF"). No
   * interrupt is ever raised for this guest: it has no devices. The halt
   * code clears it. */
  regs.rflags = 0x202;
  regs.rsp = 0x8000 - 0x100 * (unsigned)v->index;
  regs.rip = mode == MODE_SPIN ? CODE_SPIN : mode == MODE_HALT ? CODE_HALT : CODE_SPINHALT;
  if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
  /* With the in-kernel irqchip every vCPU but 0 would wait for an INIT-SIPI. */
  if (irqchip) {
    struct kvm_mp_state state = {.mp_state = KVM_MP_STATE_RUNNABLE};
    if (ioctl(v->fd, KVM_SET_MP_STATE, &state) < 0) die("KVM_SET_MP_STATE");
  }
}

static void *run_vcpu(void *arg) {
  struct vcpu *v = arg;
  v->tid = (pid_t)syscall(SYS_gettid);
  char name[16];
  snprintf(name, sizeof(name), "CPU %d/KVM", v->index);
  pthread_setname_np(pthread_self(), name);
  bool halting = false;
  while (!atomic_load(&stopping)) {
    if (mode == MODE_SPINHALT && !halting && atomic_load(&halt_now)) {
      halting = true;
      /* Leave the spin: the next entry starts at the halt code. */
      struct kvm_regs regs;
      if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0) die("KVM_GET_REGS");
      regs.rip = CODE_HALT;
      if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
    }
    const int rc = ioctl(v->fd, KVM_RUN, 0);
    if (rc < 0 && errno == EINTR) {
      v->run->immediate_exit = 0;
      continue;  /* the timer's signal (end), or the spin deadline's */
    }
    if (rc < 0) die("KVM_RUN");
    if (v->run->exit_reason == KVM_EXIT_HLT) {
      /* No in-kernel irqchip: wait here as a VMM waits for an interrupt. */
      while (!atomic_load(&stopping)) usleep(10000);
      continue;
    }
    if (v->run->exit_reason == KVM_EXIT_IO || v->run->exit_reason == KVM_EXIT_INTR) continue;
    fprintf(stderr, "vcpu_time_vmm: vCPU %d: unexpected exit reason %u\n", v->index,
            v->run->exit_reason);
    atomic_fetch_add(&failures, 1);
    break;
  }
  return NULL;
}

/* Takes every vCPU out of KVM_RUN once (spinhalt: to move it to the halt code). */
static void kick_all(void) {
  for (int i = 0; i < nvcpus; ++i) {
    vcpus[i].run->immediate_exit = 1;
    pthread_kill(vcpus[i].thread, SIGUSR1);
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: vcpu_time_vmm [-name guest=NAME,...] --mode spin|halt|spinhalt "
          "[--vcpus N] [--seconds S] [--spin-ms MS] [--hold-ms MS]\n");
  exit(2);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(arg, "-name") == 0 && value) {
      const char *start = strncmp(value, "guest=", 6) == 0 ? value + 6 : value;
      static char name[64];
      snprintf(name, sizeof(name), "%.*s", (int)strcspn(start, ","), start);
      vm_name = name;
    } else if (strcmp(arg, "--mode") == 0 && value) {
      if (strcmp(value, "spin") == 0) {
        mode = MODE_SPIN;
      } else if (strcmp(value, "halt") == 0) {
        mode = MODE_HALT;
      } else if (strcmp(value, "spinhalt") == 0) {
        mode = MODE_SPINHALT;
      } else {
        usage();
      }
    } else if (strcmp(arg, "--vcpus") == 0 && value) {
      nvcpus = atoi(value);
      if (nvcpus < 1 || nvcpus > MAX_VCPUS) usage();
    } else if (strcmp(arg, "--seconds") == 0 && value) {
      seconds = atof(value);
    } else if (strcmp(arg, "--spin-ms") == 0 && value) {
      spin_ms = atol(value);
    } else if (strcmp(arg, "--hold-ms") == 0 && value) {
      hold_ms = atol(value);
    } else {
      usage();
    }
    ++i;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);

  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_handler = on_signal; /* no SA_RESTART: KVM_RUN returns EINTR */
  sigaction(SIGUSR1, &action, NULL);
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);

  const int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  vm_fd = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm_fd < 0) die("KVM_CREATE_VM");
  uint8_t *mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  static const uint8_t spin[] = {0xeb, 0xfe};                   /* jmp $ */
  static const uint8_t halt[] = {0xfa, 0xf4, 0xeb, 0xfd};       /* cli; hlt; jmp -3 */
  static const uint8_t spinhalt[] = {0xeb, 0xfe};               /* jmp $ until moved */
  memcpy(mem + CODE_SPIN, spin, sizeof(spin));
  memcpy(mem + CODE_HALT, halt, sizeof(halt));
  memcpy(mem + CODE_SPINHALT, spinhalt, sizeof(spinhalt));
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = GUEST_MEM, .userspace_addr = (uintptr_t)mem};
  if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
  /* A halted vCPU then blocks in the kernel, as with every real VMM. */
  irqchip = ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) == 0;

  const int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size <= 0) die("KVM_GET_VCPU_MMAP_SIZE");
  for (int i = 0; i < nvcpus; ++i) {
    vcpus[i].index = i;
    vcpus[i].fd = ioctl(vm_fd, KVM_CREATE_VCPU, i);
    if (vcpus[i].fd < 0) die("KVM_CREATE_VCPU");
    vcpus[i].run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpus[i].fd, 0);
    if (vcpus[i].run == MAP_FAILED) die("mmap kvm_run");
    setup_vcpu(&vcpus[i]);
  }
  const double started = now_seconds();
  for (int i = 0; i < nvcpus; ++i) {
    if (pthread_create(&vcpus[i].thread, NULL, run_vcpu, &vcpus[i]) != 0) die("pthread_create");
  }
  if (mode == MODE_SPINHALT) {
    usleep((useconds_t)spin_ms * 1000);
    atomic_store(&halt_now, true);
    kick_all();  /* out of the spin: each vCPU moves to the halt code and re-enters */
  }
  const double end = started + seconds;
  for (double left = end - now_seconds(); left > 0 && !stop_requested; left = end - now_seconds()) {
    usleep(left > 0.1 ? 100000 : (useconds_t)(left * 1e6));
  }
  atomic_store(&stopping, true);
  for (int i = 0; i < nvcpus; ++i) {
    /* Repeated until the thread ends: a signal between its check and KVM_RUN
     * is caught by immediate_exit; one before immediate_exit was set, by the next. */
    while (pthread_tryjoin_np(vcpus[i].thread, NULL) == EBUSY) {
      vcpus[i].run->immediate_exit = 1;
      pthread_kill(vcpus[i].thread, SIGUSR1);
      usleep(1000);
    }
  }
  printf("VCPU_TIME_VMM %s pid=%d vm=%s mode=%s vcpus=%d seconds=%.3f irqchip=%d tids=",
         atomic_load(&failures) ? "FAILED" : "DONE", getpid(), vm_name,
         mode == MODE_SPIN ? "spin" : mode == MODE_HALT ? "halt" : "spinhalt", nvcpus,
         now_seconds() - started, irqchip ? 1 : 0);
  for (int i = 0; i < nvcpus; ++i) printf("%s%d", i ? "," : "", vcpus[i].tid);
  printf("\n");
  if (hold_ms > 0 && !stop_requested) {
    struct timespec hold = {.tv_sec = hold_ms / 1000, .tv_nsec = (hold_ms % 1000) * 1000000};
    nanosleep(&hold, NULL); /* SIGTERM ends it early */
  }
  return atomic_load(&failures) ? 1 : 0;
}
