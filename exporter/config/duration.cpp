// SPDX-License-Identifier: Apache-2.0
#include "config/duration.h"

#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <utility>

#include "util/text.h"

namespace kvmexit {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

using UnitTable = std::map<std::string_view, std::int64_t>;

// A decimal count followed by one of `units`, in the table's grain.
std::optional<std::int64_t> ParseCount(std::string_view text, const UnitTable& units) {
  std::int64_t count = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
  const auto digits = static_cast<std::size_t>(end - text.data());
  if (ec != std::errc() || !IsDigits(text.substr(0, digits))) return std::nullopt;
  const auto unit = units.find(text.substr(digits));
  if (unit == units.end()) return std::nullopt;
  if (count > std::numeric_limits<std::int64_t>::max() / unit->second) return std::nullopt;
  return count * unit->second;
}

// `count` in the largest of `units` (largest first) that is exact, else in `grain_unit`.
std::string FormatCount(std::int64_t count,
                        std::span<const std::pair<std::int64_t, std::string_view>> units,
                        std::string_view grain_unit) {
  if (count == 0) return "0s";
  for (const auto& [size, unit] : units) {
    if (count % size == 0) return std::to_string(count / size) + std::string(unit);
  }
  return std::to_string(count) + std::string(grain_unit);
}

}  // namespace

std::optional<milliseconds> ParseDuration(std::string_view text) {
  static const UnitTable kUnitMilliseconds = {
      {"ms", 1}, {"s", 1'000}, {"m", 60'000}, {"h", 3'600'000}};
  const std::optional<std::int64_t> count = ParseCount(text, kUnitMilliseconds);
  if (!count) return std::nullopt;
  return milliseconds(*count);
}

std::optional<microseconds> ParseFineDuration(std::string_view text) {
  static const UnitTable kUnitMicroseconds = {
      {"us", 1}, {"ms", 1'000}, {"s", 1'000'000}, {"m", 60'000'000}, {"h", 3'600'000'000}};
  const std::optional<std::int64_t> count = ParseCount(text, kUnitMicroseconds);
  if (!count) return std::nullopt;
  return microseconds(*count);
}

std::string FormatDuration(milliseconds duration) {
  static constexpr std::pair<std::int64_t, std::string_view> kUnits[] = {
      {3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}};
  return FormatCount(duration.count(), kUnits, "ms");
}

std::string FormatFineDuration(microseconds duration) {
  static constexpr std::pair<std::int64_t, std::string_view> kUnits[] = {
      {3'600'000'000, "h"}, {60'000'000, "m"}, {1'000'000, "s"}, {1'000, "ms"}};
  return FormatCount(duration.count(), kUnits, "us");
}

}  // namespace kvmexit
