// SPDX-License-Identifier: Apache-2.0
#include "util/listen_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

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

// Letters, digits, '-', '_' and '.': what may name a host or an interface.
bool IsNameText(std::string_view text) {
  for (const char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

// An IPv4 literal or a host name. Digits and dots alone are meant as IPv4, so
// they must be four decimal bytes: "1.2.3.4.5" is no address, and the resolver
// would otherwise look it up as a name.
bool IsHost(std::string_view host) {
  if (host.empty()) return true;  // ":9756", all IPv4 addresses
  if (host.find_first_not_of("0123456789.") == std::string_view::npos) {
    in_addr ignored{};
    return ::inet_pton(AF_INET, std::string(host).c_str(), &ignored) == 1;
  }
  return IsNameText(host) && host.size() <= 253;
}

// "::1", "fe80::1%eth0": an address inet_pton reads as IPv6, and an optional zone.
bool IsIpv6Literal(std::string_view host) {
  const std::size_t percent = host.find('%');
  const std::string address(host.substr(0, percent));
  const bool zone_ok = percent == std::string_view::npos ||
                       (percent + 1 < host.size() && IsNameText(host.substr(percent + 1)));
  in6_addr ignored{};
  return zone_ok && ::inet_pton(AF_INET6, address.c_str(), &ignored) == 1;
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
  if (!IsHost(host) || !port) return std::nullopt;
  return ListenAddress{std::string(host), *port, false};
}

void AddrInfoDeleter::operator()(addrinfo* list) const { ::freeaddrinfo(list); }

AddrInfoList ResolveListenAddress(const ListenAddress& address, std::string* error) {
  addrinfo hints{};
  // An empty host means all IPv4 addresses (":9756"), as it always has.
  hints.ai_family = address.host.empty() ? AF_INET : (address.ipv6 ? AF_INET6 : AF_UNSPEC);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | (address.ipv6 ? AI_NUMERICHOST : 0);
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  const int status = ::getaddrinfo(address.host.empty() ? nullptr : address.host.c_str(),
                                   port.c_str(), &hints, &found);
  if (status != 0) {
    *error = "cannot resolve listen host \"" + address.host + "\": " + ::gai_strerror(status);
    return nullptr;
  }
  return AddrInfoList(found);
}

std::string FormatListenAddress(const ListenAddress& address) {
  const std::string port = std::to_string(address.port);
  return address.ipv6 ? "[" + address.host + "]:" + port : address.host + ":" + port;
}

}  // namespace kvmexit
