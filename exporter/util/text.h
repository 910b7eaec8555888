// SPDX-License-Identifier: Apache-2.0
// Small text helpers shared by every parser in the exporter (configuration,
// tracepoint formats, /proc files, command lines, cgroup paths): trimming,
// splitting, digit checks and exact number parsing. One copy here, so that
// "whitespace" or "a number" means the same thing in every file.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace kvmexit {

// Whitespace as C's isspace() in the "C" locale: space, \t, \n, \v, \f, \r.
inline constexpr std::string_view kWhitespace = " \t\n\v\f\r";

// `text` without leading / trailing / surrounding whitespace; a view into `text`.
std::string_view TrimLeft(std::string_view text) noexcept;
std::string_view TrimRight(std::string_view text) noexcept;
std::string_view Trim(std::string_view text) noexcept;

// True when `text` is one or more ASCII digits and nothing else (no sign, no space).
bool IsDigits(std::string_view text) noexcept;

// Every part between separators, empty ones included: "a,,b" -> {"a", "", "b"}
// and "" -> {""}. The parts are views into `text`.
std::vector<std::string_view> Split(std::string_view text, char separator);

// The non-empty parts only: path components, whitespace-separated fields.
std::vector<std::string_view> SplitNonEmpty(std::string_view text, char separator);

// The last component of a path: "/usr/bin/kvm" -> "kvm", "kvm" -> "kvm".
std::string_view Basename(std::string_view path) noexcept;

// `text` in double quotes, for messages: Quoted("a") is "\"a\"".
std::string Quoted(std::string_view text);

// ASCII lowercase copy (bytes >= 0x80 are kept as they are).
std::string ToLower(std::string_view text);

// `text` as a base-10 integer when it is exactly one, with nothing before or
// after it and no overflow; nullopt otherwise.
template <typename Integer>
std::optional<Integer> ParseDecimal(std::string_view text) noexcept {
  Integer value{};
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

}  // namespace kvmexit
