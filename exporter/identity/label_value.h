// SPDX-License-Identifier: Apache-2.0
// Label values: turns text from outside the exporter (command-line arguments,
// cgroup names, configuration files, process names) into a valid UTF-8
// Prometheus label value of bounded size. Nothing here throws.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kvmexit {

// Label values are capped so a hostile or runaway command line cannot blow up series size.
inline constexpr std::size_t kMaxVmLabelBytes = 128;

// Makes `text` a valid UTF-8 label value of at most `max_bytes` bytes: invalid
// bytes and control characters become '_', and a cut never splits a character.
std::string SanitizeLabelValue(std::string_view text,
                               std::size_t max_bytes = kMaxVmLabelBytes) noexcept;

// SanitizeLabelValue of `text` without its surrounding whitespace ("" when
// nothing is left). The one exit of every VM name, whichever identity source
// found it: IdentifyVm (vm_identity.cpp) applies it; the sources do not.
std::string TrimmedLabelValue(std::string_view text) noexcept;

}  // namespace kvmexit
