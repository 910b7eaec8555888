// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Variants for the per-exit cost investigation (bench/exit_cost/README.md).
 * Not used by the exporter; exit_cost_loader loads exactly one of these
 * programs (the others are not loaded):
 *
 *   empty      tp/kvm/kvm_exit, returns at once: the cost of having any
 *              tracepoint program at all (perf trace record + BPF dispatch)
 *   empty_raw  raw_tp/kvm_exit, returns at once: the same for a raw tracepoint
 *   ours_btf   tp_btf/kvm_exit with ours' map and key (struct vm_exit_key,
 *              per-CPU hash, plain increment): the exit reason is read from
 *              the vCPU (SVM: vmcb->control.exit_code; VMX: exit_reason.full)
 *              instead of from the perf trace record, so the tracepoint's
 *              record is never built.
 *   ours_key8  tp/kvm/kvm_exit like ours, but one __u64 key (pack_key below)
 *              in place of the 16-byte struct vm_exit_key
 *   ours_btf_key8  both: tp_btf and the __u64 key
 *   ours_cache     tp/kvm/kvm_exit like ours, with fewer lookups: a per-CPU
 *              array slot owned by one (tgid, isa) holds a count per exit
 *              reason (< EXIT_CACHE_REASONS); exits of that VM on that CPU
 *              are counted there (one array lookup, no hashing), all others
 *              as ours does. A CPU's slot is claimed by the first VM that
 *              exits there and kept (a real design would let user space
 *              read the slots, add them to the owner's totals and release
 *              them when the VM ends); it only measures the hit path.
 *   ours_btf_cache the same on tp_btf
 *   floor_btf  tp_btf, the least any tp_btf design that counts by reason
 *              must do: read the exit reason as bpf/kvm_exit.bpf.c does
 *              (two checked probe reads on SVM) and add one to this CPU's
 *              count for it in a per-CPU array; no VM attribution at all
 *   floor_btf_vmx  floor_btf on VMX (kvm_intel): one checked probe read
 *              of vcpu_vmx.exit_reason.full, then the same per-CPU add
 *   floor_timed    floor_btf plus the least a design that times each exit
 *              must add (issue 13): the interval spans a vCPU thread's exit
 *              and its next kvm_entry, possibly on another CPU, so per-thread
 *              state: a task-storage slot stamped at the exit (clock read),
 *              and a tp_btf/kvm_entry program (floor_timed_entry, attached
 *              with it) that reads the clock and adds the interval to a
 *              per-CPU sum per reason; no histogram, no VM attribution
 *
 * The variants count as ours does, except that a lost creation race (two
 * CPUs creating the same key at once) loses that one exit.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "kvm_exit.h"
#include "kvm_internals.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u8 count_per_vcpu = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct vm_exit_key);
	__type(value, __u64);
} variant_vm_exits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} variant_vm_exits8 SEC(".maps");

/* The tracepoint record, as ours reads it (see bpf/kvm_exit.bpf.c). */
struct trace_event_raw_kvm_exit {
	unsigned int exit_reason;
	__u32 isa;
	unsigned int vcpu_id;
} __attribute__((preserve_access_index));

/*
 * One __u64 key: tgid in the high half; the low half holds isa (bits 30-31),
 * the VMX failed-entry flag (bit 29) and the exit reason (bits 0-28: SVM
 * codes are < 0x500 but for SVM_EXIT_ERR, VMX basic reasons < 0x10000).
 * Per-vCPU counting would need vcpu_id bits too (tgid fits in 22 bits,
 * pid_max <= 4194304), which this benchmark variant leaves out.
 */
static __always_inline __u64 pack_key(__u32 tgid, __u32 isa, __u32 reason)
{
	__u32 low = (isa << 30) | (reason & 0x1fffffffU);

	if (isa == KVM_EXIT_ISA_VMX && (reason & KVM_EXIT_VMX_FAILED_VMENTRY))
		low |= 1U << 29;
	return ((__u64)tgid << 32) | low;
}

static __always_inline void count_key(void *map, const void *key)
{
	static const __u64 one = 1;
	__u64 *count = bpf_map_lookup_elem(map, key);

	if (count) {
		*count += 1;
		return;
	}
	bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
}

#define EXIT_CACHE_REASONS 256

struct exit_cache {
	__u32 tgid; /* 0: unclaimed */
	__u32 isa;
	__u64 count[EXIT_CACHE_REASONS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exit_cache);
} variant_exit_cache SEC(".maps");

/* Counts in this CPU's cache slot if (tgid, isa) owns it (or claims it now);
 * returns 0 when counted there. */
static __always_inline int count_cached(__u32 tgid, __u32 isa, __u32 reason)
{
	__u32 zero = 0;
	struct exit_cache *cache = bpf_map_lookup_elem(&variant_exit_cache, &zero);

	if (!cache || reason >= EXIT_CACHE_REASONS)
		return -1;
	if (cache->tgid != tgid || cache->isa != isa) {
		if (cache->tgid != 0)
			return -1;
		cache->tgid = tgid;
		cache->isa = isa;
	}
	/* clang checks the bound on a copy of reason: mask the one used, behind
	 * a barrier so that the mask is not optimised away. */
	barrier_var(reason);
	cache->count[reason & (EXIT_CACHE_REASONS - 1)] += 1;
	return 0;
}

/* floor_btf's counts; laid out like struct exit_cache so the loader reads both alike. */
struct reason_counts {
	__u64 unused;
	__u64 count[EXIT_CACHE_REASONS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct reason_counts);
} variant_reason_counts SEC(".maps");

SEC("tp/kvm/kvm_exit")
int empty(void *ctx)
{
	return 0;
}

SEC("raw_tp/kvm_exit")
int empty_raw(void *ctx)
{
	return 0;
}

static __always_inline __u32 exit_reason_of(struct kvm_vcpu *vcpu, __u32 isa)
{
	if (isa == KVM_EXIT_ISA_SVM && bpf_core_type_exists(struct vcpu_svm)) {
		struct vcpu_svm *svm = (void *)vcpu - bpf_core_field_offset(struct vcpu_svm, vcpu);

		return BPF_CORE_READ(svm, vmcb, control.exit_code);
	}
	if (isa == KVM_EXIT_ISA_VMX && bpf_core_type_exists(struct vcpu_vmx)) {
		struct vcpu_vmx *vmx = (void *)vcpu - bpf_core_field_offset(struct vcpu_vmx, vcpu);

		return BPF_CORE_READ(vmx, exit_reason.full) &
		       (KVM_EXIT_VMX_BASIC_REASON_MASK | KVM_EXIT_VMX_FAILED_VMENTRY);
	}
	return 0xffffffffU;
}

/*
 * floor_btf's work: the SVM exit reason read as bpf/kvm_exit.bpf.c does (two
 * checked probe reads), counted in this CPU's per-reason array. Returns -1
 * when the reason cannot be read.
 */
static __always_inline int floor_count(struct kvm_vcpu *vcpu, __u32 *reason)
{
	struct vcpu_svm *svm = (void *)vcpu - bpf_core_field_offset(struct vcpu_svm, vcpu);
	struct vmcb *vmcb;
	__u32 zero = 0;
	struct reason_counts *counts;

	if (bpf_core_read(&vmcb, sizeof(vmcb), &svm->vmcb) != 0 ||
	    bpf_core_read(reason, sizeof(*reason), &vmcb->control.exit_code) != 0)
		return -1;
	counts = bpf_map_lookup_elem(&variant_reason_counts, &zero);
	if (counts)
		counts->count[*reason & (EXIT_CACHE_REASONS - 1)] += 1;
	return 0;
}

SEC("tp_btf/kvm_exit")
int BPF_PROG(floor_btf, struct kvm_vcpu *vcpu, __u32 isa)
{
	__u32 reason;

	floor_count(vcpu, &reason);
	return 0;
}

/*
 * floor_btf on VMX (kvm_intel): the exit reason read as bpf/kvm_exit.bpf.c
 * does there (one checked probe read of vcpu_vmx.exit_reason.full), counted
 * alike. A program of its own so that floor_btf's SVM path stays as measured.
 */
SEC("tp_btf/kvm_exit")
int BPF_PROG(floor_btf_vmx, struct kvm_vcpu *vcpu, __u32 isa)
{
	struct vcpu_vmx *vmx = (void *)vcpu - bpf_core_field_offset(struct vcpu_vmx, vcpu);
	__u32 zero = 0;
	__u32 reason;
	struct reason_counts *counts;

	if (bpf_core_read(&reason, sizeof(reason), &vmx->exit_reason.full) != 0)
		return 0;
	counts = bpf_map_lookup_elem(&variant_reason_counts, &zero);
	if (counts)
		counts->count[reason & (EXIT_CACHE_REASONS - 1)] += 1;
	return 0;
}

SEC("tp_btf/kvm_exit")
int BPF_PROG(ours_btf, struct kvm_vcpu *vcpu, __u32 isa)
{
	struct vm_exit_key key;

	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.vcpu_id = count_per_vcpu ? (__u32)vcpu->vcpu_id : KVM_EXIT_ALL_VCPUS;
	key.isa = isa;
	key.exit_reason = exit_reason_of(vcpu, isa);
	count_key(&variant_vm_exits, &key);
	return 0;
}

SEC("tp/kvm/kvm_exit")
int ours_key8(struct trace_event_raw_kvm_exit *ctx)
{
	__u32 isa = ctx->isa;
	__u32 reason = ctx->exit_reason;
	__u64 key;

	if (isa == KVM_EXIT_ISA_VMX)
		reason &= KVM_EXIT_VMX_BASIC_REASON_MASK | KVM_EXIT_VMX_FAILED_VMENTRY;
	key = pack_key(bpf_get_current_pid_tgid() >> 32, isa, reason);
	count_key(&variant_vm_exits8, &key);
	return 0;
}

SEC("tp_btf/kvm_exit")
int BPF_PROG(ours_btf_key8, struct kvm_vcpu *vcpu, __u32 isa)
{
	__u64 key = pack_key(bpf_get_current_pid_tgid() >> 32, isa, exit_reason_of(vcpu, isa));

	count_key(&variant_vm_exits8, &key);
	return 0;
}

SEC("tp/kvm/kvm_exit")
int ours_cache(struct trace_event_raw_kvm_exit *ctx)
{
	__u32 isa = ctx->isa;
	__u32 reason = ctx->exit_reason;
	struct vm_exit_key key;

	if (isa == KVM_EXIT_ISA_VMX)
		reason &= KVM_EXIT_VMX_BASIC_REASON_MASK | KVM_EXIT_VMX_FAILED_VMENTRY;
	key.tgid = bpf_get_current_pid_tgid() >> 32;
	if (!count_per_vcpu && count_cached(key.tgid, isa, reason) == 0)
		return 0;
	key.vcpu_id = count_per_vcpu ? ctx->vcpu_id : KVM_EXIT_ALL_VCPUS;
	key.isa = isa;
	key.exit_reason = reason;
	count_key(&variant_vm_exits, &key);
	return 0;
}

SEC("tp_btf/kvm_exit")
int BPF_PROG(ours_btf_cache, struct kvm_vcpu *vcpu, __u32 isa)
{
	__u32 reason = exit_reason_of(vcpu, isa);
	struct vm_exit_key key;

	key.tgid = bpf_get_current_pid_tgid() >> 32;
	if (!count_per_vcpu && count_cached(key.tgid, isa, reason) == 0)
		return 0;
	key.vcpu_id = count_per_vcpu ? (__u32)vcpu->vcpu_id : KVM_EXIT_ALL_VCPUS;
	key.isa = isa;
	key.exit_reason = reason;
	count_key(&variant_vm_exits, &key);
	return 0;
}

/* floor_timed: the thread's pending exit. */
struct floor_slot {
	__u64 start_ns;
	__u32 reason;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct floor_slot);
} variant_floor_slots SEC(".maps");

/* floor_timed's sums of ns per reason, laid out like struct reason_counts. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct reason_counts);
} variant_reason_ns SEC(".maps");

SEC("tp_btf/kvm_exit")
int BPF_PROG(floor_timed, struct kvm_vcpu *vcpu, __u32 isa)
{
	struct floor_slot *slot;
	__u32 reason;

	if (floor_count(vcpu, &reason) != 0)
		return 0;
	slot = bpf_task_storage_get(&variant_floor_slots, bpf_get_current_task_btf(), 0,
				    BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (slot) {
		slot->start_ns = bpf_ktime_get_ns();
		slot->reason = reason;
	}
	return 0;
}

SEC("tp_btf/kvm_entry")
int BPF_PROG(floor_timed_entry)
{
	struct floor_slot *slot =
		bpf_task_storage_get(&variant_floor_slots, bpf_get_current_task_btf(), 0, 0);
	struct reason_counts *sums;
	__u32 zero = 0;

	if (!slot || slot->start_ns == 0)
		return 0;
	sums = bpf_map_lookup_elem(&variant_reason_ns, &zero);
	if (sums)
		sums->count[slot->reason & (EXIT_CACHE_REASONS - 1)] +=
			bpf_ktime_get_ns() - slot->start_ns;
	slot->start_ns = 0;
	return 0;
}
