// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Counts every KVM VM exit by (VMM process, vCPU, isa, exit reason).
 *
 * Hot path: one per-CPU hash lookup and a plain increment. Per-CPU values
 * need no atomics and no locks; the exporter sums them at scrape time.
 *
 * Two entry points into the same counting; the exporter loads exactly one
 * (config kernel.hook):
 *   count_kvm_exit_btf  tp_btf/kvm_exit: the raw tracepoint. The kernel skips
 *                       building the perf trace record, so the exit reason is
 *                       read from the vCPU, as the kernel's own
 *                       get_exit_info does. Cheaper per exit, and only a
 *                       recursion of this very program can make the kernel
 *                       skip it.
 *   count_kvm_exit      tp/kvm/kvm_exit: the classic tracepoint, whose record
 *                       (exit_reason, isa, vcpu_id) is a stable format. The
 *                       fallback where kvm module BTF or the vendor structs
 *                       are missing.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <asm-generic/errno.h>

#include "kvm_exit.h"
#include "kvm_internals.bpf.h"

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

/* Set by the exporter before load (config: collector.per_vcpu). */
const volatile __u8 count_per_vcpu = 0;

/*
 * The host's KVM_EXIT_ISA_* for count_kvm_exit_btf, set by the exporter
 * before load from the vendor module it finds (kvm_amd or kvm_intel). The
 * verifier drops the other vendor's branch, whose structs this kernel does
 * not have.
 */
const volatile __u32 btf_vendor_isa = 0;

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

static __always_inline void count_lost(__u32 index)
{
	__u64 *lost_count = bpf_map_lookup_elem(&lost, &index);

	if (lost_count)
		*lost_count += 1;
}

/* Counts one exit of the current VMM process. */
static __always_inline void count_exit(__u32 isa, __u32 reason, __u32 vcpu_id)
{
	struct vm_exit_key key;
	struct host_exit_key host_key;

	if (isa == KVM_EXIT_ISA_VMX)
		reason &= KVM_EXIT_VMX_BASIC_REASON_MASK | KVM_EXIT_VMX_FAILED_VMENTRY;

	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.vcpu_id = count_per_vcpu ? vcpu_id : KVM_EXIT_ALL_VCPUS;
	key.isa = isa;
	key.exit_reason = reason;
	if (count_one(&vm_exits, &key) == 0)
		return;

	/* vm_exits is full: keep the exit in the host totals. */
	host_key.isa = isa;
	host_key.exit_reason = reason;
	if (count_one(&host_overflow, &host_key) != 0)
		count_lost(KVM_EXIT_LOST_OVERFLOW_FULL);
}

SEC("tp/kvm/kvm_exit")
int count_kvm_exit(struct trace_event_raw_kvm_exit *ctx)
{
	count_exit(ctx->isa, ctx->exit_reason, ctx->vcpu_id);
	return 0;
}

/*
 * The exit reason the kvm_exit record would carry (kvm's get_exit_info), read
 * through the structs of kvm_internals.bpf.h; where they are gone the load
 * fails and the exporter falls back to count_kvm_exit.
 * SVM: vmcb->control.exit_code; VMX: vcpu_vmx.exit_reason.full. Returns
 * -1 when it cannot be read, rather than a reason that would be wrong.
 */
static __always_inline int read_exit_reason(struct kvm_vcpu *vcpu, __u32 isa, __u32 *reason)
{
	if (btf_vendor_isa == KVM_EXIT_ISA_SVM && isa == KVM_EXIT_ISA_SVM) {
		/* kvm's to_svm(): struct kvm_vcpu is embedded in struct vcpu_svm. */
		struct vcpu_svm *svm = (void *)vcpu - bpf_core_field_offset(struct vcpu_svm, vcpu);
		struct vmcb *vmcb;

		if (bpf_core_read(&vmcb, sizeof(vmcb), &svm->vmcb) != 0)
			return -1;
		return bpf_core_read(reason, sizeof(*reason), &vmcb->control.exit_code) == 0 ? 0 : -1;
	}
	if (btf_vendor_isa == KVM_EXIT_ISA_VMX && isa == KVM_EXIT_ISA_VMX) {
		struct vcpu_vmx *vmx = (void *)vcpu - bpf_core_field_offset(struct vcpu_vmx, vcpu);

		return bpf_core_read(reason, sizeof(*reason), &vmx->exit_reason.full) == 0 ? 0 : -1;
	}
	return -1;
}

SEC("tp_btf/kvm_exit")
int BPF_PROG(count_kvm_exit_btf, struct kvm_vcpu *vcpu, __u32 isa)
{
	__u32 reason;

	if (read_exit_reason(vcpu, isa, &reason) != 0) {
		count_lost(KVM_EXIT_LOST_REASON_UNREADABLE);
		return 0;
	}
	count_exit(isa, reason, count_per_vcpu ? (__u32)vcpu->vcpu_id : KVM_EXIT_ALL_VCPUS);
	return 0;
}
