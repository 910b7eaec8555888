// SPDX-License-Identifier: Apache-2.0
// web.listen_address, parsed by one function for the configuration check, the
// command-line flag and the HTTP server alike, so that what passes the check
// is exactly what the server binds.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct addrinfo;

namespace kvmexit {

struct ListenAddress {
  std::string host;  // "" for all IPv4 addresses (":9756"); an IPv6 literal without brackets
  std::uint16_t port = 0;
  bool ipv6 = false;  // written in brackets: "[::1]:9756"

  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

// What ParseListenAddress accepts, for error messages.
inline constexpr std::string_view kListenAddressRule =
    "host:port or :port with a port from 1 to 65535 (IPv6 as [::1]:9756)";

// "host:port", ":port" or "[v6]:port" with a port from 1 to 65535; nullopt otherwise.
// A host of digits and dots must be an IPv4 address (not "1.2.3.4.5"), one in
// brackets an IPv6 address; any other host must be a name of letters, digits,
// '-', '_' and '.', which ResolveListenAddress looks up.
std::optional<ListenAddress> ParseListenAddress(std::string_view text);

struct AddrInfoDeleter {
  void operator()(addrinfo* list) const;
};
using AddrInfoList = std::unique_ptr<addrinfo, AddrInfoDeleter>;

// The socket addresses a listening socket on `address` may bind (getaddrinfo
// with AI_PASSIVE), for the server and for the configuration check alike, so a
// host name that does not resolve fails the check, not only the start. On
// failure returns nullptr and sets *error: cannot resolve listen host "nohost": <reason>.
AddrInfoList ResolveListenAddress(const ListenAddress& address, std::string* error);

// The address as ParseListenAddress reads it: ":9756", "127.0.0.1:9756", "[::1]:9756".
std::string FormatListenAddress(const ListenAddress& address);

}  // namespace kvmexit
