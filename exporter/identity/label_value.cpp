// SPDX-License-Identifier: Apache-2.0
#include "identity/label_value.h"

#include <cstdint>
#include <utility>

#include "util/text.h"

namespace kvmexit {
namespace {

// Decodes one UTF-8 character at the start of `text`: its length and code
// point, or length 0 when the bytes there are not valid UTF-8.
std::pair<std::size_t, std::uint32_t> DecodeUtf8(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return {1, lead};
  std::size_t length = 0;
  std::uint32_t code_point = 0, minimum = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, code_point = lead & 0x1F, minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, code_point = lead & 0x0F, minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, code_point = lead & 0x07, minimum = 0x10000;
  } else {
    return {0, 0};
  }
  if (text.size() < length) return {0, 0};
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return {0, 0};
    code_point = (code_point << 6) | (byte(i) & 0x3F);
  }
  const bool overlong = code_point < minimum;
  const bool surrogate = code_point >= 0xD800 && code_point <= 0xDFFF;
  if (overlong || surrogate || code_point > 0x10FFFF) return {0, 0};
  return {length, code_point};
}

bool IsControl(std::uint32_t code_point) {
  return code_point < 0x20 || (code_point >= 0x7F && code_point <= 0x9F);
}

}  // namespace

std::string SanitizeLabelValue(std::string_view text, std::size_t max_bytes) noexcept {
  try {
    std::string out;
    while (!text.empty()) {
      auto [length, code_point] = DecodeUtf8(text);
      const bool replace = length == 0 || IsControl(code_point);
      const std::size_t out_length = replace ? 1 : length;
      if (out.size() + out_length > max_bytes) break;
      if (replace) {
        out += '_';
      } else {
        out.append(text.substr(0, length));
      }
      text.remove_prefix(length == 0 ? 1 : length);
    }
    return out;
  } catch (...) {
    return {};
  }
}

std::string TrimmedLabelValue(std::string_view text) noexcept {
  std::string value = SanitizeLabelValue(Trim(text));
  // Trimmed again: the cut at kMaxVmLabelBytes can leave a space at the end
  // (found by tests/fuzz/fuzz_vm_identity). Nothing leads, so this drops only the tail.
  value.resize(Trim(value).size());
  return value;
}

}  // namespace kvmexit
