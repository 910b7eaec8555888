// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * test_vmm: a tiny KVM virtual machine monitor that makes an exact number of
 * VM exits of known kinds, for the nested end-to-end tests.
 *
 * The guest is a few real-mode instructions (assembled below by gas):
 *   - `cpuid` N times: CPUID exits, handled inside KVM, never seen here;
 *   - `out` N times:   IO exits, each handed to this process (KVM_EXIT_IO);
 *   - with --io-ports, per listed port: `out` N times, then `in` M times
 *                      (IO exits, each handed to this process), the ports
 *                      taken from a table at GUEST_PORT_TABLE_ADDR;
 *   - `hlt`:           one HLT exit (N with --hlt N, re-entered after all but
 *                      the last), seen here as KVM_EXIT_HLT because no
 *                      in-kernel irqchip is created.
 * Counters are 32-bit registers (operand-size prefix), so N goes to 2^32-1.
 * With --io-seconds the guest loops on `out` and this process stops
 * re-entering the guest after the given time.
 *
 * The command line takes QEMU's `-name guest=NAME,debug-threads=on` and
 * `-uuid UUID` so an exporter can name the VM the way it names QEMU's.
 *
 * Output: one line per vCPU and a final key=value line
 *   TEST_VMM DONE pid=<pid> vm=<name> vcpus=<k> io=<n> hlt=<n> cpuid=<n> seconds=<s>
 * (FAILED instead of DONE on an error) printed when the scenario is over,
 * before --hold-ms; SIGTERM or SIGINT ends the hold early. Exit status 0 when
 * every exit was an expected one and the guest did all it was asked, else 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

enum {
	MAX_VCPUS = 64,
	GUEST_MEM_SIZE = 0x10000, /* 64 KiB at guest physical 0 */
	GUEST_CODE_ADDR = 0x1000,
	GUEST_IO_PORT = 0x10,
	GUEST_PORT_TABLE_ADDR = 0x2000, /* --io-ports: struct guest_port entries */
	MAX_IO_PORTS = 128,
	CLOCK_CHECK_EVERY = 64, /* io exits between two deadline checks */
};

/* ---- Guest code ---------------------------------------------------------- */

/*
 * Entry registers: %esi = CPUID count, %edi = OUT count, %bx = the port
 * table's address, %bp = its entries (struct guest_port).
 */
extern const unsigned char guest_code_start[], guest_counted_entry[],
	guest_io_forever_entry[], guest_code_end[];
__asm__(".pushsection .rodata\n"
	".code16\n"
	"guest_code_start:\n"
	"guest_counted_entry:\n"
	"1:	testl %esi, %esi\n" /* CPUID phase: exits handled by KVM */
	"	jz 2f\n"
	"	xorl %eax, %eax\n"
	"	cpuid\n"
	"	decl %esi\n"
	"	jmp 1b\n"
	"2:	testl %edi, %edi\n" /* OUT phase: exits handled here */
	"	jz 9f\n"
	"	outb %al, $0x10\n"
	"	decl %edi\n"
	"	jmp 2b\n"
	"9:	testw %bp, %bp\n" /* port table phase: exits handled here */
	"	jz 3f\n"
	"	movw (%bx), %dx\n"
	"	movl 4(%bx), %ecx\n"
	"5:	testl %ecx, %ecx\n" /* OUT to the entry's port */
	"	jz 6f\n"
	"	outb %al, %dx\n"
	"	decl %ecx\n"
	"	jmp 5b\n"
	"6:	movl 8(%bx), %ecx\n"
	"7:	testl %ecx, %ecx\n" /* IN from it */
	"	jz 8f\n"
	"	inb %dx, %al\n"
	"	decl %ecx\n"
	"	jmp 7b\n"
	"8:	addw $12, %bx\n"
	"	decw %bp\n"
	"	jmp 9b\n"
	"3:	hlt\n"
	"	jmp 3b\n"
	"guest_io_forever_entry:\n"
	"4:	outb %al, $0x10\n"
	"	jmp 4b\n"
	"guest_code_end:\n"
	".code64\n"
	".popsection\n");

/* One --io-ports entry as the guest reads it (GUEST_PORT_TABLE_ADDR). */
struct guest_port {
	uint16_t port;
	uint16_t pad;
	uint32_t outs; /* OUT instructions */
	uint32_t ins;  /* IN instructions, after the OUTs */
};

/* ---- Options ------------------------------------------------------------- */

struct options {
	char vm_name[256];     /* from -name; empty when not given */
	char process_name[16]; /* from -name ...,process=NAME */
	bool debug_threads;    /* -name ...,debug-threads=on: name vCPU threads like QEMU */
	const char *uuid;
	unsigned vcpus;
	uint32_t io[MAX_VCPUS];    /* OUT exits per vCPU */
	uint32_t cpuid[MAX_VCPUS]; /* CPUID instructions per vCPU */
	double io_seconds;         /* > 0: loop on OUT for this long instead */
	long hold_ms;
	long start_delay_ms;
	long io_delay_us;          /* sleep this long in each IO exit before re-entering */
	uint32_t hlt;              /* HLT exits per vCPU: re-enter after all but the last */
	struct guest_port ports[MAX_IO_PORTS]; /* --io-ports, done by every vCPU */
	unsigned nports;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: test_vmm [-name guest=NAME[,debug-threads=on][,process=P] | -name NAME]\n"
		"                [-uuid UUID] [--vcpus K] [--io N[,N1,...]] [--cpuid N[,N1,...]]\n"
		"                [--io-seconds S] [--hold-ms M] [--start-delay-ms M]\n"
		"  --io N         each vCPU does N OUT instructions (N exits handled here);\n"
		"                 a comma list gives vCPU 0, 1, ... their own N\n"
		"  --cpuid N      each vCPU does N CPUID first (exits handled inside KVM)\n"
		"  --io-seconds S loop on OUT and stop re-entering the guest after S seconds\n"
		"  --vcpus K      K vCPUs (ids 0..K-1), one thread each, default 1\n"
		"  --hold-ms M    stay alive M ms after the scenario (VM still open, idle);\n"
		"                 SIGTERM/SIGINT end the hold early, exit status unchanged\n"
		"  --start-delay-ms M  wait M ms after creating the VM before running it\n"
		"  --io-delay-us D     sleep D us handling each IO exit (a slow device model:\n"
		"                 each io exit lasts at least D us from exit to entry)\n"
		"  --hlt N        N HLT exits per vCPU, default 1: the guest halts again\n"
		"                 after each; the VM ends at the last one, never re-entered\n"
		"  --io-ports PORT:N[:M][,PORT:N[:M]...]\n"
		"                 after --io, each vCPU does N `out` to PORT then M `in`\n"
		"                 from it, port by port (PORT decimal or 0x hex, < 65536;\n"
		"                 at most 128 entries; a port may be listed more than once)\n");
}

static _Noreturn void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("test_vmm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	exit(2);
}

static unsigned long long parse_number(const char *opt, const char *text, unsigned long long max)
{
	char *end;
	unsigned long long value;

	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || value > max)
		usage_error("%s: '%s' is not a whole number in 0..%llu", opt, text, max);
	return value;
}

/* "N" or "N0,N1,...": fills values[]; returns how many were given. */
static unsigned parse_count_list(const char *opt, const char *text, uint32_t *values)
{
	char buf[1024];
	unsigned n = 0;
	char *saveptr = NULL;

	if (strlen(text) >= sizeof(buf))
		usage_error("%s: list too long", opt);
	strcpy(buf, text);
	for (char *tok = strtok_r(buf, ",", &saveptr); tok; tok = strtok_r(NULL, ",", &saveptr)) {
		if (n == MAX_VCPUS)
			usage_error("%s: more than %d values", opt, MAX_VCPUS);
		values[n++] = (uint32_t)parse_number(opt, tok, UINT32_MAX);
	}
	if (n == 0)
		usage_error("%s: no value", opt);
	return n;
}

/* "PORT:N[:M],...": fills o->ports. */
static void parse_io_ports(const char *opt, const char *text, struct options *o)
{
	char buf[4096];
	char *saveptr = NULL;

	if (strlen(text) >= sizeof(buf))
		usage_error("%s: list too long", opt);
	strcpy(buf, text);
	o->nports = 0;
	for (char *tok = strtok_r(buf, ",", &saveptr); tok; tok = strtok_r(NULL, ",", &saveptr)) {
		char *first = strchr(tok, ':');
		char *second;
		char *end;
		unsigned long port;
		struct guest_port *p;

		if (o->nports == MAX_IO_PORTS)
			usage_error("%s: more than %d entries", opt, MAX_IO_PORTS);
		if (!first)
			usage_error("%s: '%s' is not PORT:N[:M]", opt, tok);
		*first++ = '\0';
		second = strchr(first, ':');
		if (second)
			*second++ = '\0';
		errno = 0;
		port = strtoul(tok, &end, 0);
		if (errno || end == tok || *end != '\0' || port > 0xffff)
			usage_error("%s: invalid port '%s'", opt, tok);
		p = &o->ports[o->nports++];
		p->port = (uint16_t)port;
		p->outs = (uint32_t)parse_number(opt, first, UINT32_MAX);
		p->ins = second ? (uint32_t)parse_number(opt, second, UINT32_MAX) : 0;
	}
	if (o->nports == 0)
		usage_error("%s: no entry", opt);
}

static void set_process_name(const char *name, struct options *o)
{
	size_t len = strlen(name);

	if (len >= sizeof(o->process_name))
		usage_error("-name: process=%s: longer than %zu characters", name,
			    sizeof(o->process_name) - 1);
	memcpy(o->process_name, name, len + 1);
}

/*
 * QEMU's `-name` value: "NAME" or "guest=NAME", plus ",process=P" and
 * ",debug-threads=on|off". A doubled comma ",," is a literal comma.
 */
static void parse_qemu_name(const char *text, struct options *o)
{
	char part[256];
	size_t len = 0;
	bool first = true;

	for (const char *p = text;; p++) {
		bool end_of_part = *p == '\0' || (*p == ',' && p[1] != ',');

		if (!end_of_part) {
			if (*p == ',')
				p++; /* ",," -> "," */
			if (len + 1 >= sizeof(part))
				usage_error("-name: value too long");
			part[len++] = *p;
			continue;
		}
		part[len] = '\0';
		if (strncmp(part, "guest=", 6) == 0)
			snprintf(o->vm_name, sizeof(o->vm_name), "%s", part + 6);
		else if (strncmp(part, "process=", 8) == 0)
			set_process_name(part + 8, o);
		else if (strcmp(part, "debug-threads=on") == 0)
			o->debug_threads = true;
		else if (strcmp(part, "debug-threads=off") == 0)
			o->debug_threads = false;
		else if (first && strchr(part, '=') == NULL)
			snprintf(o->vm_name, sizeof(o->vm_name), "%s", part);
		else
			usage_error("-name: unknown part '%s'", part);
		first = false;
		len = 0;
		if (*p == '\0')
			break;
	}
}

static void fill_per_vcpu(const char *opt, uint32_t *values, unsigned given, unsigned vcpus)
{
	if (given == 1) {
		for (unsigned i = 1; i < vcpus; i++)
			values[i] = values[0];
	} else if (given != vcpus) {
		usage_error("%s: %u values for %u vCPUs (give one, or one per vCPU)", opt, given,
			    vcpus);
	}
}

static void parse_options(int argc, char **argv, struct options *o)
{
	unsigned io_given = 1, cpuid_given = 1;

	memset(o, 0, sizeof(*o));
	o->vcpus = 1;
	o->hlt = 1;
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
			parse_qemu_name(val, o);
		else if (strcmp(opt, "-uuid") == 0 || strcmp(opt, "--uuid") == 0)
			o->uuid = val;
		else if (strcmp(opt, "--vcpus") == 0)
			o->vcpus = (unsigned)parse_number(opt, val, MAX_VCPUS);
		else if (strcmp(opt, "--io") == 0)
			io_given = parse_count_list(opt, val, o->io);
		else if (strcmp(opt, "--cpuid") == 0)
			cpuid_given = parse_count_list(opt, val, o->cpuid);
		else if (strcmp(opt, "--io-seconds") == 0)
			o->io_seconds = (double)parse_number(opt, val, 3600);
		else if (strcmp(opt, "--hold-ms") == 0)
			o->hold_ms = (long)parse_number(opt, val, 3600000);
		else if (strcmp(opt, "--start-delay-ms") == 0)
			o->start_delay_ms = (long)parse_number(opt, val, 3600000);
		else if (strcmp(opt, "--io-delay-us") == 0)
			o->io_delay_us = (long)parse_number(opt, val, 10000000);
		else if (strcmp(opt, "--io-ports") == 0)
			parse_io_ports(opt, val, o);
		else if (strcmp(opt, "--hlt") == 0)
			o->hlt = (uint32_t)parse_number(opt, val, 1000000);
		else
			usage_error("unknown option '%s'", opt);
	}
	if (o->vcpus == 0)
		usage_error("--vcpus: must be at least 1");
	if (o->hlt == 0)
		usage_error("--hlt: must be at least 1");
	fill_per_vcpu("--io", o->io, io_given, o->vcpus);
	fill_per_vcpu("--cpuid", o->cpuid, cpuid_given, o->vcpus);
}

/* ---- KVM setup ----------------------------------------------------------- */

static _Noreturn void die_errno(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	fputs("test_vmm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " failed: %s\n", strerror(err));
	exit(1);
}

struct vm {
	int kvm_fd;
	int vm_fd;
	size_t run_mmap_size;
	unsigned char *mem;
};

struct vcpu {
	const struct options *opts;
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	/* results */
	uint64_t io_exits;
	uint64_t hlt_exits;
	unsigned port_index; /* --io-ports entry being done, and its OUTs and INs so far */
	uint32_t port_outs, port_ins;
	bool ok;
	char error[256];
};

static void open_kvm(struct vm *vm)
{
	int version;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		die_errno("open(/dev/kvm)");
	version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (version < 0)
		die_errno("ioctl(KVM_GET_API_VERSION)");
	if (version != KVM_API_VERSION) {
		fprintf(stderr, "test_vmm: KVM API version %d, expected %d\n", version,
			KVM_API_VERSION);
		exit(1);
	}
	vm->run_mmap_size = (size_t)ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if ((long)vm->run_mmap_size < (long)sizeof(struct kvm_run))
		die_errno("ioctl(KVM_GET_VCPU_MMAP_SIZE)");
}

static void create_vm(struct vm *vm)
{
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		die_errno("ioctl(KVM_CREATE_VM)");
}

/* Guest memory: 64 KiB at physical 0 with the guest code at GUEST_CODE_ADDR. */
static void setup_guest_memory(struct vm *vm, const struct options *o)
{
	size_t code_size = (size_t)(guest_code_end - guest_code_start);
	struct kvm_userspace_memory_region region;

	vm->mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (vm->mem == MAP_FAILED)
		die_errno("mmap(guest memory)");
	if (GUEST_CODE_ADDR + code_size > GUEST_PORT_TABLE_ADDR) {
		fprintf(stderr, "test_vmm: guest code overlaps the port table\n");
		exit(1);
	}
	memcpy(vm->mem + GUEST_CODE_ADDR, guest_code_start, code_size);

	memcpy(vm->mem + GUEST_PORT_TABLE_ADDR, o->ports, sizeof(o->ports[0]) * o->nports);

	memset(&region, 0, sizeof(region));
	region.slot = 0;
	region.guest_phys_addr = 0;
	region.memory_size = GUEST_MEM_SIZE;
	region.userspace_addr = (uint64_t)(uintptr_t)vm->mem;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die_errno("ioctl(KVM_SET_USER_MEMORY_REGION)");
}

/* Real mode, CS base 0, entry and loop counters in registers. */
static void setup_vcpu_registers(struct vcpu *v)
{
	const struct options *o = v->opts;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	const unsigned char *entry =
		o->io_seconds > 0 ? guest_io_forever_entry : guest_counted_entry;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		die_errno("ioctl(KVM_GET_SREGS) vcpu %u", v->id);
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		die_errno("ioctl(KVM_SET_SREGS) vcpu %u", v->id);

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2; /* bit 1 is reserved and must be set */
	regs.rip = GUEST_CODE_ADDR + (uint64_t)(entry - guest_code_start);
	regs.rsi = o->cpuid[v->id];
	regs.rdi = o->io[v->id];
	regs.rbx = GUEST_PORT_TABLE_ADDR;
	regs.rbp = o->nports;
	regs.rax = v->id;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		die_errno("ioctl(KVM_SET_REGS) vcpu %u", v->id);
}

static void create_vcpu(struct vm *vm, struct vcpu *v)
{
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->id);
	if (v->fd < 0)
		die_errno("ioctl(KVM_CREATE_VCPU, %u)", v->id);
	v->run = mmap(NULL, vm->run_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED)
		die_errno("mmap(kvm_run) vcpu %u", v->id);
	setup_vcpu_registers(v);
}

/* ---- Running a vCPU ------------------------------------------------------ */

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *kvm_exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_UNKNOWN: return "KVM_EXIT_UNKNOWN";
	case KVM_EXIT_EXCEPTION: return "KVM_EXIT_EXCEPTION";
	case KVM_EXIT_IO: return "KVM_EXIT_IO";
	case KVM_EXIT_HLT: return "KVM_EXIT_HLT";
	case KVM_EXIT_MMIO: return "KVM_EXIT_MMIO";
	case KVM_EXIT_SHUTDOWN: return "KVM_EXIT_SHUTDOWN";
	case KVM_EXIT_FAIL_ENTRY: return "KVM_EXIT_FAIL_ENTRY";
	case KVM_EXIT_INTR: return "KVM_EXIT_INTR";
	case KVM_EXIT_INTERNAL_ERROR: return "KVM_EXIT_INTERNAL_ERROR";
	default: return "another KVM_EXIT_*";
	}
}

static bool vcpu_fail(struct vcpu *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->error, sizeof(v->error), fmt, ap);
	va_end(ap);
	v->ok = false;
	return false;
}

/*
 * An IO exit must be our guest's `out %al, $0x10`, or the next `out`/`in` of
 * the --io-ports table (which this counts off as it goes).
 */
static bool check_io_exit(struct vcpu *v)
{
	const struct kvm_run *r = v->run;
	bool out = r->io.direction == KVM_EXIT_IO_OUT;

	if (v->io_exits >= v->opts->io[v->id] && r->io.size == 1 && r->io.count == 1) {
		/* Past the --io phase: the next table entry with work left. */
		while (v->port_index < v->opts->nports) {
			const struct guest_port *p = &v->opts->ports[v->port_index];

			if (v->port_outs < p->outs || v->port_ins < p->ins)
				break;
			v->port_index++;
			v->port_outs = v->port_ins = 0;
		}
		if (v->port_index < v->opts->nports) {
			const struct guest_port *p = &v->opts->ports[v->port_index];
			bool expect_out = v->port_outs < p->outs;

			if (r->io.port == p->port && out == expect_out) {
				if (out)
					v->port_outs++;
				else
					v->port_ins++; /* the guest reads what kvm_run holds: zeros */
				return true;
			}
		}
	}
	if (!out || r->io.port != GUEST_IO_PORT ||
	    r->io.size != 1 || r->io.count != 1)
		return vcpu_fail(v, "unexpected IO exit: %s port 0x%x size %u count %u",
				 r->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", r->io.port,
				 r->io.size, r->io.count);
	return true;
}

/* IO exits of the --io-ports table, per vCPU. */
static uint64_t port_io_per_vcpu(const struct options *o)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < o->nports; i++)
		n += (uint64_t)o->ports[i].outs + o->ports[i].ins;
	return n;
}

/* At HLT the guest must have used up both of its counters. */
static bool check_guest_finished(struct vcpu *v)
{
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return vcpu_fail(v, "ioctl(KVM_GET_REGS) failed: %s", strerror(errno));
	if ((uint32_t)regs.rsi != 0 || (uint32_t)regs.rdi != 0)
		return vcpu_fail(v, "HLT with counters left: cpuid %" PRIu32 ", io %" PRIu32,
				 (uint32_t)regs.rsi, (uint32_t)regs.rdi);
	if (v->io_exits != v->opts->io[v->id] + port_io_per_vcpu(v->opts))
		return vcpu_fail(v, "handled %" PRIu64 " IO exits, expected %" PRIu64, v->io_exits,
				 v->opts->io[v->id] + port_io_per_vcpu(v->opts));
	return true;
}

/* Sleeps at least `us` microseconds (nanosleep resumes after a signal). */
static void sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Runs the vCPU until HLT (counted scenario) or the deadline (--io-seconds). */
static bool run_vcpu(struct vcpu *v, double deadline)
{
	bool timed = v->opts->io_seconds > 0;

	for (;;) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return vcpu_fail(v, "ioctl(KVM_RUN) failed: %s", strerror(errno));
		}
		switch (v->run->exit_reason) {
		case KVM_EXIT_IO:
			if (!check_io_exit(v))
				return false;
			v->io_exits++;
			if (v->opts->io_delay_us > 0)
				sleep_us(v->opts->io_delay_us);
			if (timed && v->io_exits % CLOCK_CHECK_EVERY == 0 &&
			    now_seconds() >= deadline)
				return true;
			break;
		case KVM_EXIT_HLT:
			v->hlt_exits++;
			if (timed)
				return vcpu_fail(v, "HLT in the --io-seconds loop");
			if (v->hlt_exits < v->opts->hlt)
				break; /* re-enter: the guest's next instruction jumps back to hlt */
			return check_guest_finished(v);
		case KVM_EXIT_FAIL_ENTRY:
			return vcpu_fail(v, "KVM_EXIT_FAIL_ENTRY, hardware reason 0x%llx",
					 (unsigned long long)v->run->fail_entry
						 .hardware_entry_failure_reason);
		case KVM_EXIT_INTERNAL_ERROR:
			return vcpu_fail(v, "KVM_EXIT_INTERNAL_ERROR, suberror %u",
					 v->run->internal.suberror);
		default:
			return vcpu_fail(v, "unexpected exit %s (%u)",
					 kvm_exit_name(v->run->exit_reason), v->run->exit_reason);
		}
	}
}

static double g_deadline;

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;

	if (v->opts->debug_threads) {
		char name[16];

		snprintf(name, sizeof(name), "CPU %u/KVM", v->id);
		prctl(PR_SET_NAME, name, 0, 0, 0);
	}
	v->ok = true;
	run_vcpu(v, g_deadline);
	return NULL;
}

static struct timespec ms_to_timespec(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	return ts;
}

static void sleep_ms(long ms)
{
	struct timespec ts = ms_to_timespec(ms);

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
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
	struct timespec ts = ms_to_timespec(ms);
	double end = now_seconds() + (double)ms / 1000.0;

	while (sigtimedwait(stop_signals, NULL, &ts) < 0 && errno == EINTR) {
		double left = end - now_seconds();

		if (left <= 0)
			break;
		ts = ms_to_timespec((long)(left * 1000.0));
	}
}

/* ---- Main ---------------------------------------------------------------- */

static void start_vcpus(struct vcpu *vcpus, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		int err = pthread_create(&vcpus[i].thread, NULL, vcpu_thread, &vcpus[i]);

		if (err != 0) {
			errno = err;
			die_errno("pthread_create(vcpu %u)", i);
		}
	}
}

/* Prints one line per vCPU and the final DONE line; returns true if all went well. */
static bool report(const struct options *o, const struct vcpu *vcpus, double seconds)
{
	uint64_t io = 0, hlt = 0, cpuid = 0;
	bool ok = true;

	for (unsigned i = 0; i < o->vcpus; i++) {
		const struct vcpu *v = &vcpus[i];

		printf("test_vmm: vcpu %u: io=%" PRIu64 " hlt=%" PRIu64 " cpuid=%" PRIu32
		       " (CPUID exits are handled inside KVM)%s%s\n",
		       i, v->io_exits, v->hlt_exits, o->io_seconds > 0 ? 0 : o->cpuid[i],
		       v->ok ? "" : " ERROR: ", v->ok ? "" : v->error);
		io += v->io_exits;
		hlt += v->hlt_exits;
		cpuid += o->io_seconds > 0 ? 0 : o->cpuid[i];
		ok = ok && v->ok;
	}
	printf("TEST_VMM %s pid=%d vm=%s vcpus=%u io=%" PRIu64 " hlt=%" PRIu64 " cpuid=%" PRIu64
	       " seconds=%.3f\n",
	       ok ? "DONE" : "FAILED", (int)getpid(), o->vm_name[0] ? o->vm_name : "-", o->vcpus,
	       io, hlt, cpuid, seconds);
	return ok;
}

int main(int argc, char **argv)
{
	struct options opts;
	struct vm vm;
	static struct vcpu vcpus[MAX_VCPUS];
	double start;
	sigset_t stop_signals;
	bool ok;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_options(argc, argv, &opts);
	if (opts.process_name[0])
		prctl(PR_SET_NAME, opts.process_name, 0, 0, 0);
	printf("test_vmm: pid=%d vm=%s uuid=%s vcpus=%u\n", (int)getpid(),
	       opts.vm_name[0] ? opts.vm_name : "-", opts.uuid ? opts.uuid : "-", opts.vcpus);

	open_kvm(&vm);
	create_vm(&vm);
	setup_guest_memory(&vm, &opts);
	for (unsigned i = 0; i < opts.vcpus; i++) {
		vcpus[i].opts = &opts;
		vcpus[i].vm = &vm;
		vcpus[i].id = i;
		create_vcpu(&vm, &vcpus[i]);
	}
	if (opts.start_delay_ms > 0)
		sleep_ms(opts.start_delay_ms);

	start = now_seconds();
	g_deadline = start + opts.io_seconds;
	start_vcpus(vcpus, opts.vcpus);
	for (unsigned i = 0; i < opts.vcpus; i++)
		pthread_join(vcpus[i].thread, NULL);
	/* Only this thread is left: block before reporting, so that a stop
	 * signal sent once the DONE line is seen always ends the hold. */
	block_stop_signals(&stop_signals);
	ok = report(&opts, vcpus, now_seconds() - start);

	if (opts.hold_ms > 0)
		hold(&stop_signals, opts.hold_ms);
	return ok ? 0 : 1;
}
