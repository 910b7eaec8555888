/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The tp_btf and raw_tp entry points of a raw tracepoint, generated from one
 * handler: every program but the classic tracepoint ones. BPF side only.
 */
#ifndef KVM_EXIT_EXPORTER_BPF_LIB_RAW_TP_BPF_H
#define KVM_EXIT_EXPORTER_BPF_LIB_RAW_TP_BPF_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/*
 * How a handler's arguments came in: on tp_btf they are BTF-typed pointers the
 * verifier lets the program load through; on raw_tp they are plain numbers,
 * and a pointer may only be read with a probe read (bpf_core_read).
 */
enum raw_tp_hook {
	HOOK_TP_BTF,
	HOOK_RAW_TP,
};

/*
 * RAW_TP_PROGRAMS(program, tracepoint, handler, args...) defines the two raw
 * tracepoint entry points of one handler, in the style of libbpf-tools:
 * program_btf on tp_btf/tracepoint and program_raw on raw_tp/tracepoint. Both
 * get the tracepoint's arguments as an array of u64 (TP_PROTO order), which
 * are passed on, as BPF_PROG does, after the hook and the array itself:
 * handler(HOOK_TP_BTF or HOOK_RAW_TP, ctx, arg0, arg1, ...). `args` only
 * counts the arguments (the first N of TP_PROTO); their types are the
 * handler's.
 */
/* Kept by hand: clang-format would join the _Pragmas and the SEC onto one line. */
/* clang-format off */
#define RAW_TP_PROGRAMS(program, tracepoint, handler, args...)                           \
	_Pragma("GCC diagnostic push")                                                    \
	_Pragma("GCC diagnostic ignored \"-Wint-conversion\"")                           \
	SEC("tp_btf/" #tracepoint)                                                         \
	int program##_btf(unsigned long long *ctx)                                         \
	{                                                                                  \
		return handler(HOOK_TP_BTF, ___bpf_ctx_cast(args));                         \
	}                                                                                  \
	SEC("raw_tp/" #tracepoint)                                                         \
	int program##_raw(unsigned long long *ctx)                                         \
	{                                                                                  \
		return handler(HOOK_RAW_TP, ___bpf_ctx_cast(args));                         \
	}                                                                                  \
	_Pragma("GCC diagnostic pop")
/* clang-format on */

#endif /* KVM_EXIT_EXPORTER_BPF_LIB_RAW_TP_BPF_H */
