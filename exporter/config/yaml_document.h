// SPDX-License-Identifier: Apache-2.0
// The one way the exporter reads a YAML text (the configuration, the web
// configuration): a single document, with every problem placed at its
// file:line:column. yaml-cpp 0.7's own entry points hang on some hostile
// input and say only "bad file" on others; this keeps both out.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kvmexit {

// A problem at a place in a YAML text. Parsers throw it; Located() turns it
// into the message the user sees.
class YamlProblem : public std::runtime_error {
 public:
  YamlProblem(const YAML::Mark& mark, const std::string& message)
      : std::runtime_error(message), mark_(mark) {}
  const YAML::Mark& mark() const { return mark_; }

 private:
  YAML::Mark mark_;
};

// "<source>:<line>:<column>: <message>" (1-based), or "<source>: <message>"
// when yaml-cpp has no position.
std::string Located(std::string_view source, const YAML::Mark& mark, std::string_view message);

// The root of the single document in `text`; nullopt when the text holds no
// document (empty, or comments only). Throws YamlProblem for invalid YAML, a
// second document, or lists and maps nested deeper than yaml-cpp allows.
std::optional<YAML::Node> LoadSingleDocument(const std::string& text);

}  // namespace kvmexit
