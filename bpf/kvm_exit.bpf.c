// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Counts every KVM VM exit by (VMM process, vCPU, isa, exit reason).
 *
 * Hot path: one per-CPU hash lookup and a plain increment. Per-CPU values
 * need no atomics and no locks; the exporter sums them at scrape time.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <asm-generic/errno.h>

#include "kvm_exit.h"

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

/* Set by the exporter before load (config: granularity.per_vcpu). */
const volatile __u8 count_per_vcpu = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384); /* replaced at load time by config: bpf.vm_map_capacity */
	__type(key, struct vm_exit_key);
	__type(value, __u64);
} vm_exits SEC(".maps");

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

/*
 * Adds one to the per-CPU counter at `key`, creating it if needed.
 * Returns 0, or -E2BIG when the map is full and the key is not in it.
 */
static __always_inline int count_one(void *map, const void *key)
{
	static const __u64 one = 1;
	__u64 *count = bpf_map_lookup_elem(map, key);
	long err;

	if (count) {
		*count += 1;
		return 0;
	}
	err = bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
	if (err == -EEXIST) {
		/* Another CPU created the entry first; our CPU's slot starts at zero. */
		count = bpf_map_lookup_elem(map, key);
		if (count) {
			*count += 1;
			return 0;
		}
	}
	return err == -EEXIST ? 0 : (int)err;
}

SEC("tp/kvm/kvm_exit")
int count_kvm_exit(struct trace_event_raw_kvm_exit *ctx)
{
	__u32 isa = ctx->isa;
	__u32 reason = ctx->exit_reason;
	struct vm_exit_key key;
	struct host_exit_key host_key;

	if (isa == KVM_EXIT_ISA_VMX)
		reason &= KVM_EXIT_VMX_BASIC_REASON_MASK | KVM_EXIT_VMX_FAILED_VMENTRY;

	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.vcpu_id = count_per_vcpu ? ctx->vcpu_id : KVM_EXIT_ALL_VCPUS;
	key.isa = isa;
	key.exit_reason = reason;
	if (count_one(&vm_exits, &key) == 0)
		return 0;

	/* vm_exits is full: keep the exit in the host totals. */
	host_key.isa = isa;
	host_key.exit_reason = reason;
	if (count_one(&host_overflow, &host_key) != 0) {
		__u32 idx = KVM_EXIT_LOST_OVERFLOW_FULL;
		__u64 *lost_count = bpf_map_lookup_elem(&lost, &idx);

		if (lost_count)
			*lost_count += 1;
	}
	return 0;
}
