// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * test_vmm: a tiny KVM virtual machine monitor that makes an exact number of
 * VM exits of known kinds, for the nested end-to-end tests.
 *
 * The guest is a few real-mode instructions (assembled below by gas); each
 * vCPU runs these phases in order:
 *   - `cpuid` N times: CPUID exits, handled inside KVM, never seen here;
 *   - `out` N times:   IO exits, each handed to this process (KVM_EXIT_IO);
 *   - with --io-ports, per listed port: `out` N times, then `in` M times
 *                      (IO exits, each handed to this process), the ports
 *                      taken from a table at GUEST_PORT_TABLE_ADDR;
 *   - with --msrs, per listed MSR: `rdmsr` R times, then `wrmsr` W times
 *                      writing back edx:eax as the last rdmsr left them (MSR
 *                      exits, handled inside KVM). An MSR KVM refuses gets a
 *                      #GP injected: the guest's #GP handler (IVT vector 13)
 *                      skips the 2-byte instruction and counts the fault;
 *   - with --mmio, per listed guest-physical address (outside guest RAM,
 *                      anywhere below 4 GiB, e.g. the HPET page 0xfed00000
 *                      or the xAPIC page 0xfee00000): R byte reads, then W
 *                      byte writes, each a KVM_EXIT_MMIO handed to this
 *                      process (reads return 0). The guest stays in real
 *                      mode but ES gets a 4 GiB limit ("unreal mode", set
 *                      with KVM_SET_SREGS), so an address-size-prefixed
 *                      %es:(%esi) reaches any 32-bit address; nothing in
 *                      the guest reloads ES;
 *   - with --hypercalls, per listed NR: N hypercalls with eax=NR and
 *                      ebx=ecx=edx=esi=0, handled inside KVM (VMMCALL on AMD,
 *                      VMCALL on Intel: the opcode is patched from this
 *                      host's CPUID vendor, so KVM never emulates a wrong one);
 *   - `hlt`:           one HLT exit (N with --hlt N, re-entered after all but
 *                      the last), seen here as KVM_EXIT_HLT because no
 *                      in-kernel irqchip is created.
 * Counters are 32-bit registers (operand-size prefix), so N goes to 2^32-1.
 * The guest counts its own rdmsr, wrmsr, #GP faults and hypercalls in a
 * per-vCPU block (FS points at it) that this process reads at the end; any
 * other exception ends the guest with an `out` of its vector to
 * GUEST_EXC_PORT, a failure here. Every vCPU has its own stack.
 * With --io-seconds the guest loops on `out` and this process stops
 * re-entering the guest after the given time, or at SIGUSR2 if that comes
 * first (for a loop that must span events of unknown length). With
 * --signal-us a thread sends every running vCPU thread SIGUSR1 that often,
 * so that KVM_RUN returns EINTR (counted, then re-entered) for exits to the
 * VMM that are not the guest's doing.
 *
 * The command line takes QEMU's `-name guest=NAME,debug-threads=on` and
 * `-uuid UUID` so an exporter can name the VM the way it names QEMU's.
 *
 * Output: one line per vCPU and a final key=value line
 *   TEST_VMM DONE pid=<pid> vm=<name> vcpus=<k> io=<n> hlt=<n> cpuid=<n> seconds=<s>
 *     msr_reads=<n> msr_writes=<n> msr_faults=<n> mmio_reads=<n> mmio_writes=<n>
 *     hypercalls=<n> runs=<n> runs_io=<n> runs_mmio=<n> runs_hlt=<n> runs_eintr=<n>
 *     runs_eagain=<n> runs_other=<n>
 * (on one line; FAILED instead of DONE on an error) printed when the scenario
 * is over, before --hold-ms; SIGTERM or SIGINT ends the hold early. runs is
 * every return of ioctl(KVM_RUN), split by exit reason (io, mmio, hlt) and
 * errno (EINTR, EAGAIN); runs_other is any other reason or errno (a failure).
 * msr_* and hypercalls are the guest's own counts of the instructions it
 * executed (msr_faults: #GPs its handler took). Exit status 0 when every exit
 * was an expected one and the guest did all it was asked, else 1.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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

/*
 * Guest memory layout (64 KiB at guest physical 0, real mode, all segment
 * bases 0 but FS; with --mmio, ES has a 4 GiB limit):
 *   0x0000-0x03ff  IVT: vector 13 (#GP) -> guest_gp_handler, the others ->
 *                  guest_exc_stubs (out of the vector to GUEST_EXC_PORT)
 *   0x0400-0x07ff  per-vCPU counters, GUEST_VCPU_DATA_SIZE each (FS base)
 *   0x0800-0x0805  ends of the MSR, MMIO and hypercall tables (u16 each)
 *   0x1000-0x1fff  guest code
 *   0x2000-0x25ff  --io-ports table (struct guest_port)
 *   0x3000-0x35ff  --msrs table (struct guest_msr)
 *   0x3800-0x3dff  --mmio table (struct guest_mmio)
 *   0x4000-0x43ff  --hypercalls table (struct guest_hypercall)
 *   0x8000-0xffff  stacks, GUEST_STACK_SIZE per vCPU from the top down
 *                  (vCPU 0: SP=0, which wraps to the top)
 * The addresses are macros: the guest code below uses them as immediates.
 */
#define GUEST_VCPU_DATA_ADDR 0x0400
#define GUEST_VCPU_DATA_SIZE 16
#define GUEST_DATA_FAULTS 0     /* offsets in a vCPU's block: #GPs taken */
#define GUEST_DATA_MSR_READS 4  /* rdmsr executed (faulted or not) */
#define GUEST_DATA_MSR_WRITES 8 /* wrmsr executed */
#define GUEST_DATA_HYPERCALLS 12
#define GUEST_MSR_END_ADDR 0x0800
#define GUEST_MMIO_END_ADDR 0x0802
#define GUEST_HYPERCALL_END_ADDR 0x0804
#define GUEST_PORT_TABLE_ADDR 0x2000 /* --io-ports: struct guest_port entries */
#define GUEST_MSR_TABLE_ADDR 0x3000
#define GUEST_MMIO_TABLE_ADDR 0x3800
#define GUEST_HYPERCALL_TABLE_ADDR 0x4000
#define GUEST_STACKS_ADDR 0x8000
#define GUEST_STACK_SIZE 0x200
#define GUEST_EXC_PORT 0xf1 /* an unexpected exception: `out` of its vector here */
#define GUEST_EXC_STUB_SIZE 5 /* mov $vector, %al; jmp rel16 */
#define STR_(x) #x
#define STR(x) STR_(x)

enum {
	MAX_VCPUS = 64,
	GUEST_MEM_SIZE = 0x10000, /* 64 KiB at guest physical 0 */
	GUEST_CODE_ADDR = 0x1000,
	GUEST_IO_PORT = 0x10,
	MAX_IO_PORTS = 128,
	MAX_MSRS = 128,
	MAX_MMIO = 128,
	MAX_HYPERCALLS = 128,
	MMIO_MIN_GPA = GUEST_MEM_SIZE, /* --mmio: outside guest RAM, below 4 GiB */
	CLOCK_CHECK_EVERY = 64, /* io exits between two deadline checks */
};

_Static_assert(MAX_VCPUS * GUEST_VCPU_DATA_SIZE <= GUEST_MSR_END_ADDR - GUEST_VCPU_DATA_ADDR,
	       "per-vCPU blocks overlap the table ends");
_Static_assert(MAX_VCPUS * GUEST_STACK_SIZE <= GUEST_MEM_SIZE - GUEST_STACKS_ADDR,
	       "stacks do not fit");

/* ---- Guest code ---------------------------------------------------------- */

/*
 * Entry registers: %esi = CPUID count, %edi = OUT count, %bp = the entries
 * of the port table (struct guest_port at GUEST_PORT_TABLE_ADDR), %sp = the
 * vCPU's stack, %fs = its counter block. The MSR, MMIO and hypercall tables
 * are at fixed addresses too, each ending where its GUEST_*_END_ADDR word
 * says. (The table address is not an entry register: `cpuid` overwrites
 * ebx, ecx and edx.)
 */
extern const unsigned char guest_code_start[], guest_counted_entry[],
	guest_io_forever_entry[], guest_hypercall_insn[], guest_gp_handler[],
	guest_exc_stubs[], guest_exc_stubs_end[], guest_code_end[];
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
	"	jz 10f\n"
	"	outb %al, $0x10\n"
	"	decl %edi\n"
	"	jmp 2b\n"
	"10:	movw $" STR(GUEST_PORT_TABLE_ADDR) ", %bx\n"
	"9:	testw %bp, %bp\n" /* port table phase: exits handled here */
	"	jz .Lmsrs\n"
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
	/* MSR phase (exits handled by KVM): per entry rdmsr R times, then
	 * wrmsr W times with edx:eax as the last rdmsr left them. */
	".Lmsrs:\n"
	"	movw $" STR(GUEST_MSR_TABLE_ADDR) ", %bx\n"
	".Lmsr_entry:\n"
	"	cmpw " STR(GUEST_MSR_END_ADDR) ", %bx\n"
	"	jae .Lmmios\n"
	"	movl (%bx), %ecx\n"
	"	xorl %eax, %eax\n"
	"	xorl %edx, %edx\n"
	"	movl 4(%bx), %edi\n"
	".Lmsr_read:\n"
	"	testl %edi, %edi\n"
	"	jz .Lmsr_writes\n"
	"	rdmsr\n"
	"	incl %fs:" STR(GUEST_DATA_MSR_READS) "\n"
	"	decl %edi\n"
	"	jmp .Lmsr_read\n"
	".Lmsr_writes:\n"
	"	movl 8(%bx), %edi\n"
	".Lmsr_write:\n"
	"	testl %edi, %edi\n"
	"	jz .Lmsr_next\n"
	"	wrmsr\n"
	"	incl %fs:" STR(GUEST_DATA_MSR_WRITES) "\n"
	"	decl %edi\n"
	"	jmp .Lmsr_write\n"
	".Lmsr_next:\n"
	"	addw $12, %bx\n"
	"	jmp .Lmsr_entry\n"
	/* MMIO phase (exits handled here): per entry R byte reads, then W byte
	 * writes at ES:ESI = the entry's address (ES: base 0, limit 4 GiB). */
	".Lmmios:\n"
	"	movw $" STR(GUEST_MMIO_TABLE_ADDR) ", %bx\n"
	".Lmmio_entry:\n"
	"	cmpw " STR(GUEST_MMIO_END_ADDR) ", %bx\n"
	"	jae .Lhypercalls\n"
	"	movl (%bx), %esi\n"
	"	movl 4(%bx), %edi\n"
	".Lmmio_read:\n"
	"	testl %edi, %edi\n"
	"	jz .Lmmio_writes\n"
	"	addr32 movb %es:(%esi), %al\n"
	"	decl %edi\n"
	"	jmp .Lmmio_read\n"
	".Lmmio_writes:\n"
	"	movl 8(%bx), %edi\n"
	".Lmmio_write:\n"
	"	testl %edi, %edi\n"
	"	jz .Lmmio_next\n"
	"	addr32 movb %al, %es:(%esi)\n"
	"	decl %edi\n"
	"	jmp .Lmmio_write\n"
	".Lmmio_next:\n"
	"	addw $12, %bx\n"
	"	jmp .Lmmio_entry\n"
	/* Hypercall phase (exits handled by KVM, which writes its result to
	 * eax): per entry N hypercalls with eax=NR, ebx=ecx=edx=esi=0. */
	".Lhypercalls:\n"
	"	xorl %esi, %esi\n"
	"	movw $" STR(GUEST_HYPERCALL_TABLE_ADDR) ", %bp\n"
	".Lhc_entry:\n"
	"	cmpw " STR(GUEST_HYPERCALL_END_ADDR) ", %bp\n"
	"	jae 3f\n"
	"	movl 4(%bp), %edi\n"
	".Lhc_call:\n"
	"	testl %edi, %edi\n"
	"	jz .Lhc_next\n"
	"	movl (%bp), %eax\n"
	"	xorl %ebx, %ebx\n"
	"	xorl %ecx, %ecx\n"
	"	xorl %edx, %edx\n"
	"	xorl %esi, %esi\n"
	"guest_hypercall_insn:\n"
	"	.byte 0x0f, 0x01, 0xd9\n" /* vmmcall; 0f 01 c1 (vmcall) on Intel */
	"	incl %fs:" STR(GUEST_DATA_HYPERCALLS) "\n"
	"	decl %edi\n"
	"	jmp .Lhc_call\n"
	".Lhc_next:\n"
	"	addw $8, %bp\n"
	"	jmp .Lhc_entry\n"
	"3:	hlt\n"
	"	jmp 3b\n"
	"guest_io_forever_entry:\n"
	"4:	outb %al, $0x10\n"
	"	jmp 4b\n"
	/* #GP (IVT vector 13, real mode: FLAGS, CS, IP on the stack, no error
	 * code): if the faulting instruction is rdmsr (0f 32) or wrmsr (0f 30),
	 * return past it and count the fault; anything else is unexpected. */
	"guest_gp_handler:\n"
	"	pushw %bp\n"
	"	movw %sp, %bp\n"
	"	pushw %ds\n"
	"	pushw %bx\n"
	"	ldsw 2(%bp), %bx\n" /* ds:bx = the faulting cs:ip */
	"	cmpb $0x0f, (%bx)\n"
	"	jne .Lgp_unexpected\n"
	"	cmpb $0x32, 1(%bx)\n"
	"	je .Lgp_msr\n"
	"	cmpb $0x30, 1(%bx)\n"
	"	jne .Lgp_unexpected\n"
	".Lgp_msr:\n"
	"	addw $2, 2(%bp)\n"
	"	incl %fs:" STR(GUEST_DATA_FAULTS) "\n"
	"	popw %bx\n"
	"	popw %ds\n"
	"	popw %bp\n"
	"	iretw\n"
	".Lgp_unexpected:\n"
	"	movb $13, %al\n"
	"guest_exc_common:\n"
	"	outb %al, $" STR(GUEST_EXC_PORT) "\n"
	".Lexc_halt:\n"
	"	hlt\n"
	"	jmp .Lexc_halt\n"
	/* Vectors 0-31 but 13: report the vector (GUEST_EXC_STUB_SIZE bytes each). */
	"guest_exc_stubs:\n"
	".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"	.byte 0xb0, \\v, 0xe9\n"
	"	.word guest_exc_common - (. + 2)\n"
	".endr\n"
	"guest_exc_stubs_end:\n"
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

/* One --msrs entry as the guest reads it (GUEST_MSR_TABLE_ADDR). */
struct guest_msr {
	uint32_t index;
	uint32_t reads;  /* rdmsr */
	uint32_t writes; /* wrmsr, after the reads */
};

/* One --mmio entry as the guest reads it (GUEST_MMIO_TABLE_ADDR). */
struct guest_mmio {
	uint32_t gpa; /* ESI, with ES's base 0 */
	uint32_t reads;
	uint32_t writes; /* after the reads */
};

/* One --hypercalls entry as the guest reads it (GUEST_HYPERCALL_TABLE_ADDR). */
struct guest_hypercall {
	uint32_t nr;
	uint32_t count;
};

_Static_assert(sizeof(struct guest_port) == 12 && sizeof(struct guest_msr) == 12 &&
		       sizeof(struct guest_mmio) == 12 && sizeof(struct guest_hypercall) == 8,
	       "the guest code's strides");
_Static_assert(GUEST_PORT_TABLE_ADDR + MAX_IO_PORTS * 12 <= GUEST_MSR_TABLE_ADDR &&
		       GUEST_MSR_TABLE_ADDR + MAX_MSRS * 12 <= GUEST_MMIO_TABLE_ADDR &&
		       GUEST_MMIO_TABLE_ADDR + MAX_MMIO * 12 <= GUEST_HYPERCALL_TABLE_ADDR &&
		       GUEST_HYPERCALL_TABLE_ADDR + MAX_HYPERCALLS * 8 <= GUEST_STACKS_ADDR,
	       "guest tables overlap");

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
	long signal_us;            /* > 0: SIGUSR1 to every running vCPU thread this often */
	struct guest_port ports[MAX_IO_PORTS]; /* --io-ports, done by every vCPU */
	unsigned nports;
	struct guest_msr msrs[MAX_MSRS]; /* --msrs, done by every vCPU */
	unsigned nmsrs;
	struct mmio_entry {
		uint32_t gpa;
		uint32_t reads, writes;
	} mmio[MAX_MMIO]; /* --mmio, done by every vCPU */
	unsigned nmmio;
	struct guest_hypercall hypercalls[MAX_HYPERCALLS]; /* --hypercalls, by every vCPU */
	unsigned nhypercalls;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: test_vmm [-name guest=NAME[,debug-threads=on][,process=P] | -name NAME]\n"
		"                [-uuid UUID] [--vcpus K] [--io N[,N1,...]] [--cpuid N[,N1,...]]\n"
		"                [--io-seconds S] [--hold-ms M] [--start-delay-ms M]\n"
		"                [--io-delay-us D] [--hlt N] [--io-ports PORT:N[:M],...]\n"
		"                [--msrs MSR:R[:W],...] [--mmio GPA:R[:W],...]\n"
		"                [--hypercalls NR:N,...] [--signal-us US]\n"
		"  --io N         each vCPU does N OUT instructions (N exits handled here);\n"
		"                 a comma list gives vCPU 0, 1, ... their own N\n"
		"  --cpuid N      each vCPU does N CPUID first (exits handled inside KVM)\n"
		"  --io-seconds S loop on OUT and stop re-entering the guest after S seconds\n"
		"                 (or at SIGUSR2, if that comes first)\n"
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
		"                 at most 128 entries; a port may be listed more than once)\n"
		"  --signal-us US  while the vCPUs run, send each vCPU thread SIGUSR1 (an\n"
		"                 empty handler) every US microseconds: a KVM_RUN it\n"
		"                 interrupts returns EINTR (runs_eintr=), and is re-entered\n"
		"  --msrs MSR:R[:W][,MSR:R[:W]...]\n"
		"                 after the ports, each vCPU does R `rdmsr` of MSR then W\n"
		"                 `wrmsr` writing back edx:eax as the last rdmsr left them\n"
		"                 (W > 0 needs R >= 1), MSR by MSR (index decimal or 0x hex,\n"
		"                 < 2^32; at most 128 entries). Exits handled inside KVM; an\n"
		"                 MSR KVM refuses gets #GP, which the guest skips and counts\n"
		"                 (msr_faults=). No CPUID is set: CPUID-gated MSRs fault\n"
		"  --mmio GPA:R[:W][,GPA:R[:W]...]\n"
		"                 then R byte reads and W byte writes of guest-physical GPA,\n"
		"                 0x10000 <= GPA < 2^32 (outside the 64 KiB of RAM; e.g. HPET\n"
		"                 0xfed00000, xAPIC 0xfee00000); each a KVM_EXIT_MMIO handled\n"
		"                 here, reads return 0 (at most 128 entries)\n"
		"  --hypercalls NR:N[,NR:N...]\n"
		"                 then N hypercalls with eax=NR, ebx=ecx=edx=esi=0 (VMMCALL on\n"
		"                 AMD, VMCALL on Intel, from this CPU's vendor), handled inside\n"
		"                 KVM (-KVM_ENOSYS for an unknown NR; at most 128 entries)\n"
		"  --msrs, --mmio and --hypercalls cannot be used with --io-seconds.\n"
		"  The DONE line adds msr_reads= msr_writes= msr_faults= mmio_reads=\n"
		"  mmio_writes= hypercalls= runs= runs_io= runs_mmio= runs_hlt= runs_eintr=\n"
		"  runs_eagain= runs_other= (runs: every KVM_RUN return, by exit reason/errno)\n");
}

#include "vmm_cli.h"

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

/* One "KEY:N[:M]" item of a --io-ports, --msrs, --mmio or --hypercalls list. */
struct list_item {
	unsigned long long key; /* decimal or 0x hex */
	uint32_t n, m;          /* m is 0 when not given */
	bool has_m;
};

/*
 * "KEY:N[:M],...": fills items[] (at most max); KEY <= key_max, named
 * key_name in errors; M only when allow_m. Returns how many were given (>= 1).
 */
static unsigned parse_item_list(const char *opt, const char *text, const char *key_name,
				unsigned long long key_max, bool allow_m, struct list_item *items,
				unsigned max)
{
	char buf[4096];
	char *saveptr = NULL;
	unsigned n = 0;

	if (strlen(text) >= sizeof(buf))
		usage_error("%s: list too long", opt);
	strcpy(buf, text);
	for (char *tok = strtok_r(buf, ",", &saveptr); tok; tok = strtok_r(NULL, ",", &saveptr)) {
		char *first = strchr(tok, ':');
		char *second;
		char *end;
		unsigned long long key;
		struct list_item *item;

		if (n == max)
			usage_error("%s: more than %u entries", opt, max);
		if (!first)
			usage_error("%s: '%s' is not %s:N%s", opt, tok, key_name,
				    allow_m ? "[:M]" : "");
		*first++ = '\0';
		second = strchr(first, ':');
		if (second) {
			if (!allow_m)
				usage_error("%s: '%s:%s' is not %s:N", opt, tok, first, key_name);
			*second++ = '\0';
		}
		errno = 0;
		key = strtoull(tok, &end, 0);
		if (errno || end == tok || *end != '\0' || tok[0] == '-' || key > key_max)
			usage_error("%s: invalid %s '%s' (at most 0x%llx)", opt, key_name, tok,
				    key_max);
		item = &items[n++];
		item->key = key;
		item->n = (uint32_t)parse_number(opt, first, UINT32_MAX);
		item->has_m = second != NULL;
		item->m = second ? (uint32_t)parse_number(opt, second, UINT32_MAX) : 0;
	}
	if (n == 0)
		usage_error("%s: no entry", opt);
	return n;
}

/* "PORT:N[:M],...": fills o->ports. */
static void parse_io_ports(const char *opt, const char *text, struct options *o)
{
	struct list_item items[MAX_IO_PORTS];

	o->nports = parse_item_list(opt, text, "port", 0xffff, true, items, MAX_IO_PORTS);
	for (unsigned i = 0; i < o->nports; i++)
		o->ports[i] = (struct guest_port){ .port = (uint16_t)items[i].key,
						   .outs = items[i].n,
						   .ins = items[i].m };
}

/* "MSR:R[:W],...": fills o->msrs. */
static void parse_msrs(const char *opt, const char *text, struct options *o)
{
	struct list_item items[MAX_MSRS];

	o->nmsrs = parse_item_list(opt, text, "MSR", UINT32_MAX, true, items, MAX_MSRS);
	for (unsigned i = 0; i < o->nmsrs; i++) {
		if (items[i].m > 0 && items[i].n == 0)
			usage_error("%s: MSR 0x%llx: %u writes need at least one read (a write "
				    "puts back what the last read returned)",
				    opt, items[i].key, items[i].m);
		o->msrs[i] = (struct guest_msr){ .index = (uint32_t)items[i].key,
						 .reads = items[i].n,
						 .writes = items[i].m };
	}
}

/* "GPA:R[:W],...": fills o->mmio. */
static void parse_mmio(const char *opt, const char *text, struct options *o)
{
	struct list_item items[MAX_MMIO];

	o->nmmio = parse_item_list(opt, text, "GPA", UINT32_MAX, true, items, MAX_MMIO);
	for (unsigned i = 0; i < o->nmmio; i++) {
		if (items[i].key < MMIO_MIN_GPA)
			usage_error("%s: GPA 0x%llx is guest RAM (below 0x%x)", opt, items[i].key,
				    MMIO_MIN_GPA);
		o->mmio[i] = (struct mmio_entry){ .gpa = (uint32_t)items[i].key,
						  .reads = items[i].n,
						  .writes = items[i].m };
	}
}

/* "NR:N,...": fills o->hypercalls. */
static void parse_hypercalls(const char *opt, const char *text, struct options *o)
{
	struct list_item items[MAX_HYPERCALLS];

	o->nhypercalls =
		parse_item_list(opt, text, "NR", UINT32_MAX, false, items, MAX_HYPERCALLS);
	for (unsigned i = 0; i < o->nhypercalls; i++)
		o->hypercalls[i] = (struct guest_hypercall){ .nr = (uint32_t)items[i].key,
							     .count = items[i].n };
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
			parse_qemu_name(val, &(const struct qemu_name){
							  .vm_name = o->vm_name,
							  .vm_name_size = sizeof(o->vm_name),
							  .process_name = o->process_name,
							  .process_name_size = sizeof(o->process_name),
							  .debug_threads = &o->debug_threads,
						  });
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
		else if (strcmp(opt, "--msrs") == 0)
			parse_msrs(opt, val, o);
		else if (strcmp(opt, "--mmio") == 0)
			parse_mmio(opt, val, o);
		else if (strcmp(opt, "--hypercalls") == 0)
			parse_hypercalls(opt, val, o);
		else if (strcmp(opt, "--signal-us") == 0)
			o->signal_us = (long)parse_number(opt, val, 10000000);
		else if (strcmp(opt, "--hlt") == 0)
			o->hlt = (uint32_t)parse_number(opt, val, 1000000);
		else
			usage_error("unknown option '%s'", opt);
	}
	if (o->vcpus == 0)
		usage_error("--vcpus: must be at least 1");
	if (o->hlt == 0)
		usage_error("--hlt: must be at least 1");
	if (o->io_seconds > 0 && (o->nmsrs || o->nmmio || o->nhypercalls))
		usage_error("--io-seconds loops on `out`: --msrs, --mmio and --hypercalls "
			    "would never run");
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
	unsigned mmio_index; /* --mmio entry being done, and its reads and writes so far */
	uint32_t mmio_entry_reads, mmio_entry_writes;
	uint64_t mmio_reads, mmio_writes;
	/* every KVM_RUN return: by exit reason, by errno, anything else */
	uint64_t runs, runs_io, runs_mmio, runs_hlt, runs_eintr, runs_eagain, runs_other;
	atomic_bool finished; /* run_vcpu returned: --signal-us leaves it alone */
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

/*
 * The third byte of the hypercall instruction for this CPU: 0xd9 (VMMCALL)
 * on AMD and Hygon, 0xc1 (VMCALL) on Intel-compatible CPUs, 0 when unknown.
 * KVM would emulate the other vendor's instruction (patching the guest's
 * code), which must not happen here.
 */
static unsigned char hypercall_opcode_byte(char vendor[13])
{
	unsigned eax, regs[3];

	if (!__get_cpuid(0, &eax, &regs[0], &regs[2], &regs[1])) /* ebx, edx, ecx */
		regs[0] = regs[1] = regs[2] = 0;
	memcpy(vendor, regs, 12);
	vendor[12] = '\0';
	if (strcmp(vendor, "AuthenticAMD") == 0 || strcmp(vendor, "HygonGenuine") == 0)
		return 0xd9;
	if (strcmp(vendor, "GenuineIntel") == 0 || strcmp(vendor, "CentaurHauls") == 0 ||
	    strcmp(vendor, "  Shanghai  ") == 0)
		return 0xc1;
	return 0;
}

static uint16_t code_offset(const unsigned char *label)
{
	return (uint16_t)(GUEST_CODE_ADDR + (label - guest_code_start));
}

static void put_u16(unsigned char *mem, size_t addr, uint16_t value)
{
	memcpy(mem + addr, &value, sizeof(value));
}

/*
 * Guest memory: 64 KiB at physical 0 with the guest code at GUEST_CODE_ADDR,
 * the IVT, the tables and their ends (see the layout above).
 */
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
	if (guest_exc_stubs_end - guest_exc_stubs != 32 * GUEST_EXC_STUB_SIZE) {
		fprintf(stderr, "test_vmm: exception stubs are %td bytes, expected %d\n",
			guest_exc_stubs_end - guest_exc_stubs, 32 * GUEST_EXC_STUB_SIZE);
		exit(1);
	}
	memcpy(vm->mem + GUEST_CODE_ADDR, guest_code_start, code_size);

	if (o->nhypercalls > 0) {
		char vendor[13];
		unsigned char byte = hypercall_opcode_byte(vendor);

		if (byte == 0) {
			fprintf(stderr, "test_vmm: --hypercalls: unknown CPU vendor '%s' (neither "
				"VMMCALL nor VMCALL is known to be right)\n", vendor);
			exit(1);
		}
		vm->mem[code_offset(guest_hypercall_insn) + 2] = byte;
	}

	/* Real-mode IVT: offset, segment 0. */
	for (unsigned v = 0; v < 32; v++)
		put_u16(vm->mem, 4 * v,
			v == 13 ? code_offset(guest_gp_handler)
				: (uint16_t)(code_offset(guest_exc_stubs) + v * GUEST_EXC_STUB_SIZE));

	memcpy(vm->mem + GUEST_PORT_TABLE_ADDR, o->ports, sizeof(o->ports[0]) * o->nports);
	memcpy(vm->mem + GUEST_MSR_TABLE_ADDR, o->msrs, sizeof(o->msrs[0]) * o->nmsrs);
	put_u16(vm->mem, GUEST_MSR_END_ADDR,
		(uint16_t)(GUEST_MSR_TABLE_ADDR + sizeof(struct guest_msr) * o->nmsrs));
	for (unsigned i = 0; i < o->nmmio; i++) {
		struct guest_mmio m = { .gpa = o->mmio[i].gpa,
					.reads = o->mmio[i].reads,
					.writes = o->mmio[i].writes };

		memcpy(vm->mem + GUEST_MMIO_TABLE_ADDR + i * sizeof(m), &m, sizeof(m));
	}
	put_u16(vm->mem, GUEST_MMIO_END_ADDR,
		(uint16_t)(GUEST_MMIO_TABLE_ADDR + sizeof(struct guest_mmio) * o->nmmio));
	memcpy(vm->mem + GUEST_HYPERCALL_TABLE_ADDR, o->hypercalls,
	       sizeof(o->hypercalls[0]) * o->nhypercalls);
	put_u16(vm->mem, GUEST_HYPERCALL_END_ADDR,
		(uint16_t)(GUEST_HYPERCALL_TABLE_ADDR +
			   sizeof(struct guest_hypercall) * o->nhypercalls));

	memset(&region, 0, sizeof(region));
	region.slot = 0;
	region.guest_phys_addr = 0;
	region.memory_size = GUEST_MEM_SIZE;
	region.userspace_addr = (uint64_t)(uintptr_t)vm->mem;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die_errno("ioctl(KVM_SET_USER_MEMORY_REGION)");
}

/* A counter of the vCPU's block in guest memory (GUEST_DATA_*). */
static uint32_t guest_counter(const struct vcpu *v, unsigned offset)
{
	uint32_t value;

	memcpy(&value,
	       v->vm->mem + GUEST_VCPU_DATA_ADDR + v->id * GUEST_VCPU_DATA_SIZE + offset,
	       sizeof(value));
	return value;
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
	/* FS: the vCPU's counter block (16-byte aligned: base = selector << 4). */
	sregs.fs.base = GUEST_VCPU_DATA_ADDR + v->id * GUEST_VCPU_DATA_SIZE;
	sregs.fs.selector = (uint16_t)(sregs.fs.base >> 4);
	/*
	 * --mmio: ES base 0, limit 4 GiB (page granular, as VMX requires of a
	 * limit above 1 MiB), so %es:(%esi) reaches any 32-bit address in real
	 * mode. The guest never loads ES, so the limit stays; without --mmio ES
	 * keeps its reset state.
	 */
	if (o->nmmio > 0) {
		sregs.es.base = 0;
		sregs.es.selector = 0;
		sregs.es.limit = 0xffffffff;
		sregs.es.g = 1;
	}
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		die_errno("ioctl(KVM_SET_SREGS) vcpu %u", v->id);

	memset(&regs, 0, sizeof(regs));
	/* Bit 1 is reserved and must be set. IF is set: under Bochs's VMX (the
	 * Intel suite) a guest entered with IF clear never leaves for the host's
	 * timer interrupt, and a loop KVM completes in its fast path (wrmsr of
	 * the TSC deadline) never returns to the host (tests/e2e/README.md,
	 * "Bochs and the guest's IF"). No interrupt is ever injected here: no
	 * in-kernel irqchip, no KVM_INTERRUPT. */
	regs.rflags = 0x202;
	regs.rip = GUEST_CODE_ADDR + (uint64_t)(entry - guest_code_start);
	regs.rsi = o->cpuid[v->id];
	regs.rdi = o->io[v->id];
	regs.rbp = o->nports;
	regs.rax = v->id;
	/* Its own stack (the #GP handler uses it): vCPU 0's SP=0 wraps to the top. */
	regs.rsp = (GUEST_MEM_SIZE - v->id * GUEST_STACK_SIZE) & 0xffff;
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
	if (out && r->io.port == GUEST_EXC_PORT && r->io.size == 1 && r->io.count == 1)
		return vcpu_fail(v, "the guest took an unexpected exception, vector %u",
				 *((const unsigned char *)r + r->io.data_offset));
	if (!out || r->io.port != GUEST_IO_PORT ||
	    r->io.size != 1 || r->io.count != 1)
		return vcpu_fail(v, "unexpected IO exit: %s port 0x%x size %u count %u",
				 r->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", r->io.port,
				 r->io.size, r->io.count);
	return true;
}

/*
 * An MMIO exit must be the next byte read or write of the --mmio table
 * (which this counts off as it goes). Reads return 0.
 */
static bool check_mmio_exit(struct vcpu *v)
{
	struct kvm_run *r = v->run;
	const struct mmio_entry *m;
	bool expect_write;

	while (v->mmio_index < v->opts->nmmio) {
		m = &v->opts->mmio[v->mmio_index];
		if (v->mmio_entry_reads < m->reads || v->mmio_entry_writes < m->writes)
			break;
		v->mmio_index++;
		v->mmio_entry_reads = v->mmio_entry_writes = 0;
	}
	if (v->mmio_index == v->opts->nmmio)
		return vcpu_fail(v, "unexpected MMIO exit: %s gpa 0x%llx len %u (--mmio all done)",
				 r->mmio.is_write ? "write" : "read",
				 (unsigned long long)r->mmio.phys_addr, r->mmio.len);
	m = &v->opts->mmio[v->mmio_index];
	expect_write = v->mmio_entry_reads >= m->reads;
	if (r->mmio.phys_addr != m->gpa || r->mmio.len != 1 || !r->mmio.is_write != !expect_write)
		return vcpu_fail(v, "unexpected MMIO exit: %s gpa 0x%llx len %u, expected a 1-byte "
				 "%s of 0x%" PRIx32,
				 r->mmio.is_write ? "write" : "read",
				 (unsigned long long)r->mmio.phys_addr, r->mmio.len,
				 expect_write ? "write" : "read", m->gpa);
	if (expect_write) {
		v->mmio_entry_writes++;
		v->mmio_writes++;
	} else {
		memset(r->mmio.data, 0, sizeof(r->mmio.data));
		v->mmio_entry_reads++;
		v->mmio_reads++;
	}
	return true;
}

/* Per-vCPU sums of a table's two counts. */
static uint64_t mmio_per_vcpu(const struct options *o, bool writes)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < o->nmmio; i++)
		n += writes ? o->mmio[i].writes : o->mmio[i].reads;
	return n;
}

static uint64_t msrs_per_vcpu(const struct options *o, bool writes)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < o->nmsrs; i++)
		n += writes ? o->msrs[i].writes : o->msrs[i].reads;
	return n;
}

static uint64_t hypercalls_per_vcpu(const struct options *o)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < o->nhypercalls; i++)
		n += o->hypercalls[i].count;
	return n;
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
	if (v->mmio_reads != mmio_per_vcpu(v->opts, false) ||
	    v->mmio_writes != mmio_per_vcpu(v->opts, true))
		return vcpu_fail(v, "handled %" PRIu64 " MMIO reads and %" PRIu64 " writes, "
				 "expected %" PRIu64 " and %" PRIu64, v->mmio_reads, v->mmio_writes,
				 mmio_per_vcpu(v->opts, false), mmio_per_vcpu(v->opts, true));
	if (guest_counter(v, GUEST_DATA_MSR_READS) != msrs_per_vcpu(v->opts, false) ||
	    guest_counter(v, GUEST_DATA_MSR_WRITES) != msrs_per_vcpu(v->opts, true))
		return vcpu_fail(v, "the guest did %" PRIu32 " rdmsr and %" PRIu32 " wrmsr, "
				 "expected %" PRIu64 " and %" PRIu64,
				 guest_counter(v, GUEST_DATA_MSR_READS),
				 guest_counter(v, GUEST_DATA_MSR_WRITES),
				 msrs_per_vcpu(v->opts, false), msrs_per_vcpu(v->opts, true));
	if (guest_counter(v, GUEST_DATA_HYPERCALLS) != hypercalls_per_vcpu(v->opts))
		return vcpu_fail(v, "the guest did %" PRIu32 " hypercalls, expected %" PRIu64,
				 guest_counter(v, GUEST_DATA_HYPERCALLS),
				 hypercalls_per_vcpu(v->opts));
	return true;
}

/* Sleeps at least `us` microseconds (nanosleep resumes after a signal). */
static void sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* --io-seconds: set by SIGUSR2, which ends the loop before its deadline. */
static volatile sig_atomic_t g_io_loop_stop;

static void on_sigusr2(int sig)
{
	(void)sig;
	g_io_loop_stop = 1;
}

/* Runs the vCPU until HLT (counted scenario) or the deadline (--io-seconds). */
static bool run_vcpu(struct vcpu *v, double deadline)
{
	bool timed = v->opts->io_seconds > 0;

	for (;;) {
		v->runs++;
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR) {
				v->runs_eintr++;
				continue;
			}
			if (errno == EAGAIN) {
				v->runs_eagain++;
				continue;
			}
			v->runs_other++;
			return vcpu_fail(v, "ioctl(KVM_RUN) failed: %s", strerror(errno));
		}
		switch (v->run->exit_reason) {
		case KVM_EXIT_IO:
			v->runs_io++;
			if (!check_io_exit(v))
				return false;
			v->io_exits++;
			if (v->opts->io_delay_us > 0)
				sleep_us(v->opts->io_delay_us);
			if (timed && (g_io_loop_stop || (v->io_exits % CLOCK_CHECK_EVERY == 0 &&
							 now_seconds() >= deadline)))
				return true;
			break;
		case KVM_EXIT_MMIO:
			v->runs_mmio++;
			if (!check_mmio_exit(v))
				return false;
			break;
		case KVM_EXIT_HLT:
			v->runs_hlt++;
			v->hlt_exits++;
			if (timed)
				return vcpu_fail(v, "HLT in the --io-seconds loop");
			if (v->hlt_exits < v->opts->hlt)
				break; /* re-enter: the guest's next instruction jumps back to hlt */
			return check_guest_finished(v);
		case KVM_EXIT_FAIL_ENTRY:
			v->runs_other++;
			return vcpu_fail(v, "KVM_EXIT_FAIL_ENTRY, hardware reason 0x%llx",
					 (unsigned long long)v->run->fail_entry
						 .hardware_entry_failure_reason);
		case KVM_EXIT_INTERNAL_ERROR:
			v->runs_other++;
			return vcpu_fail(v, "KVM_EXIT_INTERNAL_ERROR, suberror %u",
					 v->run->internal.suberror);
		default:
			v->runs_other++;
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
	atomic_store(&v->finished, true);
	return NULL;
}

/* --signal-us: SIGUSR1 to every vCPU thread still running, until none is. */
struct signaller {
	struct vcpu *vcpus;
	unsigned n;
	long us;
};

static void on_sigusr1(int sig)
{
	(void)sig; /* only there to interrupt KVM_RUN */
}

static void *signal_thread(void *arg)
{
	const struct signaller *s = arg;

	for (;;) {
		bool running = false;

		for (unsigned i = 0; i < s->n; i++) {
			if (atomic_load(&s->vcpus[i].finished))
				continue;
			running = true;
			pthread_kill(s->vcpus[i].thread, SIGUSR1);
		}
		if (!running)
			return NULL;
		sleep_us(s->us);
	}
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

/* Totals over the vCPUs for the DONE line. */
struct totals {
	uint64_t io, hlt, cpuid;
	uint64_t msr_reads, msr_writes, msr_faults, mmio_reads, mmio_writes, hypercalls;
	uint64_t runs, runs_io, runs_mmio, runs_hlt, runs_eintr, runs_eagain, runs_other;
};

/* Prints one line per vCPU and the final DONE line; returns true if all went well. */
static bool report(const struct options *o, const struct vcpu *vcpus, double seconds)
{
	struct totals t = { 0 };
	bool ok = true;

	for (unsigned i = 0; i < o->vcpus; i++) {
		const struct vcpu *v = &vcpus[i];
		uint32_t msr_reads = guest_counter(v, GUEST_DATA_MSR_READS);
		uint32_t msr_writes = guest_counter(v, GUEST_DATA_MSR_WRITES);
		uint32_t msr_faults = guest_counter(v, GUEST_DATA_FAULTS);
		uint32_t hypercalls = guest_counter(v, GUEST_DATA_HYPERCALLS);

		printf("test_vmm: vcpu %u: io=%" PRIu64 " hlt=%" PRIu64 " cpuid=%" PRIu32
		       " (CPUID exits are handled inside KVM)",
		       i, v->io_exits, v->hlt_exits, o->io_seconds > 0 ? 0 : o->cpuid[i]);
		if (o->nmsrs || o->nmmio || o->nhypercalls)
			printf(" msr_reads=%" PRIu32 " msr_writes=%" PRIu32 " msr_faults=%" PRIu32
			       " mmio_reads=%" PRIu64 " mmio_writes=%" PRIu64 " hypercalls=%" PRIu32,
			       msr_reads, msr_writes, msr_faults, v->mmio_reads, v->mmio_writes,
			       hypercalls);
		printf(" runs=%" PRIu64 "%s%s\n", v->runs, v->ok ? "" : " ERROR: ",
		       v->ok ? "" : v->error);
		t.io += v->io_exits;
		t.hlt += v->hlt_exits;
		t.cpuid += o->io_seconds > 0 ? 0 : o->cpuid[i];
		t.msr_reads += msr_reads;
		t.msr_writes += msr_writes;
		t.msr_faults += msr_faults;
		t.mmio_reads += v->mmio_reads;
		t.mmio_writes += v->mmio_writes;
		t.hypercalls += hypercalls;
		t.runs += v->runs;
		t.runs_io += v->runs_io;
		t.runs_mmio += v->runs_mmio;
		t.runs_hlt += v->runs_hlt;
		t.runs_eintr += v->runs_eintr;
		t.runs_eagain += v->runs_eagain;
		t.runs_other += v->runs_other;
		ok = ok && v->ok;
	}
	printf("TEST_VMM %s pid=%d vm=%s vcpus=%u io=%" PRIu64 " hlt=%" PRIu64 " cpuid=%" PRIu64
	       " seconds=%.3f msr_reads=%" PRIu64 " msr_writes=%" PRIu64 " msr_faults=%" PRIu64
	       " mmio_reads=%" PRIu64 " mmio_writes=%" PRIu64 " hypercalls=%" PRIu64
	       " runs=%" PRIu64 " runs_io=%" PRIu64 " runs_mmio=%" PRIu64 " runs_hlt=%" PRIu64
	       " runs_eintr=%" PRIu64 " runs_eagain=%" PRIu64 " runs_other=%" PRIu64 "\n",
	       ok ? "DONE" : "FAILED", (int)getpid(), o->vm_name[0] ? o->vm_name : "-", o->vcpus,
	       t.io, t.hlt, t.cpuid, seconds, t.msr_reads, t.msr_writes, t.msr_faults,
	       t.mmio_reads, t.mmio_writes, t.hypercalls, t.runs, t.runs_io, t.runs_mmio,
	       t.runs_hlt, t.runs_eintr, t.runs_eagain, t.runs_other);
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
	if (opts.signal_us > 0) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_sigusr1; /* no SA_RESTART: KVM_RUN returns EINTR anyway */
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGUSR1, &sa, NULL) < 0)
			die_errno("sigaction(SIGUSR1)");
	}
	if (opts.io_seconds > 0) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_sigusr2;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGUSR2, &sa, NULL) < 0)
			die_errno("sigaction(SIGUSR2)");
	}
	start_vcpus(vcpus, opts.vcpus);
	if (opts.signal_us > 0) {
		/* Joined before the vCPUs: it stops once every vCPU has finished, so
		 * it never signals a thread that is already joined. */
		struct signaller sig = { .vcpus = vcpus, .n = opts.vcpus, .us = opts.signal_us };
		pthread_t signaller;
		int err = pthread_create(&signaller, NULL, signal_thread, &sig);

		if (err != 0) {
			errno = err;
			die_errno("pthread_create(signaller)");
		}
		pthread_join(signaller, NULL);
	}
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
