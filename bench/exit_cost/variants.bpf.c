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
 *              must do: read the exit reason as bpf/exit_count.bpf.c does
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
 *   floor_timed_vmx  floor_timed on VMX (floor_btf_vmx's read), the same
 *              kvm_entry half
 *   ours_btf_task, ours_btf_pcpu, ours_btf_pcpu1, ours_btf_tasklocal
 *              issue 13: counting per (tgid, vCPU, reason) without a hash
 *              lookup per exit (counters in per-CPU arrays, a cached
 *              reason -> index mapping); see their comments below
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
#include "lib/kvm_internals.bpf.h"
#include "lib/maps.bpf.h"

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

/* The tracepoint record, as ours reads it (see bpf/exit_count.bpf.c). */
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
		struct vcpu_svm *svm = kvm_to_svm(vcpu);

		return BPF_CORE_READ(svm, vmcb, control.exit_code);
	}
	if (isa == KVM_EXIT_ISA_VMX && bpf_core_type_exists(struct vcpu_vmx)) {
		struct vcpu_vmx *vmx = kvm_to_vmx(vcpu);

		return BPF_CORE_READ(vmx, exit_reason.full) &
		       (KVM_EXIT_VMX_BASIC_REASON_MASK | KVM_EXIT_VMX_FAILED_VMENTRY);
	}
	return 0xffffffffU;
}

/*
 * floor_btf's work: the SVM exit reason read as bpf/exit_count.bpf.c does (two
 * checked probe reads), counted in this CPU's per-reason array. Returns -1
 * when the reason cannot be read.
 */
static __always_inline int floor_count(struct kvm_vcpu *vcpu, __u32 *reason)
{
	struct vcpu_svm *svm = kvm_to_svm(vcpu);
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
 * floor_count on VMX (kvm_intel): the exit reason read as bpf/exit_count.bpf.c
 * does there (one checked probe read of vcpu_vmx.exit_reason.full), counted
 * alike. A function of its own so that floor_count's SVM path stays as measured.
 */
static __always_inline int floor_count_vmx(struct kvm_vcpu *vcpu, __u32 *reason)
{
	struct vcpu_vmx *vmx = kvm_to_vmx(vcpu);
	__u32 zero = 0;
	struct reason_counts *counts;

	if (bpf_core_read(reason, sizeof(*reason), &vmx->exit_reason.full) != 0)
		return -1;
	counts = bpf_map_lookup_elem(&variant_reason_counts, &zero);
	if (counts)
		counts->count[*reason & (EXIT_CACHE_REASONS - 1)] += 1;
	return 0;
}

SEC("tp_btf/kvm_exit")
int BPF_PROG(floor_btf_vmx, struct kvm_vcpu *vcpu, __u32 isa)
{
	__u32 reason;

	floor_count_vmx(vcpu, &reason);
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

/* floor_timed's stamp: the exit's reason and time in the thread's slot. */
static __always_inline void floor_stamp(__u32 reason)
{
	struct floor_slot *slot = bpf_task_storage_get(
		&variant_floor_slots, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (slot) {
		slot->start_ns = bpf_ktime_get_ns();
		slot->reason = reason;
	}
}

SEC("tp_btf/kvm_exit")
int BPF_PROG(floor_timed, struct kvm_vcpu *vcpu, __u32 isa)
{
	__u32 reason;

	if (floor_count(vcpu, &reason) == 0)
		floor_stamp(reason);
	return 0;
}

/* floor_timed on VMX (kvm_intel), with the same kvm_entry half. */
SEC("tp_btf/kvm_exit")
int BPF_PROG(floor_timed_vmx, struct kvm_vcpu *vcpu, __u32 isa)
{
	__u32 reason;

	if (floor_count_vmx(vcpu, &reason) == 0)
		floor_stamp(reason);
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

/*
 * ours_btf_task: counting per (tgid, vCPU, reason) without a hash lookup per
 * exit (issue 13). Counters live in a per-CPU array (variant_task_counters),
 * one element per (tgid, vCPU, isa, reason) in use; which element is which
 * is the directory (variant_task_dir, a hash from struct vm_exit_key to the
 * element's index), written once per key, on its first exit. Indexes come
 * from a free list user space fills (variant_task_free; it would also take
 * back the indexes of ended VMs). Each vCPU thread caches, in task storage,
 * the index per reason it has used (TASK_SLOT_REASONS entries, direct-mapped
 * by reason & (TASK_SLOT_REASONS - 1), each tagged with its full reason), so
 * its exits cost a task-storage lookup and an array lookup. Every exit is in
 * a counter user space can read and attribute at any time (the directory and
 * the array), a thread that ends leaves its counts in the array, and an exit
 * that finds no index (free list empty, directory full, a second vCPU run by
 * one thread, no task storage) is counted in ours' hash instead.
 * The directory is keyed by the real vCPU id (per-vCPU counting), whatever
 * count_per_vcpu says: the fast path is the same either way.
 */
struct task_struct;

#define TASK_SLOT_REASONS 128
#define TASK_COUNTERS 16384

struct task_slot_entry {
	__u32 reason;
	__u32 index; /* 0: none yet (index 0 of the array is never handed out) */
};

struct task_slot {
	__u32 vcpu_plus1; /* vCPU id + 1 of the vCPU this thread runs; 0: none yet */
	__u32 epoch;      /* task_epoch when the entries were filled */
	struct task_slot_entry entry[TASK_SLOT_REASONS];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_slot);
} variant_task_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TASK_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} variant_task_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TASK_COUNTERS);
	__type(key, struct vm_exit_key);
	__type(value, __u32);
} variant_task_dir SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, TASK_COUNTERS);
	__type(value, __u32);
} variant_task_free SEC(".maps");

/*
 * Bumped by user space when it wants every thread to look its indexes up
 * again (e.g. after freeing indexes, so that threads parked on ours' hash
 * get one). Indexes of a live VM are never taken back; those of an ended VM
 * are only handed out again once its threads are gone, so no cached entry
 * can point at them.
 */
__u32 task_epoch = 0;

/*
 * The array index of `key`, from the directory or newly taken; 0: none. The
 * exporter's own helper (bpf/lib/maps.bpf.h), on this variant's directory and
 * free list; out of line, as the slow path it is.
 */
static __noinline __u32 task_index(struct vm_exit_key *key)
{
	return counter_index_of(&variant_task_dir, &variant_task_free, key);
}

/* The slow path: resolves (and caches in `entries`, if given) the index for the exit. */
static __noinline __u32 task_resolve(struct task_slot_entry *entries, __u32 vcpu_id, __u32 isa,
				     __u32 reason)
{
	struct vm_exit_key key;
	__u32 index;

	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.vcpu_id = vcpu_id;
	key.isa = isa;
	key.exit_reason = reason;
	index = task_index(&key);
	if (index == 0) {
		count_key(&variant_vm_exits, &key);
		return 0;
	}
	if (entries) {
		__u32 i = reason & (TASK_SLOT_REASONS - 1);

		entries[i].reason = reason;
		entries[i].index = index;
	}
	return index;
}

/*
 * The counter index of the exit from a thread's or a CPU's cache `entries`,
 * resolved (and cached) through the directory on a miss; 0 when there is
 * none (task_resolve then counted the exit in ours' hash).
 */
static __always_inline __u32 cached_index(struct task_slot_entry *entries, __u32 vcpu_id,
					  __u32 isa, __u32 reason)
{
	struct task_slot_entry *entry;
	__u32 i = reason & (TASK_SLOT_REASONS - 1);
	__u32 index;

	barrier_var(i);
	entry = &entries[i & (TASK_SLOT_REASONS - 1)];
	index = entry->index;
	if (entry->reason != reason || index == 0)
		index = task_resolve(entries, vcpu_id, isa, reason);
	return index;
}

/* Adds one to counter `index` of variant_task_counters. */
static __always_inline void count_index(__u32 index)
{
	__u64 *count = bpf_map_lookup_elem(&variant_task_counters, &index);

	if (count)
		*count += 1;
}

SEC("tp_btf/kvm_exit")
int BPF_PROG(ours_btf_task, struct kvm_vcpu *vcpu, __u32 isa)
{
	__u32 reason = exit_reason_of(vcpu, isa);
	__u32 vcpu_id = (__u32)vcpu->vcpu_id;
	struct task_slot *slot;
	__u32 index;

	slot = bpf_task_storage_get(&variant_task_slots, bpf_get_current_task_btf(), 0,
				    BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!slot) {
		task_resolve(NULL, vcpu_id, isa, reason);
		return 0;
	}
	if (slot->vcpu_plus1 != vcpu_id + 1 || slot->epoch != task_epoch) {
		if (slot->vcpu_plus1 != 0 && slot->vcpu_plus1 != vcpu_id + 1) {
			/* A second vCPU on this thread: exact, uncached. */
			task_resolve(NULL, vcpu_id, isa, reason);
			return 0;
		}
		__builtin_memset(slot->entry, 0, sizeof(slot->entry));
		slot->vcpu_plus1 = vcpu_id + 1;
		slot->epoch = task_epoch;
	}
	index = cached_index(slot->entry, vcpu_id, isa, reason);
	if (index != 0)
		count_index(index);
	return 0;
}

/*
 * ours_btf_pcpu: ours_btf_task's counters, directory and free list, but the
 * reason -> index cache is per CPU (a per-CPU array slot, no task storage),
 * tagged with the (tgid, vCPU) whose indexes it holds and task_epoch. An exit
 * of another thread refills it (through the directory). The cache holds only
 * indexes, never counts, so unlike ours_btf_cache nothing is parked in it: a
 * stale or lost cache costs speed, not counts. Indexes of an ended VM may
 * only be handed out again after user space has bumped task_epoch and waited
 * for the programs running then to finish (a synchronize_rcu(), e.g. by
 * updating a map-in-map), as a CPU's cache may still name them. Tracepoint
 * programs run with preemption off on 6.1, so two exits never interleave on
 * one CPU's cache.
 */
struct pcpu_slot {
	__u32 tgid;
	__u32 vcpu_plus1;
	__u32 epoch;
	__u32 unused;
	struct task_slot_entry entry[TASK_SLOT_REASONS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pcpu_slot);
} variant_pcpu_slots SEC(".maps");

SEC("tp_btf/kvm_exit")
int BPF_PROG(ours_btf_pcpu, struct kvm_vcpu *vcpu, __u32 isa)
{
	__u32 reason = exit_reason_of(vcpu, isa);
	__u32 vcpu_id = (__u32)vcpu->vcpu_id;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct pcpu_slot *slot;
	__u32 index, zero = 0;

	slot = bpf_map_lookup_elem(&variant_pcpu_slots, &zero);
	if (!slot) {
		task_resolve(NULL, vcpu_id, isa, reason);
		return 0;
	}
	if (slot->tgid != tgid || slot->vcpu_plus1 != vcpu_id + 1 || slot->epoch != task_epoch) {
		__builtin_memset(slot->entry, 0, sizeof(slot->entry));
		slot->tgid = tgid;
		slot->vcpu_plus1 = vcpu_id + 1;
		slot->epoch = task_epoch;
	}
	index = cached_index(slot->entry, vcpu_id, isa, reason);
	if (index != 0)
		count_index(index);
	return 0;
}

/*
 * ours_btf_pcpu1: ours_btf_pcpu with one map lookup per exit instead of two:
 * the per-CPU cache and the counters share one per-CPU array element, whose
 * size a per-CPU value limits to 32 KB (PCPU_MIN_UNIT_SIZE), so there are
 * PCPU1_COUNTERS counters (indexes 1..PCPU1_COUNTERS-1 from the same free
 * list and directory; a design would put the indexes past them in
 * ours_btf_pcpu's array, at its cost). The cache tag is one __u64,
 * tgid << 32 | vCPU id (tgid 0 never runs a vCPU).
 */
#define PCPU1_COUNTERS 3840

struct pcpu1_slot {
	__u64 tag;
	__u32 epoch;
	__u32 unused;
	struct task_slot_entry entry[TASK_SLOT_REASONS];
	__u64 count[PCPU1_COUNTERS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pcpu1_slot);
} variant_pcpu1_slots SEC(".maps");

SEC("tp_btf/kvm_exit")
int BPF_PROG(ours_btf_pcpu1, struct kvm_vcpu *vcpu, __u32 isa)
{
	__u32 reason = exit_reason_of(vcpu, isa);
	__u32 vcpu_id = (__u32)vcpu->vcpu_id;
	__u64 tag = (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | vcpu_id;
	struct pcpu1_slot *slot;
	__u32 index, zero = 0;

	slot = bpf_map_lookup_elem(&variant_pcpu1_slots, &zero);
	if (!slot) {
		task_resolve(NULL, vcpu_id, isa, reason);
		return 0;
	}
	if (slot->tag != tag || slot->epoch != task_epoch) {
		__builtin_memset(slot->entry, 0, sizeof(slot->entry));
		slot->tag = tag;
		slot->epoch = task_epoch;
	}
	index = cached_index(slot->entry, vcpu_id, isa, reason);
	if (index == 0)
		return 0;
	barrier_var(index);
	if (index < PCPU1_COUNTERS)
		slot->count[index] += 1;
	return 0;
}

/*
 * ours_btf_tasklocal: the cheapest per-thread design, for comparison: the
 * counts themselves live in the thread's task storage (a count per reason,
 * direct-mapped and tagged as above), and a tp_btf/sched_process_exit program
 * (ours_btf_tasklocal_exit, attached with it) adds them to ours' hash when
 * the thread ends. Exits that find their entry taken by another reason, or a
 * thread on a second vCPU, go to ours' hash at once. Not exact at scrape
 * time: a live thread's counts are in its task storage, which user space on
 * 6.1 can only read by pidfd of a thread-group leader (or with a task
 * iterator, racing the flush at thread exit).
 */
struct task_local_entry {
	__u32 reason;
	__u32 unused;
	__u64 count;
};

struct task_local {
	__u32 vcpu_plus1;
	__u32 isa;
	struct task_local_entry entry[TASK_SLOT_REASONS];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_local);
} variant_task_local SEC(".maps");

SEC("tp_btf/kvm_exit")
int BPF_PROG(ours_btf_tasklocal, struct kvm_vcpu *vcpu, __u32 isa)
{
	__u32 reason = exit_reason_of(vcpu, isa);
	__u32 vcpu_id = (__u32)vcpu->vcpu_id;
	struct task_local *local;
	struct task_local_entry *entry;
	struct vm_exit_key key;
	__u32 i;

	local = bpf_task_storage_get(&variant_task_local, bpf_get_current_task_btf(), 0,
				     BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (local) {
		if (local->vcpu_plus1 == 0) {
			local->vcpu_plus1 = vcpu_id + 1;
			local->isa = isa;
		}
		i = reason & (TASK_SLOT_REASONS - 1);
		barrier_var(i);
		entry = &local->entry[i & (TASK_SLOT_REASONS - 1)];
		if (local->vcpu_plus1 == vcpu_id + 1 && (entry->count == 0 || entry->reason == reason)) {
			entry->reason = reason;
			entry->count += 1;
			return 0;
		}
	}
	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.vcpu_id = vcpu_id;
	key.isa = isa;
	key.exit_reason = reason;
	count_key(&variant_vm_exits, &key);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(ours_btf_tasklocal_exit, struct task_struct *task)
{
	struct task_local *local =
		bpf_task_storage_get(&variant_task_local, bpf_get_current_task_btf(), 0, 0);
	struct vm_exit_key key;
	__u32 i;

	if (!local || local->vcpu_plus1 == 0)
		return 0;
	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.vcpu_id = local->vcpu_plus1 - 1;
	key.isa = local->isa;
	for (i = 0; i < TASK_SLOT_REASONS; i++) {
		__u64 n = local->entry[i].count;
		__u64 *count;

		if (n == 0)
			continue;
		key.exit_reason = local->entry[i].reason;
		count = bpf_map_lookup_elem(&variant_vm_exits, &key);
		if (count)
			*count += n;
		else
			bpf_map_update_elem(&variant_vm_exits, &key, &n, BPF_NOEXIST);
		local->entry[i].count = 0;
	}
	return 0;
}
