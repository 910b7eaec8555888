// SPDX-License-Identifier: Apache-2.0
#include "util/text.h"

#include <algorithm>

namespace kvmexit {

std::string_view TrimLeft(std::string_view text) noexcept {
  const std::size_t first = text.find_first_not_of(kWhitespace);
  return first == std::string_view::npos ? std::string_view() : text.substr(first);
}

std::string_view TrimRight(std::string_view text) noexcept {
  const std::size_t last = text.find_last_not_of(kWhitespace);
  return last == std::string_view::npos ? std::string_view() : text.substr(0, last + 1);
}

std::string_view Trim(std::string_view text) noexcept { return TrimRight(TrimLeft(text)); }

bool IsDigits(std::string_view text) noexcept {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(separator, start), text.size());
    parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::vector<std::string_view> SplitNonEmpty(std::string_view text, char separator) {
  auto parts = Split(text, separator);
  std::erase_if(parts, [](std::string_view part) { return part.empty(); });
  return parts;
}

std::string_view Basename(std::string_view path) noexcept {
  const std::size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string Quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string ToLower(std::string_view text) {
  std::string lower(text);
  // Not std::tolower: its result depends on the process locale.
  std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return lower;
}

}  // namespace kvmexit
