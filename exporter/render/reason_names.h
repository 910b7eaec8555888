// SPDX-License-Identifier: Apache-2.0
// Exit reason names: code -> name per isa, taken from the running kernel's
// kvm:kvm_exit tracepoint format, or from tables built from the uapi headers.
#pragma once

#include <linux/types.h>  // kvm_exit.h's __u32, __u64

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "kvm_exit.h"

namespace kvmexit {

// Every isa with a name table: what a reason name given in the config may be of.
inline constexpr std::uint32_t kKnownIsas[] = {KVM_EXIT_ISA_VMX, KVM_EXIT_ISA_SVM,
                                               KVM_EXIT_ISA_ARM64};

// "vmx", "svm", "arm64", or "isa<N>" for a value the kernel may add later.
std::string IsaLabel(std::uint32_t isa);

class ReasonNames {
 public:
  enum class Origin { kKernelTracepoint, kUapiHeaders };

  // Parses the `print fmt:` line of /sys/kernel/tracing/events/kvm/kvm_exit/format.
  // x86: the __print_symbolic table guarded by `REC->isa == 1` is VMX, the other is
  // SVM. arm64: the table of REC->esr_ec names the traps, the one of REC->ret the
  // other exits (KVM_EXIT_ISA_ARM64 in kvm_exit.h). The other architecture's
  // tables are FromUapiHeaders'. Returns nullopt (and sets *error) when no table
  // can be found.
  static std::optional<ReasonNames> FromTracepointFormat(std::string_view format_text,
                                                         std::string* error);
  // Tables expanded at compile time from <asm/vmx.h> VMX_EXIT_REASONS and
  // <asm/svm.h> SVM_EXIT_REASONS; arm64's from the kernel's esr.h and
  // kvm_asm.h, which no uapi header has.
  static ReasonNames FromUapiHeaders();
  // Kernel first (mounting nothing: the caller passes the tracefs root), else uapi.
  // *note says which was used and why the kernel's could not be.
  static ReasonNames Load(const std::string& tracefs_root, std::string* note);

  // Name for a counted code. VMX codes may carry bit 31 (failed VM entry): the
  // name is then "<BASIC_NAME> FAILED_VMENTRY", as the kernel prints it.
  // Unknown codes are named "unknown" ("unknown FAILED_VMENTRY" for a failed
  // entry with an unknown basic reason).
  std::string Name(std::uint32_t isa, std::uint32_t code) const;
  // Exact table lookup, without Name()'s VMX decoding: a VMX code with bit 31 set is not found.
  std::optional<std::string_view> Find(std::uint32_t isa, std::uint32_t code) const;
  // Reverse lookup, for tests and config: nullopt when the name is not in the table.
  std::optional<std::uint32_t> Code(std::uint32_t isa, std::string_view name) const;

  std::size_t Size(std::uint32_t isa) const;
  // The whole code -> name table of one isa (empty for an isa without a table).
  const std::map<std::uint32_t, std::string>& Entries(std::uint32_t isa) const;
  Origin origin() const { return origin_; }

 private:
  Origin origin_ = Origin::kUapiHeaders;
  std::map<std::uint32_t, std::string> vmx_;
  std::map<std::uint32_t, std::string> svm_;
  std::map<std::uint32_t, std::string> arm64_;
};

}  // namespace kvmexit
