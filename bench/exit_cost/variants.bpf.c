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
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "kvm_exit.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Kernel types, only the fields read; CO-RE relocates them against the kvm,
 * kvm_amd or kvm_intel module BTF of the running kernel. */
struct kvm_vcpu {
	int vcpu_id;
} __attribute__((preserve_access_index));

struct vmcb_control_area {
	__u32 exit_code;
} __attribute__((preserve_access_index));

struct vmcb {
	struct vmcb_control_area control;
} __attribute__((preserve_access_index));

struct vcpu_svm {
	struct kvm_vcpu vcpu;
	struct vmcb *vmcb;
} __attribute__((preserve_access_index));

union vmx_exit_reason {
	__u32 full;
} __attribute__((preserve_access_index));

struct vcpu_vmx {
	struct kvm_vcpu vcpu;
	union vmx_exit_reason exit_reason;
} __attribute__((preserve_access_index));

const volatile __u8 count_per_vcpu = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct vm_exit_key);
	__type(value, __u64);
} variant_vm_exits SEC(".maps");

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

SEC("tp_btf/kvm_exit")
int BPF_PROG(ours_btf, struct kvm_vcpu *vcpu, __u32 isa)
{
	static const __u64 one = 1;
	struct vm_exit_key key;
	__u64 *count;

	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.vcpu_id = count_per_vcpu ? (__u32)vcpu->vcpu_id : KVM_EXIT_ALL_VCPUS;
	key.isa = isa;
	key.exit_reason = exit_reason_of(vcpu, isa);
	count = bpf_map_lookup_elem(&variant_vm_exits, &key);
	if (count) {
		*count += 1;
		return 0;
	}
	bpf_map_update_elem(&variant_vm_exits, &key, &one, BPF_NOEXIST);
	return 0;
}
