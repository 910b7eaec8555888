// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Counts every KVM VM exit by (VMM process, vCPU, isa, exit reason).
 *
 * One of the three files linked into kvm_exit.bpf.o (`bpftool gen object`,
 * then one skeleton, struct kvm_exit_bpf): this one counts exits,
 * exit_timing.bpf.c times them (collector.exit_handling_time), drilldown.bpf.c
 * counts what they were about (collector.drilldown). bpf/kvm_exit.h is the
 * contract with the exporter; bpf/lib/ holds the helpers they share.
 *
 * Counters live in a sharded array (counter_shards.bpf.h, kvm_exit.h), one
 * counter per (VMM process, vCPU, isa, reason) in use; which counter is which
 * is the directory `counter_index`, a hash from struct vm_exit_key to the
 * counter's index, written on the key's first exit with an index taken from
 * the free list `free_counters` (filled and refilled by the exporter). Hot
 * path: a per-CPU cache of the counter elements the thread that last exited
 * on this CPU used (tagged with its VM and vCPU, and with `counter_epoch`),
 * then one atomic add to that element of this CPU's shard: no hash lookup, no
 * locks. The cache holds where counts are, never counts: a stale or lost
 * cache costs speed, never an exit. The directory plus the array are the
 * whole truth at any moment; the exporter sums the shards at scrape time.
 *
 * Three entry points into the same counting; the exporter loads exactly one
 * (config kernel.hook):
 *   count_kvm_exit_btf  tp_btf/kvm_exit: the raw tracepoint, BTF-typed. The
 *                       kernel skips building the perf trace record, so the
 *                       exit reason is read from the vCPU, as the kernel's own
 *                       get_exit_info does. Only a recursion of this very
 *                       program can make the kernel skip it. libbpf resolves
 *                       its attach target in kvm's module BTF, which takes
 *                       CAP_SYS_ADMIN (BPF_BTF_GET_NEXT_ID).
 *   count_kvm_exit_raw  raw_tp/kvm_exit: the same raw tracepoint attached by
 *                       name (BPF_RAW_TRACEPOINT_OPEN): CAP_BPF and
 *                       CAP_PERFMON suffice, and it runs exactly where tp_btf
 *                       runs (same __bpf_trace_run, same skip rule). Its
 *                       arguments are plain numbers, so every read through
 *                       the vCPU is a probe read.
 *   count_kvm_exit      tp/kvm/kvm_exit: the classic tracepoint, whose record
 *                       (exit_reason, isa, vcpu_id) is a stable format. The
 *                       fallback where kvm module BTF or the vendor structs
 *                       are missing; attaching it is a perf_event_open, which
 *                       Debian's perf_event_paranoid=3 refuses without
 *                       CAP_SYS_ADMIN.
 * The tp_btf and raw_tp entry points of every tracepoint are generated from
 * one handler each (RAW_TP_PROGRAMS, lib/raw_tp.bpf.h).
 *
 * Built for x86 (VMX and SVM: the reason is read from the vendor's vCPU) or
 * for arm64 (__TARGET_ARCH_arm64: the reason is the trap's exception class,
 * an argument of the tracepoint itself, so every hook reads it alike and
 * only per-vCPU counting reads the kernel: KVM_EXIT_ISA_ARM64 in kvm_exit.h).
 *
 * The exit program also stamps the exit for exit handling time
 * (start_exit_timing, exit_timing.bpf.h) when collector.exit_handling_time is
 * on; exit_timing.bpf.c holds the rest of the timing. It stays here, one
 * program doing both, rather than a second program on kvm_exit in
 * exit_timing.bpf.c: every program on a tracepoint costs the kernel's
 * dispatch to it and its own reads of the exit's key, twice per exit instead
 * of once; and a second program would be one more name for the exporter to
 * load and attach.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "kvm_exit.h"
#include "counter_shards.bpf.h"
#include "exit_timing.bpf.h"
#include "lib/kvm_internals.bpf.h"
#include "lib/maps.bpf.h"
#include "lib/raw_tp.bpf.h"

/*
 * The license of the whole linked kvm_exit.bpf.o (its programs call GPL-only
 * helpers): defined here only, as the linker refuses a second definition of
 * the LICENSE symbol.
 */
char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * The kvm_exit tracepoint record. Only the fields read here are declared:
 * preserve_access_index makes libbpf relocate each offset against the running
 * kernel's BTF (vmlinux, or /sys/kernel/btf/kvm where kvm is a module), so the
 * layout below never has to match any particular kernel.
 */
#if defined(__TARGET_ARCH_arm64)
/* arm64's record: ret is the exception type, esr_ec is 0 unless it is a trap. */
struct trace_event_raw_kvm_exit {
	int ret;
	unsigned int esr_ec;
} __attribute__((preserve_access_index));
#else
struct trace_event_raw_kvm_exit {
	unsigned int exit_reason;
	__u32 isa;
	unsigned int vcpu_id;
} __attribute__((preserve_access_index));
#endif

/* Set by the exporter before load (config: collector.per_vcpu). */
const volatile __u8 count_per_vcpu = 0;

/*
 * The host's KVM_EXIT_ISA_* for count_kvm_exit_btf, set by the exporter
 * before load from the vendor module it finds (kvm_amd or kvm_intel). The
 * verifier drops the other vendor's branch, whose structs this kernel does
 * not have.
 */
const volatile __u32 btf_vendor_isa = 0;

/*
 * Set by the exporter before load (config: collector.exit_handling_time).
 * Here, not in exit_timing.bpf.c, as the exit program is the one that reads
 * it: the verifier drops the stamp when it is 0.
 */
const volatile __u8 time_exits = 0;

/*
 * The shards of exit_counters and exit_time_ns (counter_shards.bpf.h), set by
 * the exporter before load from the host's possible CPUs.
 */
const volatile __u32 counter_shard_mask = 0;
const volatile __u32 counter_stride = 1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* replaced at load time by config: collector.vm_map_capacity */
	__type(key, struct vm_exit_key);
	__type(value, __u32);
} counter_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE); /* the exporter reads it without a copy */
	__uint(max_entries, 16385);        /* replaced: shards x (vm_map_capacity + 1) */
	__type(key, __u32);
	__type(value, __u64);
} exit_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 16384); /* vm_map_capacity */
	__type(value, __u32);
} free_counters SEC(".maps");

/*
 * Bumped by the exporter before it takes indexes back (those of ended VMs):
 * every CPU's cache is then refilled through the directory. It hands them
 * out again only after the programs running at the bump have finished.
 */
__u32 counter_epoch = 0;

/*
 * The per-CPU cache of counter elements: direct-mapped by reason, tagged with
 * the full reason. An element includes this CPU's shard: the cache is per
 * CPU, so the shard never changes under it.
 */
#define CACHED_REASONS 128 /* a power of two */

struct cached_index {
	__u32 reason;
	__u32 element; /* of exit_counters, in this CPU's shard; 0: none */
};

struct counter_cache {
	__u64 tag;   /* tgid << 32 | vm_exit_key.vcpu_id whose counters `entry` holds; 0: none */
	__u32 epoch; /* counter_epoch when they were cached */
	__u32 isa;
	struct cached_index entry[CACHED_REASONS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counter_cache);
} counter_caches SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
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

/* What a new host_overflow entry starts from. */
static const __u64 zero_count;

/*
 * The cache-miss path, out of line to keep the hot path short: counts the
 * exit through the directory and caches its element in `cached` (if given).
 * With no index left, the exit goes to the host totals only. Returns the
 * element it counted at, 0 for the host totals.
 */
static __noinline __u32 count_uncached(__u64 tag, __u32 isa, __u32 reason,
				       struct cached_index *cached)
{
	struct host_exit_key host_key;
	struct vm_exit_key key;
	__u64 *count;
	__u32 index, element;

	key.tgid = tag >> 32;
	key.vcpu_id = (__u32)tag;
	key.isa = isa;
	key.exit_reason = reason;
	index = counter_index_of(&counter_index, &free_counters, &key);
	if (index != 0) {
		element = counter_element(index);
		if (cached) {
			cached->reason = reason;
			cached->element = element;
		}
		sharded_add(&exit_counters, element, 1);
		return element;
	}
	/* Every counter is taken: keep the exit in the host totals. */
	host_key.isa = isa;
	host_key.exit_reason = reason;
	count = bpf_map_lookup_or_try_init(&host_overflow, &host_key, &zero_count);
	if (!count)
		percpu_array_inc(&lost, KVM_EXIT_LOST_OVERFLOW_FULL);
	else
		__sync_fetch_and_add(count, 1); /* a plain hash: every CPU adds to the same count */
	return 0;
}

/*
 * Counts one exit of the current VMM process. `from_record`: the isa and
 * reason come from the classic tracepoint's record, unmasked, and isa is
 * checked against the cache; tp_btf's are masked already, and its isa is
 * always the vendor module's (btf_vendor_isa).
 */
static __always_inline void count_exit(__u32 isa, __u32 reason, __u32 vcpu_id, int from_record)
{
	struct counter_cache *cache;
	struct cached_index *cached;
	__u32 zero = 0, i, element;
	/*
	 * Read once: the cache and the timing stamp must agree on the epoch
	 * their counter was valid in, even if the exporter bumps it meanwhile.
	 */
	__u32 epoch = *(volatile __u32 *)&counter_epoch;
	__u64 tag;

	if (!count_per_vcpu)
		vcpu_id = KVM_EXIT_ALL_VCPUS; /* all vCPUs of a VM share its counters */
	/* tgid 0 never runs a vCPU, so tag 0 names no thread. */
	tag = (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | vcpu_id;

	if (from_record && isa == KVM_EXIT_ISA_VMX)
		reason &= KVM_EXIT_VMX_BASIC_REASON_MASK | KVM_EXIT_VMX_FAILED_VMENTRY;
	cache = bpf_map_lookup_elem(&counter_caches, &zero);
	if (!cache) {
		element = count_uncached(tag, isa, reason, NULL);
		goto counted;
	}
	/*
	 * Another thread exited here last, or the exporter took indexes back:
	 * start over. Tracepoint programs run with preemption off on this path
	 * (KVM enters and exits guest mode with it off), so two exits never
	 * interleave on one CPU's cache.
	 */
	if (cache->tag != tag || cache->epoch != epoch || (from_record && cache->isa != isa)) {
		__builtin_memset(cache->entry, 0, sizeof(cache->entry));
		cache->tag = tag;
		cache->epoch = epoch;
		cache->isa = isa;
	}
	i = reason & (CACHED_REASONS - 1);
	/* Keep the bounded index in one register: the 6.1 verifier loses the bound otherwise. */
	barrier_var(i);
	cached = &cache->entry[i & (CACHED_REASONS - 1)];
	if (cached->reason != reason || cached->element == 0) {
		element = count_uncached(tag, isa, reason, cached);
	} else {
		element = cached->element;
		sharded_add(&exit_counters, element, 1);
	}
counted:
	/* The timing's stamp names the counter, so kvm_entry adds the time without a lookup. */
	if (time_exits)
		start_exit_timing(isa, reason, element, epoch);
}

/*
 * The vCPU each CPU is about to run, for per-vCPU counting where kvm_exit
 * passes no vCPU (arm64): KVM_RUN's loop calls kvm_arm_setup_debug(vcpu)
 * before each guest entry, with preemption off until after kvm_exit, so the
 * exit on this CPU is that vCPU's. Tagged with the thread, as the first exit
 * of a vCPU that entered the guest before this program was attached has no
 * note of its own (that exit is counted lost). The kernel's own pointer,
 * kvm_running_vcpu, would need a ksym that kernels without KALLSYMS_ALL
 * (Debian's arm64) cannot resolve. Built on every architecture so that the
 * skeleton is one; loaded only where it is needed.
 */
struct running_vcpu {
	__u64 pid_tgid;
	__u32 vcpu_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct running_vcpu);
} running_vcpus SEC(".maps");

static __always_inline void note_vcpu(struct kvm_vcpu *vcpu)
{
	struct running_vcpu *running;
	__u32 zero = 0;

	running = bpf_map_lookup_elem(&running_vcpus, &zero);
	if (!running)
		return;
	running->pid_tgid = 0; /* no note unless the id is read */
	if (bpf_core_read(&running->vcpu_id, sizeof(running->vcpu_id), &vcpu->vcpu_id) == 0)
		running->pid_tgid = bpf_get_current_pid_tgid();
}

/* Nonzero when this CPU has no note of the current thread's vCPU. */
static __always_inline int running_vcpu_id(__u32 *vcpu_id)
{
	struct running_vcpu *running;
	__u32 zero = 0;

	running = bpf_map_lookup_elem(&running_vcpus, &zero);
	if (!running || running->pid_tgid != bpf_get_current_pid_tgid())
		return -1;
	*vcpu_id = running->vcpu_id;
	return 0;
}

/* kvm_arm_setup_debug's record: TP_STRUCT__entry(struct kvm_vcpu *vcpu, __u32 guest_debug). */
struct trace_event_raw_kvm_arm_setup_debug {
	struct kvm_vcpu *vcpu;
} __attribute__((preserve_access_index));

SEC("tp/kvm/kvm_arm_setup_debug")
int note_running_vcpu(struct trace_event_raw_kvm_arm_setup_debug *ctx)
{
	note_vcpu(ctx->vcpu);
	return 0;
}

/* kvm_arm_setup_debug's TP_PROTO(struct kvm_vcpu *vcpu, __u32 guest_debug). */
static __always_inline int
handle_kvm_arm_setup_debug(enum raw_tp_hook hook, unsigned long long *ctx, struct kvm_vcpu *vcpu)
{
	note_vcpu(vcpu);
	return 0;
}

RAW_TP_PROGRAMS(note_running_vcpu, kvm_arm_setup_debug, handle_kvm_arm_setup_debug, vcpu)

#if defined(__TARGET_ARCH_arm64)
/*
 * arm64: kvm_exit is TP_PROTO(int ret, unsigned int esr_ec, unsigned long
 * vcpu_pc), called from KVM_RUN's loop with preemption off. The key's reason
 * follows the tracepoint's own rule (KVM_EXIT_ISA_ARM64 in kvm_exit.h): the
 * raw hooks see esr_ec unmasked, which for an IRQ exit holds whatever the
 * last trap left there.
 */
static __always_inline __u32 arm64_exit_reason(int ret, unsigned int esr_ec)
{
	__u32 type = (__u32)ret & ~KVM_EXIT_ARM64_SERROR_BIT;

	return type == KVM_EXIT_ARM64_TRAP ? esr_ec : KVM_EXIT_ARM64_NOT_TRAP + type;
}

static __always_inline void count_arm64_exit(int ret, unsigned int esr_ec)
{
	__u32 vcpu_id = 0;

	if (count_per_vcpu && running_vcpu_id(&vcpu_id) != 0) {
		percpu_array_inc(&lost, KVM_EXIT_LOST_REASON_UNREADABLE);
		return;
	}
	count_exit(KVM_EXIT_ISA_ARM64, arm64_exit_reason(ret, esr_ec), vcpu_id, 0);
}

SEC("tp/kvm/kvm_exit")
int count_kvm_exit(struct trace_event_raw_kvm_exit *ctx)
{
	count_arm64_exit(ctx->ret, ctx->esr_ec);
	return 0;
}

static __always_inline int handle_kvm_exit(enum raw_tp_hook hook, unsigned long long *ctx, int ret,
					   unsigned int esr_ec)
{
	count_arm64_exit(ret, esr_ec);
	return 0;
}

RAW_TP_PROGRAMS(count_kvm_exit, kvm_exit, handle_kvm_exit, ret, esr_ec)

#else /* x86: VMX and SVM */

SEC("tp/kvm/kvm_exit")
int count_kvm_exit(struct trace_event_raw_kvm_exit *ctx)
{
	count_exit(ctx->isa, ctx->exit_reason, ctx->vcpu_id, 1);
	return 0;
}

/*
 * The exit reason the kvm_exit record would carry (kvm's get_exit_info), read
 * through the structs of lib/kvm_internals.bpf.h; where they are gone the load
 * fails and the exporter falls back to count_kvm_exit.
 * SVM: vmcb->control.exit_code; VMX: vcpu_vmx.exit_reason.full, masked as
 * the counters key it. Every read is a probe read, valid on both hooks: on
 * tp_btf `vcpu` is a checked BTF pointer, on raw_tp a plain number. Returns
 * nonzero when it cannot be read, rather than a reason that would be wrong.
 */
static __always_inline int read_exit_reason(struct kvm_vcpu *vcpu, __u32 isa, __u32 *reason)
{
	if (btf_vendor_isa == KVM_EXIT_ISA_SVM && isa == KVM_EXIT_ISA_SVM) {
		struct vcpu_svm *svm = kvm_to_svm(vcpu);
		struct vmcb *vmcb;

		if (bpf_core_read(&vmcb, sizeof(vmcb), &svm->vmcb) != 0)
			return -1;
		return bpf_core_read(reason, sizeof(*reason), &vmcb->control.exit_code);
	}
	if (btf_vendor_isa == KVM_EXIT_ISA_VMX && isa == KVM_EXIT_ISA_VMX) {
		struct vcpu_vmx *vmx = kvm_to_vmx(vcpu);

		if (bpf_core_read(reason, sizeof(*reason), &vmx->exit_reason.full) != 0)
			return -1;
		*reason &= KVM_EXIT_VMX_BASIC_REASON_MASK | KVM_EXIT_VMX_FAILED_VMENTRY;
		return 0;
	}
	return -1;
}

/* kvm_exit's TP_PROTO(struct kvm_vcpu *vcpu, u32 isa). */
static __always_inline int handle_kvm_exit(enum raw_tp_hook hook, unsigned long long *ctx,
					   struct kvm_vcpu *vcpu, __u32 isa)
{
	__u32 reason, vcpu_id;

	/*
	 * Never NULL in KVM, but Linux 6.12 types tp_btf pointer arguments as
	 * maybe-NULL and refuses a load through one unchecked (vcpu->vcpu_id
	 * below); kvm_to_svm/kvm_to_vmx check before their arithmetic.
	 */
	if (!vcpu || read_exit_reason(vcpu, isa, &reason) != 0) {
		percpu_array_inc(&lost, KVM_EXIT_LOST_REASON_UNREADABLE);
		return 0;
	}
	/* Only per-vCPU counting keys by it: spare raw_tp a probe read otherwise. */
	vcpu_id = 0;
	if (count_per_vcpu) {
		if (hook == HOOK_TP_BTF) {
			vcpu_id = vcpu->vcpu_id; /* a BTF load, no helper call */
		} else if (bpf_core_read(&vcpu_id, sizeof(vcpu_id), &vcpu->vcpu_id) != 0) {
			percpu_array_inc(&lost, KVM_EXIT_LOST_REASON_UNREADABLE);
			return 0;
		}
	}
	count_exit(isa, reason, vcpu_id, 0);
	return 0;
}

RAW_TP_PROGRAMS(count_kvm_exit, kvm_exit, handle_kvm_exit, vcpu, isa)

#endif
