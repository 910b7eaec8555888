// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Reference for the per-exit cost benchmark: kvm_exit counting written the
 * common way, as bcc's and libbpf-tools' kvmexit do it — a per-CPU hash keyed
 * by pid_tgid whose value holds a count per exit reason, incremented with an
 * atomic add, reasons at or above MAX_EXIT_REASON dropped. Not used by the
 * exporter; only loaded by exit_cost_loader. On arm64 (__TARGET_ARCH_arm64)
 * the record is kvm_exit(ret, esr_ec, vcpu_pc): the reason is the exception
 * class (esr_ec, 6 bits) of a trap (ret ARM_EXCEPTION_TRAP), 64 + the
 * exception type (its low 5 bits) otherwise, so that every reason fits the
 * same table.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_EXIT_REASON 127

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#if defined(__TARGET_ARCH_arm64)
#define ARM_EXCEPTION_TRAP 2

struct trace_event_raw_kvm_exit {
	int ret;
	unsigned int esr_ec;
} __attribute__((preserve_access_index));

static __always_inline __u32 exit_reason_of(struct trace_event_raw_kvm_exit *ctx)
{
	int ret = ctx->ret;

	/* Masked so that the verifier sees the index bounded on both paths. */
	return ret == ARM_EXCEPTION_TRAP ? ctx->esr_ec & 63 : 64 + ((__u32)ret & 31);
}
#else
struct trace_event_raw_kvm_exit {
	unsigned int exit_reason;
} __attribute__((preserve_access_index));

static __always_inline __u32 exit_reason_of(struct trace_event_raw_kvm_exit *ctx)
{
	return ctx->exit_reason;
}
#endif

struct exit_counts {
	__u64 count[MAX_EXIT_REASON];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct exit_counts);
} reference_exits SEC(".maps");

/* A zeroed value to insert from: too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exit_counts);
} zero_counts SEC(".maps");

SEC("tp/kvm/kvm_exit")
int reference_kvm_exit(struct trace_event_raw_kvm_exit *ctx)
{
	__u32 reason = exit_reason_of(ctx);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct exit_counts *counts;
	__u32 zero = 0;

	if (reason >= MAX_EXIT_REASON)
		return 0;
	counts = bpf_map_lookup_elem(&reference_exits, &pid_tgid);
	if (!counts) {
		struct exit_counts *init = bpf_map_lookup_elem(&zero_counts, &zero);

		if (!init)
			return 0;
		bpf_map_update_elem(&reference_exits, &pid_tgid, init, BPF_NOEXIST);
		counts = bpf_map_lookup_elem(&reference_exits, &pid_tgid);
		if (!counts)
			return 0;
	}
	__sync_fetch_and_add(&counts->count[reason], 1);
	return 0;
}
