// SPDX-License-Identifier: Apache-2.0
#include "config/web_config_file.h"

#include <gnutls/gnutls.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/yaml_document.h"
#include "config/yaml_walker.h"
#include "http/tls_priorities.h"
#include "util/file_text.h"
#include "util/text.h"

namespace kvmexit {
namespace {

// A file path: cert_file, key_file, client_ca_file.
std::string ReadFilePath(const YamlValue& value) {
  if (value.node.IsNull()) value.FailWith("must not be empty");
  std::string text = ScalarText(value, "a file path");
  if (text.empty()) value.FailWith("must not be empty");
  return text;
}

struct ClientAuthName {
  std::string_view name;
  ClientAuth value;
};
constexpr ClientAuthName kClientAuthNames[] = {
    {"NoClientCert", ClientAuth::kNoClientCert},
    {"RequestClientCert", ClientAuth::kRequestClientCert},
    {"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert},
    {"VerifyClientCertIfGiven", ClientAuth::kVerifyClientCertIfGiven},
    {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerifyClientCert},
};
constexpr TlsVersion kTlsVersions[] = {TlsVersion::kTls10, TlsVersion::kTls11, TlsVersion::kTls12,
                                       TlsVersion::kTls13};

ClientAuth ReadClientAuth(const YamlValue& value) {
  const std::string& text = ScalarText(value, "a client auth type");
  std::string names;
  for (const auto& [name, auth] : kClientAuthNames) {
    if (text == name) return auth;
    names.append(names.empty() ? "" : ", ").append(name);
  }
  value.FailWith("unknown client auth type \"" + text + "\"; use one of " + names);
}

TlsVersion ReadTlsVersion(const YamlValue& value) {
  const std::string& text = ScalarText(value, "a TLS version");
  for (const TlsVersion version : kTlsVersions) {
    if (text == TlsVersionName(version)) return version;
  }
  value.FailWith("unknown TLS version \"" + text + "\"; use one of TLS10, TLS11, TLS12, TLS13");
}

// The names of a YAML list, each once, each accepted by `check` (which throws
// at the name's place); an empty value is an empty list.
template <typename Check>
std::vector<std::string> ReadNameList(const YamlValue& list, Check check) {
  std::vector<std::string> names;
  ForEachItem(list, "a list of names", [&](const YamlValue& item) {
    const std::string& name = ScalarText(item, "a name");
    check(item, name);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  });
  return names;
}

std::vector<std::string> ReadCipherSuites(const YamlValue& list) {
  return ReadNameList(list, [&](const YamlValue& item, const std::string& name) {
    const GoCipherSuite* suite = FindGoCipherSuite(name);
    if (suite == nullptr) {
      item.Fail(list.name + ": unknown cipher suite \"" + name +
                "\"; use Go's names, such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 "
                "(docs/deploy.md lists them)");
    }
    if (!suite->refused.empty()) {
      item.Fail(list.name + ": " + name + " is " + std::string(suite->refused) + "; remove it");
    }
  });
}

std::vector<std::string> ReadCurves(const YamlValue& list) {
  return ReadNameList(list, [&](const YamlValue& item, const std::string& name) {
    if (FindGoCurve(name) == nullptr) {
      item.Fail(list.name + ": unknown curve \"" + name + "\"; use one of " + GoCurveNames());
    }
  });
}

bool NeedsClientCa(ClientAuth auth) {
  return auth == ClientAuth::kVerifyClientCertIfGiven ||
         auth == ClientAuth::kRequireAndVerifyClientCert;
}

// Versions, suites and curves that GnuTLS cannot offer exactly as written
// are refused here, so that --config.check finds them and not a handshake.
void CheckTlsPriorities(const YamlValue& section, const WebConfig::Tls& tls,
                        const std::optional<YamlValue>& max_version,
                        const std::optional<YamlValue>& cipher_suites,
                        const std::optional<YamlValue>& curves) {
  if (tls.max_version < tls.min_version) {
    max_version->Fail(section.name +
                      ".max_version: " + std::string(TlsVersionName(tls.max_version)) +
                      " is below min_version " + std::string(TlsVersionName(tls.min_version)));
  }
  if (!tls.cipher_suites.empty() && tls.min_version == TlsVersion::kTls13) {
    throw YamlProblem(cipher_suites->key_mark,
                      section.name +
                          ".cipher_suites applies to TLS 1.0-1.2 only (TLS 1.3 suites are not "
                          "configurable), and min_version is TLS13; remove it");
  }
  if (const std::string problem = TlsPrioritiesProblem(tls); !problem.empty()) {
    if (cipher_suites) {
      throw YamlProblem(cipher_suites->key_mark, section.name + ".cipher_suites: " + problem);
    }
    throw YamlProblem(curves ? curves->key_mark : section.key_mark, section.name + ": " + problem);
  }
}

std::optional<WebConfig::Tls> ReadTls(const YamlValue& section) {
  // `tls_server_config:` with nothing below: plain HTTP.
  if (section.node.IsNull() || (section.node.IsMap() && section.node.size() == 0)) {
    return std::nullopt;
  }
  WebConfig::Tls tls;
  std::optional<YamlValue> client_ca_file;
  std::optional<YamlValue> max_version;
  std::optional<YamlValue> cipher_suites;
  std::optional<YamlValue> curves;
  const YamlField fields[] = {
      {"cert_file", [&](const YamlValue& value) { tls.cert_file = ReadFilePath(value); }},
      {"key_file", [&](const YamlValue& value) { tls.key_file = ReadFilePath(value); }},
      {"client_auth_type",
       [&](const YamlValue& value) { tls.client_auth = ReadClientAuth(value); }},
      {"client_ca_file",
       [&](const YamlValue& value) {
         tls.client_ca_file = ReadFilePath(value);
         client_ca_file = value;
       }},
      {"min_version", [&](const YamlValue& value) { tls.min_version = ReadTlsVersion(value); }},
      {"max_version",
       [&](const YamlValue& value) {
         tls.max_version = ReadTlsVersion(value);
         max_version = value;
       }},
      {"cipher_suites",
       [&](const YamlValue& value) {
         tls.cipher_suites = ReadCipherSuites(value);
         cipher_suites = value;
       }},
      {"curve_preferences",
       [&](const YamlValue& value) {
         tls.curve_preferences = ReadCurves(value);
         curves = value;
       }},
      {"prefer_server_cipher_suites",
       [&](const YamlValue& value) { tls.prefer_server_cipher_suites = ReadBool(value); }},
  };
  const RefusedKey refused[] = {
      {"cert", "inline PEM; put it in a file and use cert_file"},
      {"key", "inline PEM; put it in a file and use key_file"},
      {"client_ca", "inline PEM; put it in a file and use client_ca_file"},
      {"client_allowed_sans", "client certificates are checked against client_ca_file only"},
  };
  WalkMap(section, fields, {}, refused);
  const auto missing = [&](std::string_view key) {
    return YamlProblem(section.key_mark, section.name + ": " + std::string(key) +
                                             " is missing; TLS needs cert_file and key_file");
  };
  if (tls.cert_file.empty()) throw missing("cert_file");
  if (tls.key_file.empty()) throw missing("key_file");
  if (client_ca_file && tls.client_auth == ClientAuth::kNoClientCert) {
    throw YamlProblem(client_ca_file->key_mark,
                      section.name +
                          ".client_ca_file is set but client_auth_type is NoClientCert; "
                          "set client_auth_type to RequireAndVerifyClientCert");
  }
  if (NeedsClientCa(tls.client_auth) && tls.client_ca_file.empty()) {
    throw YamlProblem(section.key_mark,
                      section.name + ": client_auth_type " +
                          std::string(kClientAuthNames[static_cast<int>(tls.client_auth)].name) +
                          " needs client_ca_file, the CA that signs client certificates");
  }
  CheckTlsPriorities(section, tls, max_version, cipher_suites, curves);
  return tls;
}

// The response headers a file may set, as in exporter-toolkit: others, such as
// Content-Type or Authorization, would break the responses or the
// authentication.
struct HeaderRule {
  std::string_view name;
  std::array<std::string_view, 2> values;  // what it may be, in any case; none: any one line
};
constexpr HeaderRule kHeaderRules[] = {
    {"Content-Security-Policy", {}},         {"X-Frame-Options", {"deny", "sameorigin"}},
    {"X-Content-Type-Options", {"nosniff"}}, {"X-XSS-Protection", {}},
    {"Strict-Transport-Security", {}},
};

// A header's value; blank means unset, as in exporter-toolkit.
void ReadHeader(const YamlValue& value, const HeaderRule& rule, WebConfig& config) {
  const std::string text = value.node.IsNull() ? "" : ScalarText(value, "a header value");
  std::string allowed;
  bool is_allowed = rule.values[0].empty();
  for (const std::string_view allowed_value : rule.values) {
    if (allowed_value.empty()) continue;
    is_allowed = is_allowed || ToLower(text) == allowed_value;
    allowed.append(allowed.empty() ? "" : " or ").append(allowed_value);
  }
  if (!text.empty() && !is_allowed) value.FailWith("must be " + allowed + ", got \"" + text + "\"");
  if (text.find_first_of("\r\n") != std::string::npos) value.FailWith("must be one line");
  if (!text.empty()) config.headers.emplace_back(rule.name, text);
}

void ReadHeaders(const YamlValue& section, WebConfig& config) {
  std::vector<YamlField> fields;
  for (const HeaderRule& rule : kHeaderRules) {
    fields.push_back(
        {rule.name, [&rule, &config](const YamlValue& value) { ReadHeader(value, rule, config); }});
  }
  WalkMap(section, fields, {.noun = "header"});
}

void ReadHttpServerConfig(const YamlValue& section, WebConfig& config) {
  const YamlField fields[] = {
      {"headers", [&](const YamlValue& value) { ReadHeaders(value, config); }},
      {"http2",
       [&](const YamlValue& value) {
         if (ReadBool(value)) {
           value.FailUnsupported("libmicrohttpd serves HTTP/1.1 only; set it to false");
         }
       }},
  };
  WalkMap(section, fields);
}

// bcrypt in the modular crypt format: $2a$, $2b$ or $2y$, a two-digit cost
// from 04 to 31, then 53 characters of salt and hash.
bool IsBcryptHash(std::string_view hash) {
  constexpr std::size_t kLength = 60;
  if (hash.size() != kLength || hash[0] != '$' || hash[1] != '2' || hash[3] != '$' ||
      hash[6] != '$') {
    return false;
  }
  if (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') return false;
  const auto cost = ParseDecimal<int>(hash.substr(4, 2));
  return cost && *cost >= 4 && *cost <= 31;
}

void ReadBasicAuthUsers(const YamlValue& section, WebConfig& config) {
  ForEachEntry(
      section, {.noun = "user name"}, [&](const std::string& user, const YamlValue& value) {
        if (user.empty() || user.find(':') != std::string::npos) {
          throw YamlProblem(value.key_mark,
                            section.name + ": user name \"" + user +
                                "\" must be non-empty and without ':' (Basic authentication "
                                "separates user and password with it)");
        }
        const std::string& hash = ScalarText(value, "a bcrypt hash");
        if (!IsBcryptHash(hash)) {
          value.FailWith(
              "must be a bcrypt hash ($2y$10$ and 53 more characters), not a password; make one "
              "with "
              "htpasswd -nbB USER PASSWORD");
        }
        config.basic_auth_users.emplace(user, hash);
      });
}

WebConfig ReadDocument(const YamlValue& root) {
  WebConfig config;
  const YamlField fields[] = {
      {"tls_server_config", [&](const YamlValue& value) { config.tls = ReadTls(value); }},
      {"http_server_config", [&](const YamlValue& value) { ReadHttpServerConfig(value, config); }},
      {"basic_auth_users", [&](const YamlValue& value) { ReadBasicAuthUsers(value, config); }},
  };
  const RefusedKey refused[] = {{"rate_limit", "limit clients with a reverse proxy"}};
  WalkMap(root, fields, {.label = "the web config"}, refused);
  return config;
}

// A relative path in the file means relative to the file's directory.
std::string Resolve(const std::string& config_path, const std::string& path) {
  if (path.starts_with('/')) return path;
  const std::size_t slash = config_path.rfind('/');
  return slash == std::string::npos ? path : config_path.substr(0, slash + 1) + path;
}

struct CredentialsDeleter {
  void operator()(gnutls_certificate_credentials_st* credentials) const {
    gnutls_certificate_free_credentials(credentials);
  }
};

// Lets GnuTLS parse the files now, so that --config.check and start-up name a
// wrong file instead of the server failing on its first connection.
std::string CheckWithGnuTls(const WebConfig::Tls& tls) {
  gnutls_certificate_credentials_t raw = nullptr;
  if (gnutls_certificate_allocate_credentials(&raw) != GNUTLS_E_SUCCESS) {
    return "GnuTLS cannot allocate credentials";
  }
  const std::unique_ptr<gnutls_certificate_credentials_st, CredentialsDeleter> credentials(raw);
  const auto datum = [](const std::string& text) {
    return gnutls_datum_t{reinterpret_cast<unsigned char*>(const_cast<char*>(text.data())),
                          static_cast<unsigned>(text.size())};
  };
  const gnutls_datum_t cert = datum(tls.cert_pem);
  const gnutls_datum_t key = datum(tls.key_pem);
  if (const int status = gnutls_certificate_set_x509_key_mem(raw, &cert, &key, GNUTLS_X509_FMT_PEM);
      status < 0) {
    return "cert_file " + tls.cert_file + " and key_file " + tls.key_file +
           " are not a matching PEM certificate and key: " + gnutls_strerror(status);
  }
  if (!tls.client_ca_pem.empty()) {
    const gnutls_datum_t ca = datum(tls.client_ca_pem);
    if (gnutls_certificate_set_x509_trust_mem(raw, &ca, GNUTLS_X509_FMT_PEM) <= 0) {
      return "client_ca_file " + tls.client_ca_file + " holds no PEM certificate";
    }
  }
  return "";
}

}  // namespace

std::variant<WebConfig, WebConfigError> ParseWebConfig(std::string_view yaml_text,
                                                       std::string_view source_name) {
  WebConfig config;
  std::string error = WalkYamlText(
      yaml_text, source_name, [&config](const YamlValue& root) { config = ReadDocument(root); });
  if (!error.empty()) return WebConfigError{std::move(error)};
  return config;
}

std::variant<WebConfig, WebConfigError> LoadWebConfigFile(const std::string& path) {
  std::string text;
  if (std::string error = ReadUserFile(path, "the web config file", kMaxConfigFileBytes, &text);
      !error.empty()) {
    return WebConfigError{std::move(error)};
  }
  auto parsed = ParseWebConfig(text, path);
  auto* config = std::get_if<WebConfig>(&parsed);
  if (config == nullptr || !config->tls) return parsed;
  WebConfig::Tls& tls = *config->tls;
  const auto read = [&](std::string_view key, std::string& file_path, std::string& pem) {
    if (file_path.empty()) return std::string();
    file_path = Resolve(path, file_path);
    // A PEM file is a few kilobytes: the configuration's bound serves.
    if (std::string error = ReadUserFile(file_path, "the file", kMaxConfigFileBytes, &pem);
        !error.empty()) {
      return path + ": tls_server_config." + std::string(key) + ": " + error;
    }
    return std::string();
  };
  for (std::string error :
       {read("cert_file", tls.cert_file, tls.cert_pem), read("key_file", tls.key_file, tls.key_pem),
        read("client_ca_file", tls.client_ca_file, tls.client_ca_pem)}) {
    if (!error.empty()) return WebConfigError{std::move(error)};
  }
  if (std::string error = CheckWithGnuTls(tls); !error.empty()) {
    return WebConfigError{path + ": tls_server_config: " + error};
  }
  return parsed;
}

}  // namespace kvmexit
