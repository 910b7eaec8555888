/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * What the exit program (exit_count.bpf.c) and the kvm_entry programs
 * (exit_timing.bpf.c) share to time each exit: the per-thread slot an exit is
 * stamped into, the counts of exits whose interval was lost, and the stamp
 * itself. BPF side only.
 *
 * The two maps are defined once, in exit_timing.bpf.c, the file that owns
 * the timing; every other file sees the extern declarations below, and
 * `bpftool gen object` (libbpf's static linker) resolves them to that one
 * definition, so the linked kvm_exit.bpf.o has one exit_slots and one
 * timing_lost. The linker insists that an extern map repeat the definition
 * exactly (type, key, value, max_entries, flags): each map's definition is
 * therefore one typedef here, used by the definition and the declaration
 * alike, and cannot drift.
 */
#ifndef KVM_EXIT_EXPORTER_BPF_EXIT_TIMING_BPF_H
#define KVM_EXIT_EXPORTER_BPF_EXIT_TIMING_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "kvm_exit.h"
#include "counter_shards.bpf.h"
#include "lib/maps.bpf.h"

/*
 * The pending exit of a vCPU thread; start_ns == 0: none. BPF side only.
 * `element` is where the exit was counted (exit_counters, shard of the exit's
 * CPU; 0: the overflow table): its handling time goes to the same element of
 * exit_time_ns, whichever CPU the entry runs on (any shard sums right).
 */
struct exit_slot {
	__u64 start_ns;
	__u32 isa;
	__u32 exit_reason;
	__u32 element;
	__u32 epoch; /* counter_epoch at the exit: a changed one means `element` may be reused */
};

typedef struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct exit_slot);
} exit_slots_map;

typedef struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KVM_EXIT_TIMING_LOST_NR);
	__type(key, __u32);
	__type(value, __u64);
} timing_lost_map;

extern exit_slots_map exit_slots SEC(".maps");
extern timing_lost_map timing_lost SEC(".maps");

/*
 * Stamps the exit of (isa, reason), counted at `element` as valid in counter
 * epoch `epoch`, into the current thread's slot; its kvm_entry completes it.
 */
static __always_inline void start_exit_timing(__u32 isa, __u32 reason, __u32 element,
					      __u32 epoch)
{
	struct exit_slot *slot = bpf_task_storage_get(&exit_slots, bpf_get_current_task_btf(), 0,
						      BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!slot) {
		percpu_array_inc(&timing_lost, KVM_EXIT_TIMING_NO_STORAGE);
		return;
	}
	if (slot->start_ns != 0)
		percpu_array_inc(&timing_lost, KVM_EXIT_TIMING_OVERWRITTEN);
	slot->isa = isa;
	slot->exit_reason = reason;
	slot->element = element;
	slot->epoch = epoch;
	slot->start_ns = bpf_ktime_get_ns();
}

#endif /* KVM_EXIT_EXPORTER_BPF_EXIT_TIMING_BPF_H */
