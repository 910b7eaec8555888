// SPDX-License-Identifier: Apache-2.0
#include "render/exposition_writer.h"

#include <array>
#include <charconv>
#include <cmath>

namespace kvmexit {
namespace {

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// HELP text escapes only backslash and newline (a double quote stays as is).
void AppendEscapedHelp(std::string& out, std::string_view help) {
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

}  // namespace

void AppendEscapedLabelValue(std::string& out, std::string_view value) {
  std::size_t plain_from = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c != '\\' && c != '"' && c != '\n') continue;
    out.append(value.substr(plain_from, i - plain_from));
    out += '\\';
    out += c == '\n' ? 'n' : c;
    plain_from = i + 1;
  }
  out.append(value.substr(plain_from));
}

void AppendUint(std::string& out, std::uint64_t value) {
  std::array<char, 24> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  out.append(buffer.data(), result.ptr);
}

void AppendDouble(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    std::array<char, 32> buffer{};  // the longest shortest form is 24 characters
    const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    out.append(buffer.data(), result.ptr);
  }
}

std::string RenderLabels(std::initializer_list<Label> labels) {
  return RenderLabels(std::span<const Label>(labels.begin(), labels.size()));
}

std::string RenderLabels(std::span<const Label> labels) {
  std::string text;
  for (const Label& label : labels) {
    if (!text.empty()) text += ',';
    text += label.name;
    text += "=\"";
    AppendEscapedLabelValue(text, label.value);
    text += '"';
  }
  return text;
}

ExpositionWriter::ExpositionWriter(std::size_t expected_bytes) { text_.reserve(expected_bytes); }

ExpositionWriter::ExpositionWriter(std::string buffer, std::size_t expected_bytes)
    : text_(std::move(buffer)) {
  text_.clear();
  text_.reserve(expected_bytes);
}

void ExpositionWriter::Family(std::string_view name, std::string_view help, MetricType type) {
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  AppendEscapedHelp(text_, help);
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += TypeName(type);
  text_ += '\n';
}

void ExpositionWriter::BeginSample(std::string_view name, std::string_view suffix,
                                   std::initializer_list<std::string_view> label_sets) {
  text_ += name;
  text_ += suffix;
  bool open = false;
  for (const std::string_view labels : label_sets) {
    if (labels.empty()) continue;
    text_ += open ? ',' : '{';
    text_ += labels;
    open = true;
  }
  text_ += open ? "} " : " ";
}

void ExpositionWriter::Sample(std::string_view name,
                              std::initializer_list<std::string_view> label_sets,
                              std::uint64_t value) {
  BeginSample(name, "", label_sets);
  AppendUint(text_, value);
  text_ += '\n';
}

void ExpositionWriter::Sample(std::string_view name,
                              std::initializer_list<std::string_view> label_sets, double value) {
  BeginSample(name, "", label_sets);
  AppendDouble(text_, value);
  text_ += '\n';
}

std::string ExpositionWriter::Take() {
  std::string text = std::move(text_);
  text_.clear();
  return text;
}

}  // namespace kvmexit
