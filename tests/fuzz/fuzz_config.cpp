// SPDX-License-Identifier: Apache-2.0
// Fuzzes configuration parsing (ParseConfig in exporter/config/config.cpp) with YAML
// text: every input must give either a Config or a ConfigError carrying an
// actionable message, never a crash or an escaped exception.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "config/config.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  const auto result = kvmexit::ParseConfig(yaml, "fuzz.yml");
  if (const auto* error = std::get_if<kvmexit::ConfigError>(&result)) {
    kvmexit::fuzz::Check(error->message.starts_with("fuzz.yml"),
                         "a config error does not name its source");
  } else {
    // A valid config parses to the same Config again: parsing has no hidden state.
    const auto again = kvmexit::ParseConfig(yaml, "fuzz.yml");
    kvmexit::fuzz::Check(std::holds_alternative<kvmexit::Config>(again) &&
                             std::get<kvmexit::Config>(again) == std::get<kvmexit::Config>(result),
                         "the same YAML parsed to two different configs");
  }
  return 0;
}
