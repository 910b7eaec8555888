// SPDX-License-Identifier: Apache-2.0
#include "source/libbpf_log.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace kvmexit {
namespace {

// libbpf reports details through a global print callback: what it said since
// the last TakeLibbpfWarning (see there for which message wins).
std::mutex g_libbpf_log_mutex;
std::string g_libbpf_first_warning;
std::string g_verifier_verdict;

int KeepLibbpfMessage(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  std::array<char, 8192> buffer{};
  const int n = std::vsnprintf(buffer.data(), buffer.size(), format, args);
  std::string_view text(
      buffer.data(),
      n > 0 ? std::min<std::size_t>(static_cast<std::size_t>(n), buffer.size() - 1) : 0);
  constexpr std::string_view kPrefix = "libbpf: ";
  if (text.starts_with(kPrefix)) text.remove_prefix(kPrefix.size());
  while (text.ends_with('\n')) text.remove_suffix(1);
  std::lock_guard lock(g_libbpf_log_mutex);
  if (g_verifier_verdict.empty()) g_verifier_verdict = VerifierVerdict(text);
  if (g_libbpf_first_warning.empty()) g_libbpf_first_warning = text.substr(0, 300);
  return 0;
}

}  // namespace

void CaptureLibbpfLog() { libbpf_set_print(KeepLibbpfMessage); }

std::string TakeLibbpfWarning() {
  std::lock_guard lock(g_libbpf_log_mutex);
  std::string warning = g_verifier_verdict.empty() ? std::move(g_libbpf_first_warning)
                                                   : std::move(g_verifier_verdict);
  g_libbpf_first_warning.clear();
  g_verifier_verdict.clear();
  return warning;
}

std::string VerifierVerdict(std::string_view text) {
  const std::size_t processed = text.find("\nprocessed ");
  if (processed == std::string_view::npos) return "";
  const std::size_t newline = text.rfind('\n', processed - 1);
  const std::size_t begin = newline == std::string_view::npos ? 0 : newline + 1;
  return std::string(text.substr(begin, processed - begin));
}

}  // namespace kvmexit
