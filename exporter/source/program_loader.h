// SPDX-License-Identifier: Apache-2.0
// Opens, sizes, loads and attaches the programs of one hook (the others are
// not loaded), following the program table. Errors say what the hook needs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "source/bpf_source_options.h"
#include "source/core_btf.h"
#include "source/kernel_hook.h"
#include "source/pinned_state.h"
#include "source/program_table.h"

struct kvm_exit_bpf;

namespace kvmexit {

struct SkeletonDeleter {
  void operator()(kvm_exit_bpf* skeleton) const;
};

// The BPF object: its programs, maps and links. Destroying it detaches every
// program and closes every map.
using SkeletonPtr = std::unique_ptr<kvm_exit_bpf, SkeletonDeleter>;

// Opens the BPF object, turns on `hook`'s programs that `options` asks for,
// sizes the maps and loads it into *skeleton. btf_vendor_isa is the
// KVM_EXIT_ISA_* of the vendor module for tp_btf and raw_tp; core_btf the
// CO-RE target (libbpf's own without a path). With an open `state`, the
// maps are pinned there, and when the pinned state fits (PinnedState::
// PrepareLoad) its maps are adopted and no program is loaded: *adopted is
// then true, and the caller adopts the pinned links instead of attaching.
// "" or an error message (*skeleton is then left as it was).
std::string LoadPrograms(const BpfSourceOptions& options, KernelHook hook,
                         std::uint32_t btf_vendor_isa, const CoreBtf& core_btf, PinnedState* state,
                         SkeletonPtr* skeleton, bool* adopted);

// The links of `hook`'s programs that `options` turns on, with their pin names.
std::vector<PinnedLink> LinksToPin(kvm_exit_bpf& skeleton, const BpfSourceOptions& options,
                                   KernelHook hook);

// The links of `hook`'s programs that follow storms (attached on demand),
// with their pin names.
std::vector<PinnedLink> FollowLinks(kvm_exit_bpf& skeleton, const BpfSourceOptions& options,
                                    KernelHook hook);

// Attaches `row`'s program of `hook` into the row's link slot (the skeleton
// owns the link). "" or an error message.
std::string AttachRow(const ProgramRow& row, KernelHook hook);

// Attaches the programs LoadPrograms loaded, in the table's order, but for
// those that follow storms; the skeleton owns the links. "" or an error message.
std::string AttachPrograms(kvm_exit_bpf& skeleton, const BpfSourceOptions& options,
                           KernelHook hook);

}  // namespace kvmexit
