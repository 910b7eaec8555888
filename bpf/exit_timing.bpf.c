// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Exit handling time (config collector.exit_handling_time): how long KVM and
 * the VMM took to handle each exit, from the exit to the vCPU's next entry.
 *
 * The exit program (exit_count.bpf.c) stamps the exit into a per-thread slot
 * (task local storage: a vCPU thread can leave its CPU between exit and
 * entry, e.g. to handle an IO exit in the VMM), and the matching kvm_entry
 * program here (time_kvm_entry_btf, time_kvm_entry_raw or time_kvm_entry,
 * loaded with the exit program of the same hook) adds the interval to a
 * histogram per (isa, reason) and to the exit's counter in exit_time_ns, the
 * sharded twin of exit_counters: a VM's handling time is kept where its exits
 * are counted, with no map lookup by key. This file owns the maps
 * both sides share (exit_slots, timing_lost: see exit_timing.bpf.h).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "kvm_exit.h"
#include "counter_shards.bpf.h"
#include "exit_timing.bpf.h"
#include "lib/bits.bpf.h"
#include "lib/kvm_internals.bpf.h"
#include "lib/maps.bpf.h"
#include "lib/raw_tp.bpf.h"

/* The one definition of each map exit_timing.bpf.h declares. */
exit_slots_map exit_slots SEC(".maps");
timing_lost_map timing_lost SEC(".maps");

/* Not preallocated: a host pays per reason seen, not per possible CPU x capacity (kvm_exit.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, KVM_EXIT_TIME_HIST_CAPACITY);
	__type(key, struct host_exit_key);
	__type(value, struct exit_time_hist);
} exit_time_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE); /* the exporter reads it without a copy */
	__uint(max_entries, 16385); /* replaced: as exit_counters, or 1 when timing is off */
	__type(key, __u32);
	__type(value, __u64);
} exit_time_ns SEC(".maps");

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

/* What a new entry of exit_time_hist starts from. */
static const struct exit_time_hist empty_hist;

/* Completes the current thread's pending exit, if any: its interval goes into the maps. */
static __always_inline void end_exit_timing(void)
{
	struct exit_slot *slot =
		bpf_task_storage_get(&exit_slots, bpf_get_current_task_btf(), 0, 0);
	struct host_exit_key host_key;
	struct exit_time_hist *hist;
	__u32 bucket, element;
	__u64 ns;

	if (!slot || slot->start_ns == 0)
		return; /* no exit pending: the first entry of a thread, or one seen before attach */
	ns = bpf_ktime_get_ns() - slot->start_ns;
	slot->start_ns = 0;
	/* The exporter reused counters since the exit: this one may be another key's now. */
	element = slot->epoch == counter_epoch ? slot->element : 0;

	host_key.isa = slot->isa;
	host_key.exit_reason = slot->exit_reason;
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
	/* No counter (the exit went to the overflow table): its time is in the histogram only. */
	if (element != 0)
		sharded_add(&exit_time_ns, element, ns);
}

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
