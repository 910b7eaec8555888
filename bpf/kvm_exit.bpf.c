// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Counts every KVM VM exit by (VMM process, vCPU, isa, exit reason).
 *
 * Counters live in a per-CPU array, one element per (VMM process, vCPU, isa,
 * reason) in use; which element is which is the directory `counter_index`, a
 * hash from struct vm_exit_key to the element's index, written on the key's
 * first exit with an index taken from the free list `free_counters` (filled
 * and refilled by the exporter). Hot path: a per-CPU cache of the indexes the
 * thread that last exited on this CPU used (tagged with its VM and vCPU, and
 * with `counter_epoch`), then a plain increment of its per-CPU counter: no
 * hash lookup, no atomics, no locks. The cache holds indexes, never counts: a
 * stale or lost cache costs speed, never an exit. The directory plus the
 * array are the whole truth at any moment; the exporter sums the CPUs at
 * scrape time.
 *
 * Three entry points into the same counting; the exporter loads exactly one
 * (config kernel.hook):
 *   count_kvm_exit_btf  tp_btf/kvm_exit: the raw tracepoint, BTF-typed. The
 *                       kernel skips building the perf trace record, so the
 *                       exit reason is read from the vCPU, as the kernel's own
 *                       get_exit_info does. Only a recursion of this very
 *                       program can make the kernel skip it. libbpf resolves
 *                       its attach target in kvm's module BTF, which takes
 *                       CAP_SYS_ADMIN (BPF_BTF_GET_NEXT_ID).
 *   count_kvm_exit_raw  raw_tp/kvm_exit: the same raw tracepoint attached by
 *                       name (BPF_RAW_TRACEPOINT_OPEN): CAP_BPF and
 *                       CAP_PERFMON suffice, and it runs exactly where tp_btf
 *                       runs (same __bpf_trace_run, same skip rule). Its
 *                       arguments are plain numbers, so every read through
 *                       the vCPU is a probe read.
 *   count_kvm_exit      tp/kvm/kvm_exit: the classic tracepoint, whose record
 *                       (exit_reason, isa, vcpu_id) is a stable format. The
 *                       fallback where kvm module BTF or the vendor structs
 *                       are missing; attaching it is a perf_event_open, which
 *                       Debian's perf_event_paranoid=3 refuses without
 *                       CAP_SYS_ADMIN.
 * The tp_btf and raw_tp entry points of every tracepoint are generated from
 * one handler each (RAW_TP_PROGRAMS, lib/raw_tp.bpf.h).
 *
 * Exit handling time (config collector.exit_handling_time): the exit program
 * also stamps the exit into a per-thread slot (task local storage: a vCPU
 * thread can leave its CPU between exit and entry, e.g. to handle an IO exit
 * in the VMM), and the matching kvm_entry program (time_kvm_entry_btf or
 * time_kvm_entry, loaded with the exit program of the same hook) adds the
 * interval to a histogram per (isa, reason) and to a per-VM sum.
 *
 * Drill-down (config collector.drilldown): one program per kind on KVM's own
 * tracepoint of that kind (count_kvm_pio on kvm:kvm_pio, count_kvm_msr on
 * kvm:kvm_msr, ...), loaded only when the kind is on, on the same hook as the
 * exit program: the _btf twin on tp_btf, the _raw twin on raw_tp (no trace
 * record is built, about 250 instructions less per event), the classic one
 * otherwise. Exits that hit none of these tracepoints run nothing more.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <asm-generic/errno.h>

#include "kvm_exit.h"
#include "lib/bits.bpf.h"
#include "lib/kvm_internals.bpf.h"
#include "lib/maps.bpf.h"
#include "lib/raw_tp.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * The kvm_exit tracepoint record. Only the fields read here are declared:
 * preserve_access_index makes libbpf relocate each offset against the running
 * kernel's BTF (vmlinux, or /sys/kernel/btf/kvm where kvm is a module), so the
 * layout below never has to match any particular kernel.
 */
struct trace_event_raw_kvm_exit {
	unsigned int exit_reason;
	__u32 isa;
	unsigned int vcpu_id;
} __attribute__((preserve_access_index));

/* Set by the exporter before load (config: collector.per_vcpu). */
const volatile __u8 count_per_vcpu = 0;

/*
 * The host's KVM_EXIT_ISA_* for count_kvm_exit_btf, set by the exporter
 * before load from the vendor module it finds (kvm_amd or kvm_intel). The
 * verifier drops the other vendor's branch, whose structs this kernel does
 * not have.
 */
const volatile __u32 btf_vendor_isa = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* replaced at load time by config: collector.vm_map_capacity */
	__type(key, struct vm_exit_key);
	__type(value, __u32);
} counter_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16385); /* vm_map_capacity + 1: index 0 is never handed out */
	__type(key, __u32);
	__type(value, __u64);
} exit_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 16384); /* vm_map_capacity */
	__type(value, __u32);
} free_counters SEC(".maps");

/*
 * Bumped by the exporter before it takes indexes back (those of ended VMs):
 * every CPU's cache is then refilled through the directory. It hands them
 * out again only after the programs running at the bump have finished.
 */
__u32 counter_epoch = 0;

/* The per-CPU index cache: direct-mapped by reason, tagged with the full reason. */
#define CACHED_REASONS 128 /* a power of two */

struct cached_index {
	__u32 reason;
	__u32 index; /* 0: none */
};

struct counter_cache {
	__u64 tag;   /* tgid << 32 | vm_exit_key.vcpu_id whose indexes `entry` holds; 0: none */
	__u32 epoch; /* counter_epoch when they were cached */
	__u32 isa;
	struct cached_index entry[CACHED_REASONS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counter_cache);
} counter_caches SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, KVM_EXIT_OVERFLOW_CAPACITY);
	__type(key, struct host_exit_key);
	__type(value, __u64);
} host_overflow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KVM_EXIT_LOST_NR);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* What a new host_overflow entry starts from. */
static const __u64 zero_count;

/* Set by the exporter before load (config: collector.exit_handling_time). */
const volatile __u8 time_exits = 0;

/* The pending exit of a vCPU thread; start_ns == 0: none. BPF side only. */
struct exit_slot {
	__u64 start_ns;
	struct vm_exit_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct exit_slot);
} exit_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, KVM_EXIT_TIME_HIST_CAPACITY);
	__type(key, struct host_exit_key);
	__type(value, struct exit_time_hist);
} exit_time_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384); /* replaced at load time by config: collector.vm_map_capacity */
	__type(key, struct vm_exit_key);
	__type(value, __u64);
} vm_exit_time SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KVM_EXIT_TIMING_LOST_NR);
	__type(key, __u32);
	__type(value, __u64);
} timing_lost SEC(".maps");

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

/* Stamps the exit `key` into the current thread's slot; its kvm_entry completes it. */
static __always_inline void start_exit_timing(const struct vm_exit_key *key)
{
	struct exit_slot *slot = bpf_task_storage_get(&exit_slots, bpf_get_current_task_btf(), 0,
						      BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!slot) {
		percpu_array_inc(&timing_lost, KVM_EXIT_TIMING_NO_STORAGE);
		return;
	}
	if (slot->start_ns != 0)
		percpu_array_inc(&timing_lost, KVM_EXIT_TIMING_OVERWRITTEN);
	slot->key = *key;
	slot->start_ns = bpf_ktime_get_ns();
}

/*
 * The smallest i with ns <= 2^i us, or KVM_EXIT_TIME_BUCKETS (+Inf) past
 * 2^(KVM_EXIT_TIME_BUCKETS-1) us. With us = ns rounded up to whole
 * microseconds, ns <= 1000 * 2^i <=> us <= 2^i <=> us - 1 < 2^i, which for
 * us >= 2 is log2l(us - 1) + 1 <= i.
 */
static __always_inline __u32 exit_time_bucket(__u64 ns)
{
	__u64 us = (ns + 999) / 1000;

	return us <= 1 ? 0 : log2l(us - 1) + 1;
}

/* What a new entry of exit_time_hist and of vm_exit_time starts from. */
static const struct exit_time_hist empty_hist;
static const __u64 zero_ns;

/* Completes the current thread's pending exit, if any: its interval goes into the maps. */
static __always_inline void end_exit_timing(void)
{
	struct exit_slot *slot =
		bpf_task_storage_get(&exit_slots, bpf_get_current_task_btf(), 0, 0);
	struct host_exit_key host_key;
	struct exit_time_hist *hist;
	struct vm_exit_key key;
	__u64 ns, *vm_ns;
	__u32 bucket;

	if (!slot || slot->start_ns == 0)
		return; /* no exit pending: the first entry of a thread, or one seen before attach */
	ns = bpf_ktime_get_ns() - slot->start_ns;
	key = slot->key;
	slot->start_ns = 0;

	host_key.isa = key.isa;
	host_key.exit_reason = key.exit_reason;
	/* Created empty (EEXIST: another CPU was first), then looked up again. */
	hist = bpf_map_lookup_or_try_init(&exit_time_hist, &host_key, &empty_hist);
	if (!hist) {
		percpu_array_inc(&timing_lost, KVM_EXIT_TIMING_HIST_FULL);
		return;
	}
	bucket = exit_time_bucket(ns);
	/* Keep the bounded index in one register: the 6.1 verifier loses the bound otherwise. */
	barrier_var(bucket);
	if (bucket > KVM_EXIT_TIME_BUCKETS)
		bucket = KVM_EXIT_TIME_BUCKETS;
	barrier_var(bucket);
	hist->buckets[bucket] += 1;
	hist->sum_ns += ns;
	hist->count += 1;
	/* Full like counter_index: the VM's exits are in the overflow table, its time in the histogram. */
	vm_ns = bpf_map_lookup_or_try_init(&vm_exit_time, &key, &zero_ns);
	if (vm_ns)
		*vm_ns += ns;
}

/*
 * The cache-miss path, out of line to keep the hot path short: counts the
 * exit through the directory and caches its index in `cached` (if given).
 * With no index left, the exit goes to the host totals only.
 */
static __noinline void count_uncached(__u64 tag, __u32 isa, __u32 reason,
				      struct cached_index *cached)
{
	struct host_exit_key host_key;
	struct vm_exit_key key;
	__u64 *count;
	__u32 index;

	key.tgid = tag >> 32;
	key.vcpu_id = (__u32)tag;
	key.isa = isa;
	key.exit_reason = reason;
	index = counter_index_of(&counter_index, &free_counters, &key);
	if (index != 0) {
		if (cached) {
			cached->reason = reason;
			cached->index = index;
		}
		percpu_array_inc(&exit_counters, index);
		return;
	}
	/* Every counter is taken: keep the exit in the host totals. */
	host_key.isa = isa;
	host_key.exit_reason = reason;
	count = bpf_map_lookup_or_try_init(&host_overflow, &host_key, &zero_count);
	if (!count) {
		percpu_array_inc(&lost, KVM_EXIT_LOST_OVERFLOW_FULL);
		return;
	}
	*count += 1;
}

/*
 * Counts one exit of the current VMM process. `from_record`: the isa and
 * reason come from the classic tracepoint's record, unmasked, and isa is
 * checked against the cache; tp_btf's are masked already, and its isa is
 * always the vendor module's (btf_vendor_isa).
 */
static __always_inline void count_exit(__u32 isa, __u32 reason, __u32 vcpu_id, int from_record)
{
	struct counter_cache *cache;
	struct cached_index *cached;
	__u32 zero = 0, i;
	__u64 tag;

	if (!count_per_vcpu)
		vcpu_id = KVM_EXIT_ALL_VCPUS; /* all vCPUs of a VM share its counters */
	/* tgid 0 never runs a vCPU, so tag 0 names no thread. */
	tag = (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | vcpu_id;

	if (from_record && isa == KVM_EXIT_ISA_VMX)
		reason &= KVM_EXIT_VMX_BASIC_REASON_MASK | KVM_EXIT_VMX_FAILED_VMENTRY;
	if (time_exits) {
		struct vm_exit_key key = {tag >> 32, vcpu_id, isa, reason};

		start_exit_timing(&key);
	}
	cache = bpf_map_lookup_elem(&counter_caches, &zero);
	if (!cache) {
		count_uncached(tag, isa, reason, NULL);
		return;
	}
	/*
	 * Another thread exited here last, or the exporter took indexes back:
	 * start over. Tracepoint programs run with preemption off on this path
	 * (KVM enters and exits guest mode with it off), so two exits never
	 * interleave on one CPU's cache.
	 */
	if (cache->tag != tag || cache->epoch != counter_epoch ||
	    (from_record && cache->isa != isa)) {
		__builtin_memset(cache->entry, 0, sizeof(cache->entry));
		cache->tag = tag;
		cache->epoch = counter_epoch;
		cache->isa = isa;
	}
	i = reason & (CACHED_REASONS - 1);
	/* Keep the bounded index in one register: the 6.1 verifier loses the bound otherwise. */
	barrier_var(i);
	cached = &cache->entry[i & (CACHED_REASONS - 1)];
	if (cached->reason != reason || cached->index == 0) {
		count_uncached(tag, isa, reason, cached);
		return;
	}
	percpu_array_inc(&exit_counters, cached->index);
}

SEC("tp/kvm/kvm_exit")
int count_kvm_exit(struct trace_event_raw_kvm_exit *ctx)
{
	count_exit(ctx->isa, ctx->exit_reason, ctx->vcpu_id, 1);
	return 0;
}

/*
 * The exit reason the kvm_exit record would carry (kvm's get_exit_info), read
 * through the structs of lib/kvm_internals.bpf.h; where they are gone the load
 * fails and the exporter falls back to count_kvm_exit.
 * SVM: vmcb->control.exit_code; VMX: vcpu_vmx.exit_reason.full, masked as
 * the counters key it. Every read is a probe read, valid on both hooks: on
 * tp_btf `vcpu` is a checked BTF pointer, on raw_tp a plain number. Returns
 * nonzero when it cannot be read, rather than a reason that would be wrong.
 */
static __always_inline int read_exit_reason(struct kvm_vcpu *vcpu, __u32 isa, __u32 *reason)
{
	if (btf_vendor_isa == KVM_EXIT_ISA_SVM && isa == KVM_EXIT_ISA_SVM) {
		struct vcpu_svm *svm = kvm_to_svm(vcpu);
		struct vmcb *vmcb;

		if (bpf_core_read(&vmcb, sizeof(vmcb), &svm->vmcb) != 0)
			return -1;
		return bpf_core_read(reason, sizeof(*reason), &vmcb->control.exit_code);
	}
	if (btf_vendor_isa == KVM_EXIT_ISA_VMX && isa == KVM_EXIT_ISA_VMX) {
		struct vcpu_vmx *vmx = kvm_to_vmx(vcpu);

		if (bpf_core_read(reason, sizeof(*reason), &vmx->exit_reason.full) != 0)
			return -1;
		*reason &= KVM_EXIT_VMX_BASIC_REASON_MASK | KVM_EXIT_VMX_FAILED_VMENTRY;
		return 0;
	}
	return -1;
}

/* kvm_exit's TP_PROTO(struct kvm_vcpu *vcpu, u32 isa). */
static __always_inline int handle_kvm_exit(enum raw_tp_hook hook, unsigned long long *ctx,
					   struct kvm_vcpu *vcpu, __u32 isa)
{
	__u32 reason, vcpu_id;

	/*
	 * Never NULL in KVM, but Linux 6.12 types tp_btf pointer arguments as
	 * maybe-NULL and refuses a load through one unchecked (vcpu->vcpu_id
	 * below); kvm_to_svm/kvm_to_vmx check before their arithmetic.
	 */
	if (!vcpu || read_exit_reason(vcpu, isa, &reason) != 0) {
		percpu_array_inc(&lost, KVM_EXIT_LOST_REASON_UNREADABLE);
		return 0;
	}
	/* Only per-vCPU counting keys by it: spare raw_tp a probe read otherwise. */
	vcpu_id = 0;
	if (count_per_vcpu) {
		if (hook == HOOK_TP_BTF) {
			vcpu_id = vcpu->vcpu_id; /* a BTF load, no helper call */
		} else if (bpf_core_read(&vcpu_id, sizeof(vcpu_id), &vcpu->vcpu_id) != 0) {
			percpu_array_inc(&lost, KVM_EXIT_LOST_REASON_UNREADABLE);
			return 0;
		}
	}
	count_exit(isa, reason, vcpu_id, 0);
	return 0;
}

RAW_TP_PROGRAMS(count_kvm_exit, kvm_exit, handle_kvm_exit, vcpu, isa)

/* The kvm_entry that ends each exit, one program per hook, loaded with its exit program. */
SEC("tp/kvm/kvm_entry")
int time_kvm_entry(void *ctx)
{
	end_exit_timing();
	return 0;
}

/* kvm_entry's TP_PROTO starts with the vCPU (6.12 adds an argument after it); unused. */
static __always_inline int handle_kvm_entry(enum raw_tp_hook hook, unsigned long long *ctx,
					    struct kvm_vcpu *vcpu)
{
	end_exit_timing();
	return 0;
}

RAW_TP_PROGRAMS(time_kvm_entry, kvm_entry, handle_kvm_entry, vcpu)

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

/*
 * The tp_btf and raw_tp twins of the drill-down programs: the same items,
 * read from the tracepoint's arguments (TP_PROTO in arch/x86/kvm/trace.h and
 * include/trace/events/kvm.h) instead of its trace record. None of them is a
 * pointer, so both hooks read them alike.
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

RAW_TP_PROGRAMS(count_kvm_pio, kvm_pio, handle_kvm_pio, rw, port)
RAW_TP_PROGRAMS(count_kvm_msr, kvm_msr, handle_kvm_msr, write, ecx, data, exception)
RAW_TP_PROGRAMS(count_kvm_mmio, kvm_mmio, handle_kvm_mmio, type, len, gpa)
RAW_TP_PROGRAMS(count_kvm_hypercall, kvm_hypercall, handle_kvm_hypercall, nr)
RAW_TP_PROGRAMS(count_kvm_userspace_exit, kvm_userspace_exit, handle_kvm_userspace_exit, reason,
		ret)
