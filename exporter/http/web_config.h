// SPDX-License-Identifier: Apache-2.0
// What the HTTP server is told to do by the --web.config.file: TLS, basic
// authentication and extra response headers. The file itself (the
// exporter-toolkit format) is read by config/web_config_file.h; TLS defaults
// and the cipher suite and curve names: tls_priorities.h.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvmexit {

// Go's crypto/tls.ClientAuthType, by the names exporter-toolkit files use.
enum class ClientAuth {
  kNoClientCert,
  kRequestClientCert,
  kRequireAnyClientCert,
  kVerifyClientCertIfGiven,
  kRequireAndVerifyClientCert,
};

enum class TlsVersion { kTls10, kTls11, kTls12, kTls13 };

struct WebConfig {
  struct Tls {
    // Paths as written, made absolute against the web config file's directory
    // by LoadWebConfigFile (exporter-toolkit resolves them the same way).
    std::string cert_file;
    std::string key_file;
    std::string client_ca_file;  // empty: none
    ClientAuth client_auth = ClientAuth::kNoClientCert;
    TlsVersion min_version = TlsVersion::kTls12;
    TlsVersion max_version = TlsVersion::kTls13;
    // Go's names of TLS 1.0-1.2 suites, each known to tls_priorities.h; empty:
    // the defaults. TLS 1.3's suites are not configurable, as in Go.
    std::vector<std::string> cipher_suites;
    // Go's curve names (X25519, CurveP256...), preferred first; empty: all four.
    std::vector<std::string> curve_preferences;
    // The server's order of suites and curves wins (exporter-toolkit's default).
    bool prefer_server_cipher_suites = true;
    // PEM contents, read by LoadWebConfigFile; empty after ParseWebConfig.
    std::string cert_pem;
    std::string key_pem;
    std::string client_ca_pem;
  };
  std::optional<Tls> tls;  // nullopt: plain HTTP
  // user -> bcrypt hash ($2a$, $2b$ or $2y$). Empty: no authentication.
  std::map<std::string, std::string, std::less<>> basic_auth_users;
  // Extra response headers (name, value), from http_server_config.headers.
  std::vector<std::pair<std::string, std::string>> headers;
};

// "TLS12" for messages and the GnuTLS priority string.
std::string_view TlsVersionName(TlsVersion version);

}  // namespace kvmexit
