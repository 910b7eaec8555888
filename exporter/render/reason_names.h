// SPDX-License-Identifier: Apache-2.0
// Exit reason names: code -> name per isa, taken from the running kernel's
// kvm:kvm_exit tracepoint format, or from tables built from the uapi headers.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace kvmexit {

// "vmx", "svm", or "isa<N>" for a value the kernel may add later.
std::string IsaLabel(std::uint32_t isa);

class ReasonNames {
 public:
  enum class Origin { kKernelTracepoint, kUapiHeaders };

  // Parses the `print fmt:` line of /sys/kernel/tracing/events/kvm/kvm_exit/format:
  // the __print_symbolic table guarded by `REC->isa == 1` is VMX, the other is SVM.
  // Returns nullopt (and sets *error) when no table can be found.
  static std::optional<ReasonNames> FromTracepointFormat(std::string_view format_text,
                                                         std::string* error);
  // Tables expanded at compile time from <asm/vmx.h> VMX_EXIT_REASONS and
  // <asm/svm.h> SVM_EXIT_REASONS.
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
};

}  // namespace kvmexit
