// SPDX-License-Identifier: Apache-2.0
// Fuzzes web configuration parsing (ParseWebConfig in exporter/http/web_config.cpp,
// the --web.config.file) with YAML text: every input must give either a
// WebConfig or a WebConfigError naming its source, never a crash, a hang or an
// escaped exception.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "config/web_config_file.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  const auto result = kvmexit::ParseWebConfig(yaml, "web.yml");
  if (const auto* error = std::get_if<kvmexit::WebConfigError>(&result)) {
    kvmexit::fuzz::Check(error->message.starts_with("web.yml"),
                         "a web config error does not name its source");
  }
  return 0;
}
