/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The sharded counter arrays the exit program (exit_count.bpf.c) and the
 * kvm_entry programs (exit_timing.bpf.c) add to: exit_counters and
 * exit_time_ns (kvm_exit.h says the layout). BPF side only.
 *
 * Why shards rather than a per-CPU array: a per-CPU array holds one value
 * per *possible* CPU, so its memory and the copy a scrape reads grow with
 * the host's width, not its VMs (50 MB of exit counters on a 384-thread
 * host, most of it for CPUs that never run a vCPU). A shard is a whole copy
 * of the counters that a group of CPUs shares (CPU mod shards), counted with
 * an atomic add; 16 copies cap the memory whatever the width, and keep the
 * CPUs of one busy VM from all adding to one cache line.
 *
 * The shard count, the counters per shard and the epoch are defined in
 * exit_count.bpf.c (the first two set by the exporter before load); this is
 * their declaration for every file, resolved by `bpftool gen object` to that
 * one definition.
 */
#ifndef KVM_EXIT_EXPORTER_BPF_COUNTER_SHARDS_BPF_H
#define KVM_EXIT_EXPORTER_BPF_COUNTER_SHARDS_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "kvm_exit.h"

/* Shards - 1 (shards: a power of two, at most KVM_EXIT_MAX_COUNTER_SHARDS). */
extern const volatile __u32 counter_shard_mask;
/* Counters per shard: vm_map_capacity + 1 (index 0 is never handed out). */
extern const volatile __u32 counter_stride;
/* Bumped by the exporter before it reuses the counters of ended VMs. */
extern __u32 counter_epoch;

/*
 * The element of counter `index` in this CPU's shard. The program runs with
 * migration off, so the CPU, and with it the shard, holds for the whole run.
 */
static __always_inline __u32 counter_element(__u32 index)
{
	return (bpf_get_smp_processor_id() & counter_shard_mask) * counter_stride + index;
}

/* Adds `n` to `element` of a sharded array: atomically, as other CPUs share the shard. */
static __always_inline void sharded_add(void *map, __u32 element, __u64 n)
{
	__u64 *value = bpf_map_lookup_elem(map, &element);

	if (value)
		__sync_fetch_and_add(value, n);
}

#endif /* KVM_EXIT_EXPORTER_BPF_COUNTER_SHARDS_BPF_H */
