/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The contract between the BPF programs of bpf/ (linked into one
 * kvm_exit.bpf.o) and the exporter: map key and value layouts, and the two
 * rules both sides apply to the drill-down slots. Both sides include this
 * file; nothing else is shared.
 */
#ifndef KVM_EXIT_EXPORTER_BPF_KVM_EXIT_H
#define KVM_EXIT_EXPORTER_BPF_KVM_EXIT_H

/* Values of the tracepoint's `isa` field (KVM_ISA_VMX / KVM_ISA_SVM in the kernel). */
#define KVM_EXIT_ISA_VMX 1
#define KVM_EXIT_ISA_SVM 2
/*
 * arm64's kvm_exit has no isa field: this value is ours. Its reason is the
 * exception class (ESR_ELx.EC, 0..0x3f) of a trap, or, for an exit that is
 * not a trap (an IRQ, an SError, ...), KVM_EXIT_ARM64_NOT_TRAP + the
 * exception type (ARM_EXCEPTION_IRQ 0, ..._EL1_SERROR 1, ..._IL 3): the
 * kernel's own rule, which records esr_ec only when the type is TRAP.
 */
#define KVM_EXIT_ISA_ARM64 3
#define KVM_EXIT_ARM64_TRAP 2            /* ARM_EXCEPTION_TRAP */
#define KVM_EXIT_ARM64_SERROR_BIT 0x80000000U /* ARM_EXIT_WITH_SERROR_BIT: not part of the type */
#define KVM_EXIT_ARM64_NOT_TRAP 0x100U

/* VMX: the basic exit reason is the low 16 bits; bit 31 marks a failed VM entry. */
#define KVM_EXIT_VMX_BASIC_REASON_MASK 0xffffU
#define KVM_EXIT_VMX_FAILED_VMENTRY 0x80000000U

/* vcpu_id stored in vm_exit_key when per-vCPU counting is off: all vCPUs of a VM share one counter. */
#define KVM_EXIT_ALL_VCPUS 0xffffffffU

/* Capacity of the host-level overflow table: one entry per distinct (isa, reason). */
#define KVM_EXIT_OVERFLOW_CAPACITY 4096

/*
 * Per-VM (and optionally per-vCPU) counter key. `counter_index`, a hash
 * vm_exit_key -> __u32, names each key's counter: an index into the sharded
 * counter arrays below (index 0 is never used). `free_counters` (a stack of
 * __u32) holds the indexes no key has; the exporter fills it, and takes back
 * the indexes of ended VMs.
 *
 * Sharded counter arrays: `exit_counters` (exits) and `exit_time_ns` (exit
 * handling time) are plain arrays of __u64 (BPF_F_MMAPABLE), not per-CPU
 * ones, so their size follows the counters, not the host's CPU count. Each
 * holds `shards` copies of the counters (a power of two, at most
 * KVM_EXIT_MAX_COUNTER_SHARDS), `stride` = vm_map_capacity + 1 counters
 * each: counter i of shard s is element s * stride + i. A program adds to
 * the shard of its CPU (cpu & (shards - 1)) with an atomic add; the exporter
 * sums the shards of an index, reading the array through mmap (no syscall
 * per scrape). Counter i of shard 0 is element i.
 */
#define KVM_EXIT_MAX_COUNTER_SHARDS 16

struct vm_exit_key {
	__u32 tgid;        /* VMM process id: all vCPU threads of one VM share it */
	__u32 vcpu_id;     /* KVM vCPU id, or KVM_EXIT_ALL_VCPUS */
	__u32 isa;         /* KVM_EXIT_ISA_* */
	__u32 exit_reason; /* SVM: exit code; VMX: basic reason | KVM_EXIT_VMX_FAILED_VMENTRY; arm64: see KVM_EXIT_ISA_ARM64 */
};

/*
 * Key of the `host_overflow` hash (plain, not per-CPU; __u64 counts added
 * atomically): exits that found no free counter. Rare by design, so one
 * shared count per reason costs nothing worth sharding.
 */
struct host_exit_key {
	__u32 isa;
	__u32 exit_reason;
};

/* Indices of the `lost` per-CPU array: exits that could be stored nowhere. */
enum kvm_exit_lost_index {
	KVM_EXIT_LOST_OVERFLOW_FULL = 0,   /* the overflow table itself was full */
	KVM_EXIT_LOST_REASON_UNREADABLE,   /* tp_btf: the exit reason could not be read from the vCPU */
	KVM_EXIT_LOST_NR,
};

/* `lost` holds per-CPU __u64 exit counts (two per CPU: width does not matter). */

/*
 * Exit handling time: each kvm_exit -> next kvm_entry interval of a vCPU
 * thread. Buckets of `exit_time_hist`: bucket i < KVM_EXIT_TIME_BUCKETS counts
 * intervals <= 2^i us (1 us .. 1.048576 s), the last one the rest (+Inf).
 * Per bucket, not cumulative; user space accumulates them.
 */
#define KVM_EXIT_TIME_BUCKETS 21
#define KVM_EXIT_TIME_HIST_CAPACITY 256

/*
 * Value of the `exit_time_hist` per-CPU hash, keyed by host_exit_key. Not
 * preallocated: each (isa, reason) seen takes 192 bytes per possible CPU,
 * so a host pays for the reasons its VMs exit with, not for the capacity.
 */
struct exit_time_hist {
	__u64 buckets[KVM_EXIT_TIME_BUCKETS + 1];
	__u64 sum_ns;
	__u64 count;
};

/*
 * `exit_time_ns`: a sharded counter array (above), the ns spent handling the
 * exits of each counter index: a key's handling time is at its counter's
 * index.
 */

/* Indices of the `timing_lost` per-CPU array: exits whose interval was not recorded. */
enum kvm_exit_timing_lost_index {
	KVM_EXIT_TIMING_NO_STORAGE = 0, /* no task storage slot for the vCPU thread */
	KVM_EXIT_TIMING_OVERWRITTEN,    /* an exit found the previous one still pending */
	KVM_EXIT_TIMING_HIST_FULL,      /* exit_time_hist was full */
	KVM_EXIT_TIMING_LOST_NR,
};

/*
 * Drill-down (config collector.drilldown): which port, MSR, ... each VM's
 * exits were about, from KVM's own tracepoints. One map for every kind:
 * `drilldown`, a hash (not per-CPU) drilldown_key -> struct drilldown_items,
 * one entry per VM and kind, counted with atomic adds. One entry per VM and
 * kind, not per item, keeps a scrape's read small: 1,000 VMs x 5 kinds is
 * 5,000 entries, not 160,000, whatever the host's CPU count.
 */
/*
 * The kinds, one row each in drilldown_kinds.def (item encodings below):
 * io     kvm:kvm_pio: item = port | KVM_DRILLDOWN_IO_WRITE if out
 * msr    kvm:kvm_msr: item = index | KVM_DRILLDOWN_MSR_* flags
 * mmio   kvm:kvm_mmio: item = gpa >> 12 | KVM_DRILLDOWN_MMIO_WRITE
 * hypercall  kvm:kvm_hypercall: item = hypercall number (rax)
 * userspace  kvm:kvm_userspace_exit: item = KVM_EXIT_* | -errno << 32
 * hvc    kvm:kvm_hvc_arm64: item = SMCCC function ID (w0, as KVM reads it)
 * sysreg kvm:kvm_sys_access: item = KVM_DRILLDOWN_SYSREG(op0, op1, crn, crm, op2)
 *        | KVM_DRILLDOWN_SYSREG_WRITE if MSR (a write)
 */
enum kvm_drilldown_kind {
#define DRILLDOWN_KIND(ENUM, ...) KVM_DRILLDOWN_##ENUM,
#include "drilldown_kinds.def"
#undef DRILLDOWN_KIND
	KVM_DRILLDOWN_KIND_NR,
};

#define KVM_DRILLDOWN_IO_WRITE (1ULL << 16)
#define KVM_DRILLDOWN_MSR_WRITE (1ULL << 32)
#define KVM_DRILLDOWN_MSR_FAULT (1ULL << 33) /* KVM injected #GP instead of completing it */
#define KVM_DRILLDOWN_MMIO_WRITE (1ULL << 63)
#define KVM_DRILLDOWN_USERSPACE_ERRNO_SHIFT 32 /* KVM_RUN's -errno; 0 when it returned 0 */
#define KVM_DRILLDOWN_USERSPACE_ERRNO_MASK (~0ULL << KVM_DRILLDOWN_USERSPACE_ERRNO_SHIFT)
/* A system register's encoding in 16 bits, the fields of its MRS/MSR instruction. */
#define KVM_DRILLDOWN_SYSREG(op0, op1, crn, crm, op2)                                   \
	((((__u64)(op0) & 3) << 14) | (((__u64)(op1) & 7) << 11) | (((__u64)(crn) & 15) << 7) | \
	 (((__u64)(crm) & 15) << 3) | ((__u64)(op2) & 7))
#define KVM_DRILLDOWN_SYSREG_WRITE (1ULL << 16)

struct drilldown_key {
	__u32 tgid; /* VMM process id, as in vm_exit_key */
	__u32 kind; /* enum kvm_drilldown_kind */
};

/*
 * Per VM and kind, the first KVM_DRILLDOWN_ITEM_SLOTS distinct items get a
 * count each (user space picks at most collector.drilldown_max_keys of them
 * for series and folds the rest into "other"). Later items are counted in
 * `other`, under the part of the item that "other" keeps as labels
 * (kvm_drilldown_other_item). Slots are claimed by compare-and-swap of `slot`
 * from 0 and never released while the entry lives, so an item has one slot.
 */
#define KVM_DRILLDOWN_ITEM_SLOTS 64  /* a power of two: open addressing masks the hash */
#define KVM_DRILLDOWN_OTHER_SLOTS 8  /* a power of two; io has 2 "other" items, msr 4 */

struct drilldown_slot {
	__u64 slot;  /* item + 1; 0: free. Item ~0 has no slot of its own: it goes to `other` */
	__u64 count;
};

struct drilldown_items {
	struct drilldown_slot items[KVM_DRILLDOWN_ITEM_SLOTS];
	struct drilldown_slot other[KVM_DRILLDOWN_OTHER_SLOTS];
};

/*
 * The part of an item its kind's "other" keeps: direction, fault, errno (the
 * rows' other_keeps). KVM_RUN fails in few ways, so userspace keeps the errno.
 */
static inline __u64 kvm_drilldown_other_item(__u32 kind, __u64 item)
{
	switch (kind) {
#define DRILLDOWN_KIND(ENUM, Name, config_name, tracepoint, other_keeps, ...) \
	case KVM_DRILLDOWN_##ENUM:                                             \
		return item & (other_keeps);
#include "drilldown_kinds.def"
#undef DRILLDOWN_KIND
	default:
		return 0;
	}
}

/*
 * Adds `n` to the count of `slot` (item + 1) among `slots_nr` slots (a power
 * of two), claiming a free slot for it if it has none. Returns -1 when every
 * slot belongs to another item. The BPF program counts with it; user space
 * uses it only to fill the map for tests and benchmarks.
 */
static inline int kvm_drilldown_add(struct drilldown_slot *slots, __u32 slots_nr, __u64 slot,
				    __u64 n)
{
	/* Fibonacci hashing: neighbouring ports and MSRs spread over the table. */
	__u32 first = (__u32)((slot * 0x9E3779B97F4A7C15ULL) >> 32);
	__u32 i;

	for (i = 0; i < slots_nr; i++) {
		struct drilldown_slot *at = &slots[(first + i) & (slots_nr - 1)];
		__u64 seen = at->slot;

		/*
		 * Linear probing, and slots are never freed: every CPU looking for
		 * `slot` meets the same first free slot, and the compare-and-swap
		 * lets one of them claim it, so an item never gets two slots.
		 */
		if (seen == 0)
			seen = __sync_val_compare_and_swap(&at->slot, 0, slot);
		if (seen == 0 || seen == slot) {
			__sync_fetch_and_add(&at->count, n);
			return 0;
		}
	}
	return -1;
}

/*
 * `drilldown_lost`: per-CPU array indexed by kind, events counted nowhere:
 * the map was full, or the VM's `other` slots of the kind were.
 */

/*
 * Pinned state (config kernel.state_path): the exporter pins every map and
 * link of the object under one bpffs directory, so that the programs keep
 * counting while it restarts, and a new process adopts what it finds there
 * when it was made by the same layout and configuration. The layout version
 * changes whenever what user space keeps there changes; the programs
 * themselves are compared by a hash of the BPF object they came from, so a
 * build with other programs never adopts these. A process that finds another
 * version or object starts fresh (and says so).
 */
#ifndef KVM_EXIT_STATE_LAYOUT /* a test build of the "next" layout defines its own (tests/e2e) */
#define KVM_EXIT_STATE_LAYOUT 1
#endif

/* Buckets of kvm_vm_boot_exits_count (exporter/render/self_metrics.h): 9 bounds and +Inf. */
#define KVM_EXIT_BOOT_EXITS_BUCKETS 10

/*
 * Value of `exporter_state` (an array of one entry no program reads): the
 * exporter's own bookkeeping, kept in the kernel with the counts it belongs to.
 */
struct exporter_state {
	__u32 layout;            /* KVM_EXIT_STATE_LAYOUT once every link is pinned; 0: incomplete */
	__u32 hook;              /* the exporter's code for the hook the pinned links attach */
	__u64 counting_since_ns; /* CLOCK_REALTIME when those links attached */
	__u32 counters_freed;    /* counter indexes 1..this were handed to free_counters (or are about to be) */
	__u32 counters_withheld; /* indexes of ended VMs kept out of use */
	__u64 object_hash;       /* of the BPF object the programs came from: another build's are not adopted */
	/* kvm_vm_boot_exits_count so far, per bucket (not cumulative), and its sum */
	__u64 boot_exits_buckets[KVM_EXIT_BOOT_EXITS_BUCKETS];
	__u64 boot_exits_sum;
};

/*
 * `retired_counts`, a plain hash host_exit_key -> __u64 no program reads: the
 * final counts of the VMs whose counters the exporter took back, so that host
 * totals stay exact and monotonic across restarts.
 */

#endif /* KVM_EXIT_EXPORTER_BPF_KVM_EXIT_H */
