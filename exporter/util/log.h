// SPDX-License-Identifier: Apache-2.0
// Minimal logfmt logging to stderr, in the style of Prometheus exporters:
//   ts=2026-11-27T05:40:00.123Z level=warn msg="..."
#pragma once

#include <string_view>

namespace kvmexit {

enum class LogLevel { kInfo, kWarn, kError };

void Log(LogLevel level, std::string_view message);

inline void LogInfo(std::string_view message) { Log(LogLevel::kInfo, message); }
inline void LogWarn(std::string_view message) { Log(LogLevel::kWarn, message); }
inline void LogError(std::string_view message) { Log(LogLevel::kError, message); }

}  // namespace kvmexit
