// SPDX-License-Identifier: Apache-2.0
// Fuzzes the kvm:kvm_exit tracepoint format parser
// (ReasonNames::FromTracepointFormat in exporter/render/reason_names.cpp) with the
// text of an events/kvm/kvm_exit/format file (x86's or arm64's), then asks the
// parsed tables for names the way a scrape does.
#include <linux/types.h>  // kvm_exit.h uses __u32

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "kvm_exit.h"
#include "render/reason_names.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view format(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto names = kvmexit::ReasonNames::FromTracepointFormat(format, &error);
  if (!names) {
    kvmexit::fuzz::Check(!error.empty(), "no table and no error message");
    return 0;
  }
  // Every isa with a table, and one without (4).
  for (const std::uint32_t isa : {KVM_EXIT_ISA_VMX, KVM_EXIT_ISA_SVM, KVM_EXIT_ISA_ARM64, 4}) {
    for (const auto& [code, name] : names->Entries(isa)) {
      kvmexit::fuzz::Check(names->Find(isa, code) == std::string_view(name),
                           "Find disagrees with Entries");
      kvmexit::fuzz::Check(!names->Name(isa, code).empty(), "an empty reason name");
    }
    for (const std::uint32_t code : {0U, 1U, 0x7FFFFFFFU, 0x80000000U, 0x80000001U, 0xFFFFFFFFU}) {
      kvmexit::fuzz::Check(!names->Name(isa, code).empty(), "an empty reason name");
    }
  }
  return 0;
}
