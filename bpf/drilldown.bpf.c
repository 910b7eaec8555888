// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Drill-down (config collector.drilldown): which port, MSR, MMIO page,
 * hypercall or return to the VMM each VM's exits were about, and on arm64
 * which HVC function or system register.
 *
 * One program per kind on KVM's own tracepoint of that kind (count_kvm_pio on
 * kvm:kvm_pio, count_kvm_msr on kvm:kvm_msr, ...), loaded only when the kind
 * is on, on the same hook as the exit program (exit_count.bpf.c): the _btf
 * twin on tp_btf, the _raw twin on raw_tp (no trace record is built, about
 * 250 instructions less per event), the classic one otherwise. Exits that hit
 * none of these tracepoints run nothing more. Every kind counts into one map,
 * `drilldown`, one entry per (VM, kind): see kvm_exit.h.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "kvm_exit.h"
#include "lib/maps.bpf.h"
#include "lib/raw_tp.bpf.h"

/*
 * Per (VM, kind) drill-down slots, 1,152 bytes an entry; sized at load (1 when
 * no kind is on). Preallocated: before Linux 6.1 a tracing program that makes
 * the kernel allocate a hash entry triggers a kernel WARN.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* replaced at load time: VMs per kind x kinds on */
	__type(key, struct drilldown_key);
	__type(value, struct drilldown_items);
} drilldown SEC(".maps");

/* What a (VM, kind) entry starts from: every slot free. */
static const struct drilldown_items no_drilldown_items;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KVM_DRILLDOWN_KIND_NR);
	__type(key, __u32);
	__type(value, __u64);
} drilldown_lost SEC(".maps");

/* The kvm_pio tracepoint record: one per port IO operation KVM handles. */
struct trace_event_raw_kvm_pio {
	unsigned int rw; /* 1: out (write), 0: in (read) */
	unsigned int port;
} __attribute__((preserve_access_index));

/* Counts one drill-down event of the current VMM process. */
static __always_inline void count_drilldown(__u32 kind, __u64 item)
{
	struct drilldown_key key = {};
	struct drilldown_items *items;

	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.kind = kind;
	/* Created with every slot free on the VM's first event of the kind; NULL: the map is full. */
	items = bpf_map_lookup_or_try_init(&drilldown, &key, &no_drilldown_items);
	if (items) {
		/* item + 1 == 0 only for item ~0 (a hypercall number): it has no slot. */
		if (item + 1 != 0 &&
		    kvm_drilldown_add(items->items, KVM_DRILLDOWN_ITEM_SLOTS, item + 1, 1) == 0)
			return;
		if (kvm_drilldown_add(items->other, KVM_DRILLDOWN_OTHER_SLOTS,
				      kvm_drilldown_other_item(kind, item) + 1, 1) == 0)
			return;
	}
	percpu_array_inc(&drilldown_lost, kind);
}

/*
 * Port IO (drill-down kind io). One event per IN/OUT KVM handles: per exit for
 * IN/OUT, per batch of a string IO (INS/OUTS, `rep`) the emulator hands over.
 */
static __always_inline void count_pio(unsigned int rw, unsigned int port)
{
	count_drilldown(KVM_DRILLDOWN_IO, (port & 0xffffULL) | (rw ? KVM_DRILLDOWN_IO_WRITE : 0));
}

SEC("tp/kvm/kvm_pio")
int count_kvm_pio(struct trace_event_raw_kvm_pio *ctx)
{
	count_pio(ctx->rw, ctx->port);
	return 0;
}

/* The kvm_msr tracepoint record: one per RDMSR/WRMSR KVM completes or faults. */
struct trace_event_raw_kvm_msr {
	unsigned int write;
	__u32 ecx;
	__u8 exception; /* KVM injected #GP instead of completing the access */
} __attribute__((preserve_access_index));

/* MSR accesses that exit (drill-down kind msr): index, direction, fault. */
static __always_inline void count_msr(unsigned int write, __u32 ecx, __u8 exception)
{
	__u64 item = ecx;

	if (write)
		item |= KVM_DRILLDOWN_MSR_WRITE;
	if (exception)
		item |= KVM_DRILLDOWN_MSR_FAULT;
	count_drilldown(KVM_DRILLDOWN_MSR, item);
}

SEC("tp/kvm/kvm_msr")
int count_kvm_msr(struct trace_event_raw_kvm_msr *ctx)
{
	count_msr(ctx->write, ctx->ecx, ctx->exception);
	return 0;
}

/* kvm_mmio's `type`: KVM_TRACE_MMIO_* of include/trace/events/kvm.h. */
#define KVM_TRACE_MMIO_READ_UNSATISFIED 0
#define KVM_TRACE_MMIO_READ 1
#define KVM_TRACE_MMIO_WRITE 2

/* The kvm_mmio tracepoint record. */
struct trace_event_raw_kvm_mmio {
	__u32 type;
	__u64 gpa;
} __attribute__((preserve_access_index));

/*
 * MMIO accesses KVM emulates (drill-down kind mmio), per 4 KiB guest-physical
 * page. A read that goes out to the VMM fires READ_UNSATISFIED on the way out
 * and READ when KVM completes it; a read an in-kernel device serves fires READ
 * only. Counting READ and WRITE counts every access exactly once.
 */
static __always_inline void count_mmio(int type, __u64 gpa)
{
	__u64 item = gpa >> 12;

	if (type == KVM_TRACE_MMIO_WRITE)
		item |= KVM_DRILLDOWN_MMIO_WRITE;
	else if (type != KVM_TRACE_MMIO_READ)
		return;
	count_drilldown(KVM_DRILLDOWN_MMIO, item);
}

SEC("tp/kvm/kvm_mmio")
int count_kvm_mmio(struct trace_event_raw_kvm_mmio *ctx)
{
	count_mmio(ctx->type, ctx->gpa);
	return 0;
}

/* The kvm_hypercall tracepoint record: one per KVM hypercall (VMCALL/VMMCALL). */
struct trace_event_raw_kvm_hypercall {
	unsigned long nr;
} __attribute__((preserve_access_index));

/* Hypercalls KVM handles (drill-down kind hypercall), by number. */
SEC("tp/kvm/kvm_hypercall")
int count_kvm_hypercall(struct trace_event_raw_kvm_hypercall *ctx)
{
	count_drilldown(KVM_DRILLDOWN_HYPERCALL, ctx->nr);
	return 0;
}

/* The kvm_userspace_exit tracepoint record: one per return of KVM_RUN. */
struct trace_event_raw_kvm_userspace_exit {
	__u32 reason; /* KVM_EXIT_* */
	int errno;    /* KVM_RUN's return value: 0 or -errno */
} __attribute__((preserve_access_index));

/*
 * Exits to the VMM (drill-down kind userspace): every return of KVM_RUN to
 * user space, by KVM_EXIT_* reason, and the errno when KVM_RUN failed (EINTR:
 * a signal; the reason is then KVM_EXIT_INTR or stale).
 */
static __always_inline void count_userspace_exit(__u32 reason, int ret)
{
	__u64 item = reason;

	if (ret < 0)
		item |= (__u64)(__u32)-ret << KVM_DRILLDOWN_USERSPACE_ERRNO_SHIFT;
	count_drilldown(KVM_DRILLDOWN_USERSPACE, item);
}

SEC("tp/kvm/kvm_userspace_exit")
int count_kvm_userspace_exit(struct trace_event_raw_kvm_userspace_exit *ctx)
{
	count_userspace_exit(ctx->reason, ctx->errno);
	return 0;
}

/* arm64's kvm_hvc_arm64 record: one per HVC KVM handles (handle_hvc). */
struct trace_event_raw_kvm_hvc_arm64 {
	unsigned long r0; /* x0: the SMCCC function ID in its low 32 bits */
} __attribute__((preserve_access_index));

/*
 * HVCs (drill-down kind hvc, arm64), by SMCCC function ID: w0, as KVM's
 * smccc_get_function() reads it. PSCI calls are HVCs too.
 */
static __always_inline void count_hvc(unsigned long r0)
{
	count_drilldown(KVM_DRILLDOWN_HVC, (__u32)r0);
}

SEC("tp/kvm/kvm_hvc_arm64")
int count_kvm_hvc_arm64(struct trace_event_raw_kvm_hvc_arm64 *ctx)
{
	count_hvc(ctx->r0);
	return 0;
}

/*
 * arm64's kvm_sys_access record: one per MRS/MSR of a system register that
 * KVM emulates from its table (perform_access), ID registers and timers,
 * GIC SGIs and PMU registers among them.
 */
struct trace_event_raw_kvm_sys_access {
	__u8 is_write;
	__u8 Op0;
	__u8 Op1;
	__u8 CRn;
	__u8 CRm;
	__u8 Op2;
} __attribute__((preserve_access_index));

/* System register accesses (drill-down kind sysreg, arm64): encoding and direction. */
static __always_inline void count_sysreg(__u8 op0, __u8 op1, __u8 crn, __u8 crm, __u8 op2,
					 __u8 is_write)
{
	__u64 item = KVM_DRILLDOWN_SYSREG(op0, op1, crn, crm, op2);

	if (is_write)
		item |= KVM_DRILLDOWN_SYSREG_WRITE;
	count_drilldown(KVM_DRILLDOWN_SYSREG, item);
}

SEC("tp/kvm/kvm_sys_access")
int count_kvm_sys_access(struct trace_event_raw_kvm_sys_access *ctx)
{
	count_sysreg(ctx->Op0, ctx->Op1, ctx->CRn, ctx->CRm, ctx->Op2, ctx->is_write);
	return 0;
}

/*
 * The tp_btf and raw_tp twins of the drill-down programs: the same items,
 * read from the tracepoint's arguments (TP_PROTO in arch/x86/kvm/trace.h and
 * include/trace/events/kvm.h, arch/arm64/kvm/trace_handle_exit.h) instead of
 * its trace record. Only kvm_sys_access passes a pointer, read with a probe
 * read on both hooks: 5 bytes, for the one program that reads them.
 */
static __always_inline int handle_kvm_pio(enum raw_tp_hook hook, unsigned long long *ctx,
					  unsigned int rw, unsigned int port)
{
	count_pio(rw, port);
	return 0;
}

static __always_inline int handle_kvm_msr(enum raw_tp_hook hook, unsigned long long *ctx,
					  unsigned int write, __u32 ecx, __u64 data, __u8 exception)
{
	count_msr(write, ecx, exception);
	return 0;
}

static __always_inline int handle_kvm_mmio(enum raw_tp_hook hook, unsigned long long *ctx, int type,
					   int len, __u64 gpa)
{
	count_mmio(type, gpa);
	return 0;
}

static __always_inline int handle_kvm_hypercall(enum raw_tp_hook hook, unsigned long long *ctx,
						unsigned long nr)
{
	count_drilldown(KVM_DRILLDOWN_HYPERCALL, nr);
	return 0;
}

static __always_inline int handle_kvm_userspace_exit(enum raw_tp_hook hook, unsigned long long *ctx,
						     __u32 reason, int ret)
{
	count_userspace_exit(reason, ret);
	return 0;
}

static __always_inline int handle_kvm_hvc_arm64(enum raw_tp_hook hook, unsigned long long *ctx,
						unsigned long vcpu_pc, unsigned long r0)
{
	count_hvc(r0);
	return 0;
}

/* kvm_sys_access's TP_PROTO(vcpu_pc, struct sys_reg_params *params, reg): the access as trapped. */
struct sys_reg_params {
	__u8 Op0;
	__u8 Op1;
	__u8 CRn;
	__u8 CRm;
	__u8 Op2;
	__u8 is_write;
} __attribute__((preserve_access_index));

static __always_inline int handle_kvm_sys_access(enum raw_tp_hook hook, unsigned long long *ctx,
						 unsigned long vcpu_pc,
						 struct sys_reg_params *params)
{
	__u8 op0 = 0, op1 = 0, crn = 0, crm = 0, op2 = 0;
	__u8 is_write = 0;

	if (BPF_CORE_READ_INTO(&op0, params, Op0) || BPF_CORE_READ_INTO(&op1, params, Op1) ||
	    BPF_CORE_READ_INTO(&crn, params, CRn) || BPF_CORE_READ_INTO(&crm, params, CRm) ||
	    BPF_CORE_READ_INTO(&op2, params, Op2) ||
	    BPF_CORE_READ_INTO(&is_write, params, is_write)) {
		/* Never seen (the kernel just passed the pointer): counted lost, not dropped silently. */
		percpu_array_inc(&drilldown_lost, KVM_DRILLDOWN_SYSREG);
		return 0;
	}
	count_sysreg(op0, op1, crn, crm, op2, is_write);
	return 0;
}

RAW_TP_PROGRAMS(count_kvm_pio, kvm_pio, handle_kvm_pio, rw, port)
RAW_TP_PROGRAMS(count_kvm_msr, kvm_msr, handle_kvm_msr, write, ecx, data, exception)
RAW_TP_PROGRAMS(count_kvm_mmio, kvm_mmio, handle_kvm_mmio, type, len, gpa)
RAW_TP_PROGRAMS(count_kvm_hypercall, kvm_hypercall, handle_kvm_hypercall, nr)
RAW_TP_PROGRAMS(count_kvm_userspace_exit, kvm_userspace_exit, handle_kvm_userspace_exit, reason,
		ret)
RAW_TP_PROGRAMS(count_kvm_hvc_arm64, kvm_hvc_arm64, handle_kvm_hvc_arm64, vcpu_pc, r0)
RAW_TP_PROGRAMS(count_kvm_sys_access, kvm_sys_access, handle_kvm_sys_access, vcpu_pc, params)
