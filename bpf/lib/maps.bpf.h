/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * Map helpers every program shares, in the style of libbpf-tools' maps.bpf.h:
 * the lookup-or-create of a hash entry, the add to a per-CPU array slot, and
 * the directory plus free list that hands each key its counter index.
 * BPF side only. Each is inlined: the map pointers become constants, so a
 * caller costs what the hand-written code did.
 */
#ifndef KVM_EXIT_EXPORTER_BPF_LIB_MAPS_BPF_H
#define KVM_EXIT_EXPORTER_BPF_LIB_MAPS_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <asm-generic/errno.h>

/*
 * The value at `key`, created from `init` when the map has no such key; NULL
 * when it cannot be created (the map is full). -EEXIST means another CPU
 * created it between the lookup and the update: the second lookup finds that
 * entry. A new entry of a per-CPU map starts as `init` on this CPU and at
 * zero on the others. The hot path is the first lookup alone.
 */
static __always_inline void *bpf_map_lookup_or_try_init(void *map, const void *key,
							const void *init)
{
	void *value = bpf_map_lookup_elem(map, key);
	long err;

	if (value)
		return value;
	err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	if (err && err != -EEXIST)
		return NULL;
	return bpf_map_lookup_elem(map, key);
}

/*
 * Adds one to the __u64 at `index` of an array map. A plain add, not an
 * atomic one: for per-CPU arrays, whose slot only this CPU writes (tracing
 * programs do not nest on one CPU but for a recursion the kernel skips).
 */
static __always_inline void percpu_array_inc(void *map, __u32 index)
{
	__u64 *count = bpf_map_lookup_elem(map, &index);

	if (count)
		*count += 1;
}

/*
 * The counter index `directory` (a hash, key -> __u32) holds for `key`; on
 * the key's first use, one taken from `free_list` (a stack or queue of
 * __u32 indexes that user space fills and refills) and written into the
 * directory. 0: none, the free list is empty or the directory full (user
 * space never hands out index 0).
 */
static __always_inline __u32 counter_index_of(void *directory, void *free_list, const void *key)
{
	__u32 *found = bpf_map_lookup_elem(directory, key);
	__u32 index;

	if (found)
		return *found;
	if (bpf_map_pop_elem(free_list, &index) != 0)
		return 0;
	if (bpf_map_update_elem(directory, key, &index, BPF_NOEXIST) != 0) {
		/* Another vCPU thread of the VM created it first, or the directory is full. */
		bpf_map_push_elem(free_list, &index, 0);
		found = bpf_map_lookup_elem(directory, key);
		return found ? *found : 0;
	}
	return index;
}

#endif /* KVM_EXIT_EXPORTER_BPF_LIB_MAPS_BPF_H */
