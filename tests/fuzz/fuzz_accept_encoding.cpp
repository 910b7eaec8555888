// SPDX-License-Identifier: Apache-2.0
// Fuzzes the Accept-Encoding parser (exporter/http/accept_encoding.cpp) with the raw
// header value. Beyond sanitizer findings it checks that gzip is never granted
// by a header that names neither gzip nor "*".
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "http/accept_encoding.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view header(reinterpret_cast<const char*>(data), size);
  const bool gzip = kvmexit::AcceptsGzip(header);
  if (header.find_first_of("gG*") == std::string_view::npos) {
    kvmexit::fuzz::Check(!gzip, "gzip accepted from a header naming neither gzip nor *");
  }
  kvmexit::fuzz::Check(kvmexit::AcceptsGzip(header) == gzip, "AcceptsGzip is not deterministic");
  return 0;
}
