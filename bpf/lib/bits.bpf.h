/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * Bit arithmetic, in the style of libbpf-tools' bits.bpf.h. BPF side only.
 */
#ifndef KVM_EXIT_EXPORTER_BPF_LIB_BITS_BPF_H
#define KVM_EXIT_EXPORTER_BPF_LIB_BITS_BPF_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/*
 * floor(log2(v)), the index of v's highest set bit; 0 for 0 (and for 1), as
 * libbpf-tools' log2l. Compare and branch, as the bit_length it replaced,
 * rather than libbpf-tools' branch-free shifts: BPF has no set-on-compare
 * instruction, so `(v > 0xFFFF) << 4` compiles to a branch as well, plus the
 * shift and the or; this keeps the timed path's instruction count.
 */
static __always_inline __u32 log2l(__u64 v)
{
	__u32 n = 0;

	if (v >= 1ULL << 32) {
		v >>= 32;
		n += 32;
	}
	if (v >= 1ULL << 16) {
		v >>= 16;
		n += 16;
	}
	if (v >= 1ULL << 8) {
		v >>= 8;
		n += 8;
	}
	if (v >= 1ULL << 4) {
		v >>= 4;
		n += 4;
	}
	if (v >= 1ULL << 2) {
		v >>= 2;
		n += 2;
	}
	if (v >= 1ULL << 1)
		n += 1;
	return n;
}

#endif /* KVM_EXIT_EXPORTER_BPF_LIB_BITS_BPF_H */
