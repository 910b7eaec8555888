// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The exporter's own state, kept in the kernel beside the counts it belongs
 * to (kvm_exit.h, "Pinned state"): no program uses these maps. They are part
 * of the object so that they are created, sized and pinned with the others,
 * and a restarted exporter finds its bookkeeping where it finds its counts.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "kvm_exit.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exporter_state);
} exporter_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KVM_EXIT_OVERFLOW_CAPACITY);
	__type(key, struct host_exit_key);
	__type(value, __u64);
} retired_counts SEC(".maps");
