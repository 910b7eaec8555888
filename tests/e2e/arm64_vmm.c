// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * arm64_vmm: a tiny arm64 KVM virtual machine monitor that makes an exact
 * number of VM exits of known exception classes, for the arm64 nested
 * end-to-end suite (tests/e2e/arm64/). It is the arm64 twin of test_vmm.c
 * and is installed in the arm64 image as /bin/test_vmm, so lib/common.sh's
 * vmm_* helpers drive it unchanged.
 *
 * Each vCPU (KVM_ARM_VCPU_INIT of KVM_ARM_PREFERRED_TARGET with PSCI 0.2+,
 * no in-kernel irqchip) runs the same few AArch64 instructions (assembled
 * below by gas) at EL1 with the MMU off, in this order:
 *   - `mrs x9, id_aa64pfr0_el1` S times (--sysreg): an ID register read,
 *     trapped by HCR_EL2.TID3 (KVM always sets it), exception class SYS64
 *     0x18, emulated inside KVM, never seen here;
 *   - `hvc #0` M times (--hvc) with x0 = ARM64_VMM_HVC_FN, an SMCCC function
 *     id KVM does not implement: HVC64 0x16, answered inside KVM with
 *     SMCCC_RET_NOT_SUPPORTED (-1; the guest counts any other answer as an
 *     error);
 *   - `str w20, [x19]` N times (--mmio): a 32-bit store to IPA
 *     0x10000000 + vcpu * 0x1000, outside every memslot: DABT_LOW 0x24, each
 *     handed to this process as KVM_EXIT_MMIO, checked (address, length,
 *     value) and completed here;
 *   - PSCI: every vCPU but 0 calls CPU_OFF; vCPU 0 calls AFFINITY_INFO for
 *     vCPU 1, 2, ... until each is OFF (a short delay loop between calls),
 *     then SYSTEM_OFF, which ends the VM (KVM_EXIT_SYSTEM_EVENT). So every
 *     vCPU finishes its workload before the VM is switched off, and the
 *     HVC64 exits are exactly M per vCPU plus the PSCI calls (psci= below;
 *     1 per vCPU plus vCPU 0's AFFINITY_INFO polls, which the guest counts).
 * The vCPUs stopped by CPU_OFF sleep in KVM_RUN; once vCPU 0 has switched
 * the VM off, their threads get SIGUSR1 (KVM_RUN returns EINTR) and check
 * their vCPU's registers: every count done, mp_state STOPPED. Any exception
 * in the guest goes through its vector table (VBAR_EL1) to a store of ESR_EL1
 * at ARM64_VMM_ERROR_IPA, a failure here.
 *
 * The command line takes QEMU's `-name guest=NAME,debug-threads=on` (the
 * vCPU threads are then named "CPU n/KVM", as QEMU names them) and
 * `-uuid UUID`, so an exporter can name the VM the way it names QEMU's.
 *
 * Output: one line per vCPU and a final key=value line
 *   TEST_VMM DONE pid=<pid> vm=<name> vcpus=<k> mmio=<n> hvc=<n> sysreg=<n>
 *     psci=<n> runs=<n> runs_mmio=<n> runs_system_event=<n> runs_eintr=<n>
 *     runs_other=<n> seconds=<s>
 * (on one line; FAILED instead of DONE on an error) printed when the
 * scenario is over, before --hold-ms; SIGTERM or SIGINT ends the hold early.
 * mmio, hvc, sysreg: what the guest did, summed over the vCPUs; psci: its
 * PSCI calls (all HVC64 exits but the --hvc ones); runs: every return of
 * ioctl(KVM_RUN), split into KVM_EXIT_MMIO, KVM_EXIT_SYSTEM_EVENT, EINTR and
 * anything else (runs_other, a failure). Exit status 0 when every vCPU did
 * all it was asked and every exit was an expected one, else 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#ifndef __aarch64__
#error "arm64_vmm runs arm64 KVM guests: build it with aarch64-linux-gnu-gcc"
#endif

enum {
	MAX_VCPUS = 8,                   /* vCPU id = MPIDR Aff0 for AFFINITY_INFO */
	GUEST_RAM_IPA = 0x40000000,      /* one memslot: vectors and code */
	GUEST_RAM_SIZE = 0x10000,
	MMIO_BASE_IPA = 0x10000000,      /* vCPU i stores to MMIO_BASE_IPA + i * 0x1000 */
	MMIO_VCPU_STRIDE = 0x1000,
	MAX_COUNT = 100000000,
};
/* Used by the guest's assembly too (so macros, not enum constants). */
#define ARM64_VMM_ERROR_IPA 0x1ff00000 /* the guest's exception vectors store ESR_EL1 here */
#define ARM64_VMM_HVC_FN 0x82000000UL  /* SMCCC SiP service call 0: not implemented by KVM */
#define SMCCC_RET_NOT_SUPPORTED UINT64_MAX
#define PSCI_AFFINITY_INFO_64 0xc4000004
#define PSCI_CPU_OFF 0x84000002
#define PSCI_SYSTEM_OFF 0x84000008
#define AFFINITY_POLL_DELAY 200000 /* guest loop iterations between two AFFINITY_INFO calls */
#define STR_(x) #x
#define STR(x) STR_(x)

/*
 * The guest, copied to GUEST_RAM_IPA: the vector table first (VBAR_EL1 needs
 * 2 KiB alignment; the blob is 4 KiB aligned), then the code at
 * guest_entry. Registers the VMM sets before the first KVM_RUN:
 *   x19 MMIO address   x20 MMIO stores left   x21 HVCs left
 *   x22 sysreg reads left   x23 vCPUs   x24 this vCPU's id
 *   x25 PSCI calls made (0)   x26 HVC answers other than NOT_SUPPORTED (0)
 *   x27 the HVC function id
 * Counters count down to 0, so the VMM reads what was done from them.
 */
__asm__(".pushsection .rodata.arm64_vmm_guest, \"a\"\n"
	".balign 4096\n"
	".global guest_blob_start\n"
	"guest_blob_start:\n"
	/* 16 vectors of 0x80 bytes: x9 = vector number, then report and spin. */
	".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	".balign 0x80\n"
	"	mov	x9, #\\n\n"
	"	b	guest_exception\n"
	".endr\n"
	"guest_exception:\n"
	"	mrs	x10, esr_el1\n"
	"	orr	x10, x10, x9, lsl #48\n" /* vector number in bits 48.. */
	"	movz	x11, #(" STR(ARM64_VMM_ERROR_IPA) " >> 16), lsl #16\n"
	"	str	x10, [x11]\n"
	"1:	b	1b\n"
	".balign 64\n"
	".global guest_entry\n"
	"guest_entry:\n"
	/* sysreg: trapped ID register reads (SYS64) */
	"1:	cbz	x22, 2f\n"
	"	mrs	x9, id_aa64pfr0_el1\n"
	"	sub	x22, x22, #1\n"
	"	b	1b\n"
	/* hvc: an SMCCC function KVM answers NOT_SUPPORTED (HVC64) */
	"2:	cbz	x21, 4f\n"
	"	mov	x0, x27\n"
	"	mov	x1, xzr\n"
	"	mov	x2, xzr\n"
	"	mov	x3, xzr\n"
	"	hvc	#0\n"
	"	cmn	x0, #1\n"
	"	b.eq	3f\n"
	"	add	x26, x26, #1\n"
	"3:	sub	x21, x21, #1\n"
	"	b	2b\n"
	/* mmio: 32-bit stores outside guest RAM (DABT_LOW, KVM_EXIT_MMIO) */
	"4:	cbz	x20, 5f\n"
	"	str	w20, [x19]\n"
	"	sub	x20, x20, #1\n"
	"	b	4b\n"
	/* PSCI: CPU_OFF, or on vCPU 0 wait for the others to be OFF, SYSTEM_OFF */
	"5:	cbnz	x24, 9f\n"
	"	mov	x28, #1\n"
	"6:	cmp	x28, x23\n"
	"	b.hs	8f\n"
	"	movz	x0, #(" STR(PSCI_AFFINITY_INFO_64) " & 0xffff)\n"
	"	movk	x0, #(" STR(PSCI_AFFINITY_INFO_64) " >> 16), lsl #16\n"
	"	mov	x1, x28\n" /* target affinity: MPIDR Aff0 = vCPU id */
	"	mov	x2, xzr\n"
	"	add	x25, x25, #1\n"
	"	hvc	#0\n"
	"	cmp	x0, #1\n" /* PSCI_0_2_AFFINITY_LEVEL_OFF */
	"	b.ne	7f\n"
	"	add	x28, x28, #1\n"
	"	b	6b\n"
	"7:	movz	x9, #(" STR(AFFINITY_POLL_DELAY) " & 0xffff)\n"
	"	movk	x9, #(" STR(AFFINITY_POLL_DELAY) " >> 16), lsl #16\n"
	"71:	subs	x9, x9, #1\n"
	"	b.ne	71b\n"
	"	b	6b\n"
	"8:	movz	x0, #(" STR(PSCI_SYSTEM_OFF) " & 0xffff)\n"
	"	movk	x0, #(" STR(PSCI_SYSTEM_OFF) " >> 16), lsl #16\n"
	"	add	x25, x25, #1\n"
	"	hvc	#0\n"
	"81:	b	81b\n"
	"9:	movz	x0, #(" STR(PSCI_CPU_OFF) " & 0xffff)\n"
	"	movk	x0, #(" STR(PSCI_CPU_OFF) " >> 16), lsl #16\n"
	"	add	x25, x25, #1\n"
	"	hvc	#0\n"
	"91:	b	91b\n"
	".global guest_blob_end\n"
	"guest_blob_end:\n"
	".popsection\n");
extern const uint8_t guest_blob_start[], guest_entry[], guest_blob_end[];

/* ---- Options ------------------------------------------------------------- */

struct options {
	char vm_name[256]; /* from -name; empty when not given */
	bool debug_threads; /* -name ...,debug-threads=on: name vCPU threads like QEMU */
	const char *uuid;
	unsigned vcpus;
	uint32_t mmio, hvc, sysreg; /* per vCPU */
	long hold_ms;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: test_vmm (arm64_vmm) [-name guest=NAME[,debug-threads=on] | -name NAME]\n"
		"                [-uuid UUID] [--vcpus K] [--mmio N] [--hvc M] [--sysreg S]\n"
		"                [--hold-ms T]\n"
		"  --vcpus K    K vCPUs (ids 0..K-1, at most %d), each runs the workload\n"
		"  --sysreg S   S reads of ID_AA64PFR0_EL1 per vCPU (SYS64, handled in KVM)\n"
		"  --hvc M      M `hvc #0` per vCPU, x0=0x%lx (HVC64, handled in KVM)\n"
		"  --mmio N     N 32-bit stores per vCPU to IPA 0x%x + vcpu*0x%x\n"
		"               (DABT_LOW, each a KVM_EXIT_MMIO completed here)\n"
		"  --hold-ms T  stay alive T ms after the scenario (VM still open, idle);\n"
		"               SIGTERM/SIGINT end the hold early, exit status unchanged\n"
		"  Then PSCI: CPU_OFF on vCPUs 1.., AFFINITY_INFO polls and SYSTEM_OFF on 0.\n",
		MAX_VCPUS, ARM64_VMM_HVC_FN, MMIO_BASE_IPA, MMIO_VCPU_STRIDE);
}

#include "vmm_cli.h"

static void parse_options(int argc, char **argv, struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->vcpus = 1;
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (val == NULL)
			usage_error("%s: missing value (or unknown option)", opt);
		i++;
		if (strcmp(opt, "-name") == 0 || strcmp(opt, "--name") == 0)
			parse_qemu_name(val, &(const struct qemu_name){
							  .vm_name = o->vm_name,
							  .vm_name_size = sizeof(o->vm_name),
							  .debug_threads = &o->debug_threads,
						  });
		else if (strcmp(opt, "-uuid") == 0 || strcmp(opt, "--uuid") == 0)
			o->uuid = val;
		else if (strcmp(opt, "--vcpus") == 0)
			o->vcpus = (unsigned)parse_number(opt, val, MAX_VCPUS);
		else if (strcmp(opt, "--mmio") == 0)
			o->mmio = (uint32_t)parse_number(opt, val, MAX_COUNT);
		else if (strcmp(opt, "--hvc") == 0)
			o->hvc = (uint32_t)parse_number(opt, val, MAX_COUNT);
		else if (strcmp(opt, "--sysreg") == 0)
			o->sysreg = (uint32_t)parse_number(opt, val, MAX_COUNT);
		else if (strcmp(opt, "--hold-ms") == 0)
			o->hold_ms = (long)parse_number(opt, val, 3600000);
		else
			usage_error("unknown option '%s'", opt);
	}
	if (o->vcpus == 0)
		usage_error("--vcpus: must be at least 1");
}

/* ---- KVM ------------------------------------------------------------------ */

static _Noreturn void die_errno(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	fputs("test_vmm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " failed: %s\n", strerror(err));
	printf("TEST_VMM FAILED pid=%d error=setup\n", (int)getpid());
	exit(1);
}

struct vm {
	int kvm_fd, vm_fd;
	size_t run_size;
	struct kvm_vcpu_init init; /* KVM_ARM_PREFERRED_TARGET + PSCI 0.2 */
};

struct vcpu {
	const struct options *opts;
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	atomic_bool finished;
	bool ok;
	char error[160];
	/* what the guest did, from its registers at the end */
	uint64_t mmio, hvc, sysreg, psci, hvc_errors;
	/* KVM_RUN returns */
	uint64_t runs, runs_mmio, runs_system_event, runs_eintr, runs_other;
};

#define CORE_REG(field) \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
	 (offsetof(struct kvm_regs, field) / sizeof(uint32_t)))
#define XREG(n) CORE_REG(regs.regs[n])
#define REG_VBAR_EL1 ARM64_SYS_REG(3, 0, 12, 0, 0)

static void set_reg(int fd, uint64_t id, uint64_t value)
{
	struct kvm_one_reg reg = { .id = id, .addr = (uint64_t)(uintptr_t)&value };

	if (ioctl(fd, KVM_SET_ONE_REG, &reg) < 0)
		die_errno("KVM_SET_ONE_REG(0x%" PRIx64 ")", id);
}

static bool get_reg(int fd, uint64_t id, uint64_t *value)
{
	struct kvm_one_reg reg = { .id = id, .addr = (uint64_t)(uintptr_t)value };

	return ioctl(fd, KVM_GET_ONE_REG, &reg) == 0;
}

static void create_vm(struct vm *vm)
{
	struct kvm_userspace_memory_region region;
	void *ram;
	int run_size;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		die_errno("open /dev/kvm");
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		die_errno("KVM_CREATE_VM");
	run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		die_errno("KVM_GET_VCPU_MMAP_SIZE");
	vm->run_size = (size_t)run_size;
	if (ioctl(vm->vm_fd, KVM_ARM_PREFERRED_TARGET, &vm->init) < 0)
		die_errno("KVM_ARM_PREFERRED_TARGET");
	vm->init.features[0] |= 1U << KVM_ARM_VCPU_PSCI_0_2;

	ram = mmap(NULL, GUEST_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED)
		die_errno("mmap guest RAM");
	if ((size_t)(guest_blob_end - guest_blob_start) > GUEST_RAM_SIZE) {
		errno = E2BIG;
		die_errno("copying the guest code");
	}
	memcpy(ram, guest_blob_start, (size_t)(guest_blob_end - guest_blob_start));
	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.guest_phys_addr = GUEST_RAM_IPA,
		.memory_size = GUEST_RAM_SIZE,
		.userspace_addr = (uint64_t)(uintptr_t)ram,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die_errno("KVM_SET_USER_MEMORY_REGION");
}

static uint64_t mmio_ipa(unsigned id)
{
	return MMIO_BASE_IPA + (uint64_t)id * MMIO_VCPU_STRIDE;
}

static void create_vcpu(struct vm *vm, struct vcpu *v)
{
	const struct options *o = v->opts;

	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, v->id);
	if (v->fd < 0)
		die_errno("KVM_CREATE_VCPU(%u)", v->id);
	if (ioctl(v->fd, KVM_ARM_VCPU_INIT, &vm->init) < 0)
		die_errno("KVM_ARM_VCPU_INIT(%u)", v->id);
	v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED)
		die_errno("mmap kvm_run of vCPU %u", v->id);
	/* After KVM_ARM_VCPU_INIT: EL1h, interrupts masked, MMU off. */
	set_reg(v->fd, CORE_REG(regs.pc), GUEST_RAM_IPA + (uint64_t)(guest_entry - guest_blob_start));
	set_reg(v->fd, REG_VBAR_EL1, GUEST_RAM_IPA);
	set_reg(v->fd, XREG(19), mmio_ipa(v->id));
	set_reg(v->fd, XREG(20), o->mmio);
	set_reg(v->fd, XREG(21), o->hvc);
	set_reg(v->fd, XREG(22), o->sysreg);
	set_reg(v->fd, XREG(23), o->vcpus);
	set_reg(v->fd, XREG(24), v->id);
	set_reg(v->fd, XREG(25), 0);
	set_reg(v->fd, XREG(26), 0);
	set_reg(v->fd, XREG(27), ARM64_VMM_HVC_FN);
}

/* ---- Running a vCPU -------------------------------------------------------- */

static atomic_bool g_vm_off; /* vCPU 0 switched the VM off (or failed): stop */

static void vcpu_fail(struct vcpu *v, const char *fmt, ...)
{
	va_list ap;

	if (!v->ok)
		return; /* keep the first error */
	v->ok = false;
	va_start(ap, fmt);
	vsnprintf(v->error, sizeof(v->error), fmt, ap);
	va_end(ap);
}

/* One KVM_EXIT_MMIO: a store of the workload (checked), or the guest's exception report. */
static bool handle_mmio(struct vcpu *v)
{
	struct kvm_run *r = v->run;
	uint32_t value = 0;

	if (r->mmio.phys_addr == ARM64_VMM_ERROR_IPA) {
		uint64_t report = 0;

		memcpy(&report, r->mmio.data, sizeof(report));
		vcpu_fail(v, "guest exception: vector %u, ESR_EL1 0x%08" PRIx64,
			  (unsigned)(report >> 48), report & 0xffffffffffffULL);
		return false;
	}
	if (r->mmio.phys_addr != mmio_ipa(v->id) || !r->mmio.is_write || r->mmio.len != 4) {
		vcpu_fail(v, "unexpected MMIO %s of %u bytes at 0x%llx",
			  r->mmio.is_write ? "write" : "read", r->mmio.len, r->mmio.phys_addr);
		return false;
	}
	memcpy(&value, r->mmio.data, sizeof(value));
	/* The guest stores its countdown: N, N-1, ..., 1. */
	if (value != v->opts->mmio - v->mmio) {
		vcpu_fail(v, "MMIO store %" PRIu64 " wrote %u, expected %" PRIu64, v->mmio + 1, value,
			  v->opts->mmio - v->mmio);
		return false;
	}
	v->mmio++;
	return true;
}

/* Reads what the guest did from its registers (after it stopped). */
static void read_guest_counts(struct vcpu *v)
{
	const struct options *o = v->opts;
	uint64_t left[3], psci, errors;

	if (!get_reg(v->fd, XREG(20), &left[0]) || !get_reg(v->fd, XREG(21), &left[1]) ||
	    !get_reg(v->fd, XREG(22), &left[2]) || !get_reg(v->fd, XREG(25), &psci) ||
	    !get_reg(v->fd, XREG(26), &errors)) {
		vcpu_fail(v, "KVM_GET_ONE_REG: %s", strerror(errno));
		return;
	}
	v->hvc = o->hvc - left[1];
	v->sysreg = o->sysreg - left[2];
	v->psci = psci;
	v->hvc_errors = errors;
	if (left[0] != 0 || left[1] != 0 || left[2] != 0)
		vcpu_fail(v, "workload not done: %" PRIu64 " mmio, %" PRIu64 " hvc, %" PRIu64
			  " sysreg left", left[0], left[1], left[2]);
	else if (v->mmio != o->mmio)
		vcpu_fail(v, "%" PRIu64 " MMIO exits for %u stores", v->mmio, o->mmio);
	else if (errors != 0)
		vcpu_fail(v, "%" PRIu64 " HVCs were not answered NOT_SUPPORTED", errors);
	else if (v->id != 0 && psci != 1)
		vcpu_fail(v, "%" PRIu64 " PSCI calls, expected 1 (CPU_OFF)", psci);
}

static void run_vcpu(struct vcpu *v)
{
	for (;;) {
		int ret = ioctl(v->fd, KVM_RUN, 0);

		v->runs++;
		if (ret < 0 && errno == EINTR) {
			struct kvm_mp_state mp;

			v->runs_eintr++;
			if (!atomic_load(&g_vm_off))
				continue;
			/* vCPU 0 switched the VM off: this one must have called CPU_OFF. */
			if (ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0)
				vcpu_fail(v, "KVM_GET_MP_STATE: %s", strerror(errno));
			else if (mp.mp_state != KVM_MP_STATE_STOPPED)
				vcpu_fail(v, "interrupted while running (mp_state %u)", mp.mp_state);
			return;
		}
		if (ret < 0) {
			v->runs_other++;
			vcpu_fail(v, "KVM_RUN: %s", strerror(errno));
			return;
		}
		switch (v->run->exit_reason) {
		case KVM_EXIT_MMIO:
			v->runs_mmio++;
			if (!handle_mmio(v))
				return;
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			v->runs_system_event++;
			if (v->id != 0 || v->run->system_event.type != KVM_SYSTEM_EVENT_SHUTDOWN)
				vcpu_fail(v, "system event %u on vCPU %u (only vCPU 0 calls SYSTEM_OFF)",
					  v->run->system_event.type, v->id);
			return;
		default:
			v->runs_other++;
			vcpu_fail(v, "unexpected exit reason %u", v->run->exit_reason);
			return;
		}
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;

	if (v->opts->debug_threads) {
		char name[16];

		snprintf(name, sizeof(name), "CPU %u/KVM", v->id);
		prctl(PR_SET_NAME, name, 0, 0, 0);
	}
	v->ok = true;
	run_vcpu(v);
	read_guest_counts(v);
	if (v->id == 0 || !v->ok)
		atomic_store(&g_vm_off, true); /* the others stop at their next EINTR */
	atomic_store(&v->finished, true);
	return NULL;
}

static void on_sigusr1(int sig)
{
	(void)sig; /* only there to interrupt KVM_RUN */
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

/*
 * Waits for every vCPU thread. Once the VM is off (or a vCPU failed), the
 * threads still in KVM_RUN (stopped by CPU_OFF) get SIGUSR1 every 10 ms
 * until they return.
 */
static void wait_vcpus(struct vcpu *vcpus, unsigned n)
{
	for (;;) {
		bool all = true;

		for (unsigned i = 0; i < n; i++) {
			if (atomic_load(&vcpus[i].finished))
				continue;
			all = false;
			if (atomic_load(&g_vm_off))
				pthread_kill(vcpus[i].thread, SIGUSR1);
		}
		if (all)
			break;
		sleep_ms(10);
	}
	for (unsigned i = 0; i < n; i++)
		pthread_join(vcpus[i].thread, NULL);
}

/* Blocks SIGTERM and SIGINT so that hold() can wait for them. */
static void block_stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	if (sigprocmask(SIG_BLOCK, set, NULL) < 0)
		die_errno("sigprocmask");
}

/* Stays alive (VM open, no vCPU running) for `ms`, or until SIGTERM/SIGINT. */
static void hold(const sigset_t *stop_signals, long ms)
{
	double end = now_seconds() + (double)ms / 1000.0;

	for (;;) {
		double left = end - now_seconds();
		struct timespec ts;

		if (left <= 0)
			break;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		if (sigtimedwait(stop_signals, NULL, &ts) >= 0 || errno != EINTR)
			break;
	}
}

/* Prints one line per vCPU and the final DONE line; returns true if all went well. */
static bool report(const struct options *o, const struct vcpu *vcpus, double seconds)
{
	uint64_t mmio = 0, hvc = 0, sysreg = 0, psci = 0;
	uint64_t runs = 0, runs_mmio = 0, runs_system_event = 0, runs_eintr = 0, runs_other = 0;
	bool ok = true;

	for (unsigned i = 0; i < o->vcpus; i++) {
		const struct vcpu *v = &vcpus[i];

		printf("test_vmm: vcpu %u: mmio=%" PRIu64 " hvc=%" PRIu64 " sysreg=%" PRIu64
		       " psci=%" PRIu64 " runs=%" PRIu64 "%s%s\n",
		       i, v->mmio, v->hvc, v->sysreg, v->psci, v->runs, v->ok ? "" : " ERROR: ",
		       v->ok ? "" : v->error);
		mmio += v->mmio;
		hvc += v->hvc;
		sysreg += v->sysreg;
		psci += v->psci;
		runs += v->runs;
		runs_mmio += v->runs_mmio;
		runs_system_event += v->runs_system_event;
		runs_eintr += v->runs_eintr;
		runs_other += v->runs_other;
		ok = ok && v->ok;
	}
	if (runs_system_event != 1)
		ok = false; /* vCPU 0 ends the VM with SYSTEM_OFF, once */
	printf("TEST_VMM %s pid=%d vm=%s vcpus=%u mmio=%" PRIu64 " hvc=%" PRIu64 " sysreg=%" PRIu64
	       " psci=%" PRIu64 " runs=%" PRIu64 " runs_mmio=%" PRIu64 " runs_system_event=%" PRIu64
	       " runs_eintr=%" PRIu64 " runs_other=%" PRIu64 " seconds=%.3f\n",
	       ok ? "DONE" : "FAILED", (int)getpid(), o->vm_name[0] ? o->vm_name : "-", o->vcpus,
	       mmio, hvc, sysreg, psci, runs, runs_mmio, runs_system_event, runs_eintr, runs_other,
	       seconds);
	return ok;
}

int main(int argc, char **argv)
{
	struct options opts;
	struct vm vm;
	static struct vcpu vcpus[MAX_VCPUS];
	struct sigaction sa;
	sigset_t stop_signals;
	double start;
	bool ok;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_options(argc, argv, &opts);
	printf("test_vmm: arm64 pid=%d vm=%s uuid=%s vcpus=%u\n", (int)getpid(),
	       opts.vm_name[0] ? opts.vm_name : "-", opts.uuid ? opts.uuid : "-", opts.vcpus);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1; /* no SA_RESTART: KVM_RUN returns EINTR */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		die_errno("sigaction(SIGUSR1)");

	create_vm(&vm);
	for (unsigned i = 0; i < opts.vcpus; i++) {
		vcpus[i].opts = &opts;
		vcpus[i].vm = &vm;
		vcpus[i].id = i;
		create_vcpu(&vm, &vcpus[i]);
	}
	start = now_seconds();
	for (unsigned i = 0; i < opts.vcpus; i++) {
		int err = pthread_create(&vcpus[i].thread, NULL, vcpu_thread, &vcpus[i]);

		if (err != 0) {
			errno = err;
			die_errno("pthread_create(vcpu %u)", i);
		}
	}
	wait_vcpus(vcpus, opts.vcpus);
	/* Only this thread is left: block before reporting, so that a stop
	 * signal sent once the DONE line is seen always ends the hold. */
	block_stop_signals(&stop_signals);
	ok = report(&opts, vcpus, now_seconds() - start);
	if (opts.hold_ms > 0)
		hold(&stop_signals, opts.hold_ms);
	return ok ? 0 : 1;
}
