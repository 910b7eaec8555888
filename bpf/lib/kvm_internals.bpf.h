/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The kvm internals a tp_btf/kvm_exit program reads to find the exit reason,
 * only the fields used. They are not ABI: CO-RE relocates every offset
 * against the kvm, kvm_amd or kvm_intel module BTF of the running kernel, and
 * a program that reads a field the kernel no longer has fails to load.
 * BPF side only; user space never sees these types.
 */
#ifndef KVM_EXIT_EXPORTER_BPF_LIB_KVM_INTERNALS_BPF_H
#define KVM_EXIT_EXPORTER_BPF_LIB_KVM_INTERNALS_BPF_H

#include <linux/types.h>
#include <bpf/bpf_core_read.h>

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

/*
 * kvm's to_svm() and to_vmx(): struct kvm_vcpu is embedded in the vendor's
 * vCPU struct. NULL for a NULL vcpu, checked before the arithmetic: Linux
 * 6.12 types tp_btf pointer arguments as maybe-NULL and refuses arithmetic on
 * them unchecked ("pointer arithmetic on trusted_ptr_or_null_ prohibited,
 * null-check it first"). A probe read through NULL fails, so callers need no
 * check of their own.
 */
static __always_inline struct vcpu_svm *kvm_to_svm(struct kvm_vcpu *vcpu)
{
	if (!vcpu)
		return (struct vcpu_svm *)0;
	return (void *)vcpu - bpf_core_field_offset(struct vcpu_svm, vcpu);
}

static __always_inline struct vcpu_vmx *kvm_to_vmx(struct kvm_vcpu *vcpu)
{
	if (!vcpu)
		return (struct vcpu_vmx *)0;
	return (void *)vcpu - bpf_core_field_offset(struct vcpu_vmx, vcpu);
}

#endif /* KVM_EXIT_EXPORTER_BPF_LIB_KVM_INTERNALS_BPF_H */
