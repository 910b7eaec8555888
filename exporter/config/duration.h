// SPDX-License-Identifier: Apache-2.0
// Durations as the configuration writes them: an integer and a unit, "500ms",
// "30s", "5m", "1h"; "100us" too where a key needs microseconds. Parsed and
// formatted here only, so that every key and every message agree.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace kvmexit {

// Parses a duration such as "500ms", "10s", "5m", "1h". Returns nullopt when malformed.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

// ParseDuration with microseconds too: "1us", "250us", "10ms", "1s". For the
// keys finer than a millisecond (collector.exit_handling_buckets).
std::optional<std::chrono::microseconds> ParseFineDuration(std::string_view text);

// The inverse of ParseDuration, in the largest unit that is exact: 90000ms -> "90s",
// 300000ms -> "5m", 0 -> "0s". For messages and logs.
std::string FormatDuration(std::chrono::milliseconds duration);

// The inverse of ParseFineDuration, likewise: 1000us -> "1ms", 1048576us -> "1048576us".
std::string FormatFineDuration(std::chrono::microseconds duration);

}  // namespace kvmexit
