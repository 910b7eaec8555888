// SPDX-License-Identifier: Apache-2.0
// Prometheus text exposition format (0.0.4) written straight into one string.
//
// The exporter used to build prometheus-cpp MetricFamily objects and serialize
// them through ostreams: at 1,000 VMs that is ~22,000 series, each with its own
// label vector and strings, formatted through locale-aware stream inserters.
// This writer appends text directly instead, and lets callers render a label
// set once (a VM's `vm` and `pid`, a reason's `isa`, `reason` and `code`) and
// reuse it in every series that carries it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace kvmexit {

// A histogram's samples are written by the caller as <name>_bucket (with `le`),
// <name>_sum and <name>_count.
enum class MetricType { kCounter, kGauge, kHistogram };

// A label with its raw (unescaped) value.
struct Label {
  std::string_view name;
  std::string_view value;
};

// Renders `name="value",...` without braces, values escaped as the text format
// requires (backslash, double quote, newline). Render a label set once and
// pass it to many ExpositionWriter::Sample calls.
std::string RenderLabels(std::initializer_list<Label> labels);
std::string RenderLabels(std::span<const Label> labels);

class ExpositionWriter {
 public:
  // `expected_bytes` is reserved up front, so a text the size of the previous
  // scrape's is written without reallocating (and copying) as it grows.
  explicit ExpositionWriter(std::size_t expected_bytes = 0);
  // The same, writing into `buffer` (cleared first) to reuse its memory.
  ExpositionWriter(std::string buffer, std::size_t expected_bytes);

  // Opens a family: its `# HELP` (escaped) and `# TYPE` lines. Samples of one
  // family must follow its header, before the next family begins.
  void Family(std::string_view name, std::string_view help, MetricType type);

  // One sample line. `label_sets` are RenderLabels results, joined with ',' in
  // order; empty sets are skipped, and no braces are written when all are empty.
  // Integers are written exactly (a double would round counts above 2^53).
  void Sample(std::string_view name, std::initializer_list<std::string_view> label_sets,
              std::uint64_t value);
  // Doubles are written in their shortest round-trip form; NaN and infinities
  // as `NaN`, `+Inf` and `-Inf`.
  void Sample(std::string_view name, std::initializer_list<std::string_view> label_sets,
              double value);

  const std::string& text() const { return text_; }
  // Hands the text over; the writer is empty afterwards.
  std::string Take();

 private:
  void BeginSample(std::string_view name, std::string_view suffix,
                   std::initializer_list<std::string_view> label_sets);

  std::string text_;
};

// Appends `value` escaped for a label value: `\` -> `\\`, `"` -> `\"`, newline -> `\n`.
void AppendEscapedLabelValue(std::string& out, std::string_view value);
// Appends `value` in shortest round-trip form, or `NaN`, `+Inf`, `-Inf`.
void AppendDouble(std::string& out, double value);
void AppendUint(std::string& out, std::uint64_t value);

}  // namespace kvmexit
