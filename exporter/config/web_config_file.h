// SPDX-License-Identifier: Apache-2.0
// The --web.config.file, in the file format of the Prometheus exporter-toolkit,
// so that a file written for node_exporter works here. Keys this exporter
// cannot honour (client_allowed_sans, rate_limit...) are refused by name,
// never silently ignored: a security setting that is not applied must not
// look as if it were.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "http/web_config.h"

namespace kvmexit {

struct WebConfigError {
  std::string message;  // "<source>:<line>:<column>: <what is wrong>; <what is allowed>"
};

// Parses `yaml_text` and checks every key and value; reads no file (a fuzz
// target can call it). `source_name` prefixes the messages.
std::variant<WebConfig, WebConfigError> ParseWebConfig(std::string_view yaml_text,
                                                       std::string_view source_name);

// Reads and parses the file at `path`, resolves the TLS paths against its
// directory and reads the certificate, key and CA files into the *_pem fields.
std::variant<WebConfig, WebConfigError> LoadWebConfigFile(const std::string& path);

}  // namespace kvmexit
