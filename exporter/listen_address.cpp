#include "listen_address.h"

#include <cctype>
#include <charconv>

namespace kvmexit {
namespace {

std::optional<std::uint16_t> ParsePort(std::string_view text) {
  unsigned port = 0;
  const char* end = text.data() + text.size();
  // from_chars on an unsigned type takes digits only: no sign, no spaces.
  const auto [ptr, ec] = std::from_chars(text.data(), end, port);
  if (text.empty() || ec != std::errc() || ptr != end || port < 1 || port > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(port);
}

bool IsHostName(std::string_view host) {
  for (const char c : host) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

// "::1", "fe80::1%eth0": hex groups with colons, optionally an IPv4 tail and a zone.
bool IsIpv6Literal(std::string_view host) {
  const std::size_t percent = host.find('%');
  const std::string_view address = host.substr(0, percent);
  const bool zone_ok = percent == std::string_view::npos ||
                       (percent + 1 < host.size() && IsHostName(host.substr(percent + 1)));
  return zone_ok && address.find(':') != std::string_view::npos &&
         address.find_first_not_of("0123456789abcdefABCDEF:.") == std::string_view::npos;
}

}  // namespace

std::optional<ListenAddress> ParseListenAddress(std::string_view text) {
  if (text.starts_with('[')) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view host = text.substr(1, close - 1);
    const std::string_view after = text.substr(close + 1);
    if (!IsIpv6Literal(host) || !after.starts_with(':')) return std::nullopt;
    const auto port = ParsePort(after.substr(1));
    if (!port) return std::nullopt;
    return ListenAddress{std::string(host), *port, true};
  }
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view host = text.substr(0, colon);
  const auto port = ParsePort(text.substr(colon + 1));
  if (!IsHostName(host) || !port) return std::nullopt;
  return ListenAddress{std::string(host), *port, false};
}

std::string FormatListenAddress(const ListenAddress& address) {
  const std::string port = std::to_string(address.port);
  return address.ipv6 ? "[" + address.host + "]:" + port : address.host + ":" + port;
}

}  // namespace kvmexit
