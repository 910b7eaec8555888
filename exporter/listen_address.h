// web.listen_address, parsed by one function for the configuration check, the
// command-line flag and the HTTP server alike, so that what passes the check
// is exactly what the server binds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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
std::optional<ListenAddress> ParseListenAddress(std::string_view text);

// The address as ParseListenAddress reads it: ":9756", "127.0.0.1:9756", "[::1]:9756".
std::string FormatListenAddress(const ListenAddress& address);

}  // namespace kvmexit
