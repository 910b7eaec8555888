// SPDX-License-Identifier: Apache-2.0
#include "http/accept_encoding.h"

#include <algorithm>
#include <optional>

namespace kvmexit {
namespace {

constexpr std::string_view kWhitespace = " \t";

std::string_view Trim(std::string_view text) {
  const std::size_t begin = text.find_first_not_of(kWhitespace);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(kWhitespace) - begin + 1);
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) {
      return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths.
std::optional<int> ParseQvalue(std::string_view text) {
  if (text.empty() || (text[0] != '0' && text[0] != '1')) return std::nullopt;
  const int whole = text[0] - '0';
  if (text.size() == 1) return whole * 1000;
  if (text[1] != '.' || text.size() > 5) return std::nullopt;
  int thousandths = 0;
  int scale = 100;
  for (const char c : text.substr(2)) {
    if (c < '0' || c > '9' || (whole == 1 && c != '0')) return std::nullopt;
    thousandths += (c - '0') * scale;
    scale /= 10;
  }
  return whole * 1000 + thousandths;
}

// The qvalue of one list member "coding *( OWS ";" OWS parameter )"; 1000
// without a q parameter, nullopt when the q parameter is malformed.
std::optional<int> MemberQvalue(std::string_view parameters) {
  int q = 1000;
  while (!parameters.empty()) {
    const std::size_t semicolon = parameters.find(';');
    const std::string_view parameter = Trim(parameters.substr(0, semicolon));
    parameters =
        semicolon == std::string_view::npos ? std::string_view{} : parameters.substr(semicolon + 1);
    const std::size_t equals = parameter.find('=');
    if (equals == std::string_view::npos) continue;
    if (!EqualsIgnoringCase(Trim(parameter.substr(0, equals)), "q")) continue;
    const std::optional<int> value = ParseQvalue(Trim(parameter.substr(equals + 1)));
    if (!value) return std::nullopt;
    q = *value;
  }
  return q;
}

}  // namespace

bool AcceptsGzip(std::string_view accept_encoding) {
  // An explicit gzip member wins over "*" whatever the order (RFC 9110: "*"
  // matches any coding not explicitly listed).
  std::optional<int> gzip_q;
  std::optional<int> any_q;
  while (!accept_encoding.empty()) {
    const std::size_t comma = accept_encoding.find(',');
    const std::string_view member = accept_encoding.substr(0, comma);
    accept_encoding =
        comma == std::string_view::npos ? std::string_view{} : accept_encoding.substr(comma + 1);
    const std::size_t semicolon = member.find(';');
    const std::string_view coding = Trim(member.substr(0, semicolon));
    const std::optional<int> q = MemberQvalue(
        semicolon == std::string_view::npos ? std::string_view{} : member.substr(semicolon + 1));
    if (!q) continue;
    // RFC 9110 section 8.4.1.3: x-gzip is to be read as gzip.
    if (EqualsIgnoringCase(coding, "gzip") || EqualsIgnoringCase(coding, "x-gzip")) {
      gzip_q = gzip_q ? std::max(*gzip_q, *q) : *q;
    } else if (coding == "*") {
      any_q = *q;
    }
  }
  if (gzip_q) return *gzip_q > 0;
  return any_q.value_or(0) > 0;
}

}  // namespace kvmexit
