// SPDX-License-Identifier: Apache-2.0
// Fuzzes label values and the exposition writer (exporter/identity/label_value.cpp,
// exporter/render/exposition_writer.cpp): outside text goes through
// SanitizeLabelValue, as every VM name does, then into the text format. The
// output is parsed back by a small independent parser and must give exactly
// the values written; it must be valid UTF-8 with no raw newline in a value.
#include <fuzzer/FuzzedDataProvider.h>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "identity/label_value.h"
#include "render/exposition_writer.h"

namespace {

using kvmexit::fuzz::Check;

struct ParsedSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // unescaped
  std::string value;
};

// Reads a `"..."` label value at the start of `line`, undoing the text
// format's escapes; nullopt on a raw newline, an unknown escape or no end quote.
std::optional<std::string> ReadQuoted(std::string_view& line) {
  if (line.empty() || line.front() != '"') return std::nullopt;
  std::string value;
  for (std::size_t i = 1; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '"') {
      line.remove_prefix(i + 1);
      return value;
    }
    if (c == '\n') return std::nullopt;
    if (c != '\\') {
      value += c;
      continue;
    }
    if (++i == line.size()) return std::nullopt;
    switch (line[i]) {
      case '\\':
        value += '\\';
        break;
      case '"':
        value += '"';
        break;
      case 'n':
        value += '\n';
        break;
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;
}

// One sample line: name{label="value",...} value
std::optional<ParsedSample> ParseSampleLine(std::string_view line) {
  ParsedSample sample;
  const std::size_t name_end = line.find_first_of("{ ");
  if (name_end == std::string_view::npos || name_end == 0) return std::nullopt;
  sample.name = line.substr(0, name_end);
  line.remove_prefix(name_end);
  if (line.front() == '{') {
    line.remove_prefix(1);
    while (true) {
      const std::size_t equals = line.find('=');
      if (equals == std::string_view::npos || equals == 0) return std::nullopt;
      std::string label_name(line.substr(0, equals));
      line.remove_prefix(equals + 1);
      auto value = ReadQuoted(line);
      if (!value) return std::nullopt;
      sample.labels.emplace_back(std::move(label_name), std::move(*value));
      if (line.empty()) return std::nullopt;
      const char next = line.front();
      line.remove_prefix(1);
      if (next == '}') break;
      if (next != ',') return std::nullopt;
    }
  }
  if (line.empty() || line.front() != ' ') return std::nullopt;
  sample.value = line.substr(1);
  return sample;
}

// The lines of `text`, which must end with a newline.
std::vector<std::string_view> Lines(std::string_view text) {
  Check(text.empty() || text.back() == '\n', "exposition text does not end with a newline");
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    lines.push_back(text.substr(0, newline));
    text.remove_prefix(newline + 1);
  }
  return lines;
}

bool SameDouble(double written, std::string_view text) {
  if (std::isnan(written)) return text == "NaN";
  if (std::isinf(written)) return text == (written > 0 ? "+Inf" : "-Inf");
  double parsed = 0;
  const auto result = std::from_chars(text.data(), text.data() + text.size(), parsed);
  return result.ec == std::errc{} && result.ptr == text.data() + text.size() &&
         (parsed == written) && std::signbit(parsed) == std::signbit(written);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  const std::string raw_vm = input.ConsumeRandomLengthString(512);
  const std::string raw_reason = input.ConsumeRandomLengthString(256);
  const std::string raw_help = input.ConsumeRandomLengthString(256);
  const auto max_bytes = input.ConsumeIntegralInRange<std::size_t>(0, 200);
  const auto count = input.ConsumeIntegral<std::uint64_t>();
  const auto rate = input.ConsumeFloatingPoint<double>();
  const std::string raw_rest = input.ConsumeRemainingBytesAsString();

  // Label values: what SanitizeLabelValue promises, and that it is idempotent.
  const std::string vm = kvmexit::SanitizeLabelValue(raw_vm);
  const std::string reason = kvmexit::SanitizeLabelValue(raw_reason, max_bytes);
  const std::string rest = kvmexit::TrimmedLabelValue(raw_rest);
  Check(kvmexit::fuzz::IsCleanLabelValue(vm, kvmexit::kMaxVmLabelBytes), "unclean vm label");
  Check(kvmexit::fuzz::IsCleanLabelValue(reason, max_bytes), "unclean bounded label");
  Check(kvmexit::fuzz::IsCleanLabelValue(rest, kvmexit::kMaxVmLabelBytes), "unclean trimmed label");
  Check(kvmexit::SanitizeLabelValue(vm) == vm, "SanitizeLabelValue is not idempotent");
  if (raw_vm.size() <= kvmexit::kMaxVmLabelBytes &&
      kvmexit::fuzz::IsCleanLabelValue(raw_vm, kvmexit::kMaxVmLabelBytes)) {
    Check(vm == raw_vm, "SanitizeLabelValue changed an already clean value");
  }
  // HELP texts are the exporter's own, but must survive any character.
  const std::string help = kvmexit::SanitizeLabelValue(raw_help, 1024);

  // Write two families the way WriteExitFamilies does: label sets rendered
  // once, reused, and one raw (unsanitised) value to test escaping alone.
  const std::string vm_labels = kvmexit::RenderLabels({{"vm", vm}, {"pid", "42"}});
  const std::string reason_labels = kvmexit::RenderLabels({{"reason", reason}, {"code", rest}});
  const std::string raw_labels = kvmexit::RenderLabels({{"raw", raw_vm}});
  kvmexit::ExpositionWriter writer;
  writer.Family("kvm_exits_total", help, kvmexit::MetricType::kCounter);
  writer.Sample("kvm_exits_total", {vm_labels, reason_labels}, count);
  writer.Sample("kvm_exits_total", {"", vm_labels, ""}, count);
  writer.Family("kvm_exit_rate", raw_help, kvmexit::MetricType::kGauge);
  writer.Sample("kvm_exit_rate", {reason_labels}, rate);
  writer.Sample("kvm_exit_rate", {raw_labels}, rate);
  writer.Sample("kvm_exit_rate", {}, rate);
  const std::string text = writer.Take();

  // Every line is a HELP, a TYPE or a sample, and parses back to what was written.
  const std::vector<std::string_view> lines = Lines(text);
  Check(lines.size() == 9, "a value or HELP text broke the line structure");
  for (const std::size_t i : {0U, 1U, 4U, 5U}) {
    Check(lines[i].starts_with(i % 4 == 0 ? "# HELP " : "# TYPE "), "a comment line is missing");
  }
  Check(kvmexit::fuzz::IsValidUtf8(lines[0]), "HELP text of clean input is not valid UTF-8");
  using Labels = std::vector<std::pair<std::string, std::string>>;
  const std::pair<std::size_t, Labels> expected[] = {
      {2, {{"vm", vm}, {"pid", "42"}, {"reason", reason}, {"code", rest}}},
      {3, {{"vm", vm}, {"pid", "42"}}},
      {6, {{"reason", reason}, {"code", rest}}},
      {7, {{"raw", raw_vm}}},
      {8, {}},
  };
  for (const auto& [line_number, labels] : expected) {
    const std::string_view line = lines[line_number];
    if (line_number != 7) Check(kvmexit::fuzz::IsValidUtf8(line), "a sample is not valid UTF-8");
    const auto sample = ParseSampleLine(line);
    Check(sample.has_value(), "a sample line does not parse");
    Check(sample->labels == labels, "label values do not round-trip");
    const bool integer = line_number < 4;
    Check(integer ? sample->value == std::to_string(count) : SameDouble(rate, sample->value),
          "a sample value does not round-trip");
  }
  return 0;
}
