// SPDX-License-Identifier: Apache-2.0
#include "config/web_config_file.h"

#include <gnutls/gnutls.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>
#include <stdexcept>

#include "config/config.h"
#include "config/yaml_document.h"
#include "http/tls_priorities.h"
#include "util/file_text.h"
#include "util/text.h"

namespace kvmexit {
namespace {

// A problem at a place in the file; ParseWebConfig turns it into a message.

// One entry of a map: yaml-cpp places an empty value (`key:`) at the next
// token, so problems with an empty value are reported at its key.
struct Entry {
  std::string key;
  YAML::Mark key_mark;
  YAML::Node value;
  std::string name;  // dotted, for messages: "tls_server_config.min_version"

  YAML::Mark mark() const { return value.IsNull() ? key_mark : value.Mark(); }
  [[noreturn]] void Fail(const std::string& message) const {
    throw YamlProblem(mark(), name + ": " + message);
  }
};

std::string Joined(std::initializer_list<std::string_view> words) {
  std::string joined;
  for (const std::string_view word : words) {
    if (!joined.empty()) joined += ", ";
    joined += word;
  }
  return joined;
}

// Calls `visit` with each entry of the map `node` (nothing for an empty value);
// refuses anything but a map of plain keys, and a key given twice.
template <typename Visit>
void ForEachEntry(const YAML::Node& node, const std::string& prefix, Visit visit) {
  if (node.IsNull()) return;
  const std::string what = prefix.empty() ? "the web config" : prefix;
  if (!node.IsMap()) throw YamlProblem(node.Mark(), what + " must be a map");
  std::set<std::string, std::less<>> seen;
  for (const auto& item : node) {
    if (!item.first.IsScalar()) {
      throw YamlProblem(item.first.Mark(), what + ": a key must be a plain name");
    }
    const std::string& key = item.first.Scalar();
    if (!seen.insert(key).second) {
      std::string message = what;
      message.append(": key \"").append(key).append("\" is given twice");
      throw YamlProblem(item.first.Mark(), message);
    }
    std::string name = prefix;
    if (!name.empty()) name += '.';
    name += key;
    visit(Entry{key, item.first.Mark(), item.second, std::move(name)});
  }
}

const std::string& Scalar(const Entry& entry) {
  if (!entry.value.IsScalar()) entry.Fail("must be a string");
  return entry.value.Scalar();
}

std::string NonEmptyScalar(const Entry& entry) {
  if (entry.value.IsNull()) entry.Fail("must not be empty");
  const std::string& text = Scalar(entry);
  if (text.empty()) entry.Fail("must not be empty");
  return text;
}

[[noreturn]] void Unknown(const Entry& entry, std::string_view allowed) {
  throw YamlProblem(entry.key_mark,
                    "unknown key \"" + entry.name + "\"; allowed: " + std::string(allowed));
}

[[noreturn]] void Unsupported(const Entry& entry, std::string_view why) {
  throw YamlProblem(entry.key_mark, entry.name + " is not supported by kvm_exit_exporter (" +
                                        std::string(why) + "); remove it");
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

ClientAuth ParseClientAuth(const Entry& entry) {
  const std::string& text = Scalar(entry);
  for (const auto& [name, value] : kClientAuthNames) {
    if (text == name) return value;
  }
  entry.Fail("unknown client auth type \"" + text + "\"; use one of " +
             Joined({"NoClientCert", "RequestClientCert", "RequireAnyClientCert",
                     "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"}));
}

TlsVersion ParseTlsVersion(const Entry& entry) {
  const std::string& text = Scalar(entry);
  for (const TlsVersion version : kTlsVersions) {
    if (text == TlsVersionName(version)) return version;
  }
  entry.Fail("unknown TLS version \"" + text + "\"; use one of TLS10, TLS11, TLS12, TLS13");
}

bool ParseBool(const Entry& entry) {
  const std::string& text = Scalar(entry);
  if (text != "true" && text != "false") entry.Fail("must be true or false, got \"" + text + "\"");
  return text == "true";
}

// The names of a YAML list, each once, each accepted by `check` (which throws
// at the name's place); an empty value is an empty list.
template <typename Check>
std::vector<std::string> ParseNameList(const Entry& entry, Check check) {
  std::vector<std::string> names;
  if (entry.value.IsNull()) return names;
  if (!entry.value.IsSequence()) entry.Fail("must be a list of names");
  for (const YAML::Node& item : entry.value) {
    if (!item.IsScalar()) throw YamlProblem(item.Mark(), entry.name + ": must be a list of names");
    const std::string& name = item.Scalar();
    check(item.Mark(), name);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return names;
}

std::vector<std::string> ParseCipherSuites(const Entry& entry) {
  return ParseNameList(entry, [&](const YAML::Mark& mark, const std::string& name) {
    const GoCipherSuite* suite = FindGoCipherSuite(name);
    if (suite == nullptr) {
      throw YamlProblem(mark, entry.name + ": unknown cipher suite \"" + name +
                                  "\"; use Go's names, such as "
                                  "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (docs/deploy.md lists "
                                  "them)");
    }
    if (!suite->refused.empty()) {
      throw YamlProblem(
          mark, entry.name + ": " + name + " is " + std::string(suite->refused) + "; remove it");
    }
  });
}

std::vector<std::string> ParseCurves(const Entry& entry) {
  return ParseNameList(entry, [&](const YAML::Mark& mark, const std::string& name) {
    if (FindGoCurve(name) == nullptr) {
      throw YamlProblem(
          mark, entry.name + ": unknown curve \"" + name + "\"; use one of " + GoCurveNames());
    }
  });
}

bool NeedsClientCa(ClientAuth auth) {
  return auth == ClientAuth::kVerifyClientCertIfGiven ||
         auth == ClientAuth::kRequireAndVerifyClientCert;
}

// Versions, suites and curves that GnuTLS cannot offer exactly as written
// are refused here, so that --config.check finds them and not a handshake.
void CheckTlsPriorities(const Entry& section, const WebConfig::Tls& tls,
                        const std::optional<YAML::Mark>& max_version_mark,
                        const std::optional<YAML::Mark>& cipher_suites_mark,
                        const std::optional<YAML::Mark>& curves_mark) {
  if (tls.max_version < tls.min_version) {
    throw YamlProblem(*max_version_mark,
                      section.name +
                          ".max_version: " + std::string(TlsVersionName(tls.max_version)) +
                          " is below min_version " + std::string(TlsVersionName(tls.min_version)));
  }
  if (!tls.cipher_suites.empty() && tls.min_version == TlsVersion::kTls13) {
    throw YamlProblem(*cipher_suites_mark,
                      section.name +
                          ".cipher_suites applies to TLS 1.0-1.2 only (TLS 1.3 suites are not "
                          "configurable), and min_version is TLS13; remove it");
  }
  if (const std::string problem = TlsPrioritiesProblem(tls); !problem.empty()) {
    if (cipher_suites_mark)
      throw YamlProblem(*cipher_suites_mark, section.name + ".cipher_suites: " + problem);
    throw YamlProblem(curves_mark.value_or(section.key_mark), section.name + ": " + problem);
  }
}

std::optional<WebConfig::Tls> ParseTls(const Entry& section) {
  WebConfig::Tls tls;
  bool any = false;
  std::optional<YAML::Mark> client_ca_mark;
  std::optional<YAML::Mark> max_version_mark;
  std::optional<YAML::Mark> cipher_suites_mark;
  std::optional<YAML::Mark> curves_mark;
  ForEachEntry(section.value, section.name, [&](const Entry& entry) {
    any = true;
    if (entry.key == "cert_file") {
      tls.cert_file = NonEmptyScalar(entry);
    } else if (entry.key == "key_file") {
      tls.key_file = NonEmptyScalar(entry);
    } else if (entry.key == "client_ca_file") {
      tls.client_ca_file = NonEmptyScalar(entry);
      client_ca_mark = entry.key_mark;
    } else if (entry.key == "client_auth_type") {
      tls.client_auth = ParseClientAuth(entry);
    } else if (entry.key == "min_version") {
      tls.min_version = ParseTlsVersion(entry);
    } else if (entry.key == "max_version") {
      tls.max_version = ParseTlsVersion(entry);
      max_version_mark = entry.mark();
    } else if (entry.key == "cipher_suites") {
      tls.cipher_suites = ParseCipherSuites(entry);
      cipher_suites_mark = entry.key_mark;
    } else if (entry.key == "curve_preferences") {
      tls.curve_preferences = ParseCurves(entry);
      curves_mark = entry.key_mark;
    } else if (entry.key == "prefer_server_cipher_suites") {
      tls.prefer_server_cipher_suites = ParseBool(entry);
    } else if (entry.key == "cert" || entry.key == "key" || entry.key == "client_ca") {
      Unsupported(entry, "inline PEM; put it in a file and use " + entry.key + "_file");
    } else if (entry.key == "client_allowed_sans") {
      Unsupported(entry, "client certificates are checked against client_ca_file only");
    } else {
      Unknown(entry,
              "cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version, "
              "cipher_suites, curve_preferences, prefer_server_cipher_suites");
    }
  });
  if (!any) return std::nullopt;  // `tls_server_config:` with nothing below: plain HTTP
  const auto missing = [&](std::string_view key) {
    return YamlProblem(section.key_mark, section.name + ": " + std::string(key) +
                                             " is missing; TLS needs cert_file and key_file");
  };
  if (tls.cert_file.empty()) throw missing("cert_file");
  if (tls.key_file.empty()) throw missing("key_file");
  if (client_ca_mark && tls.client_auth == ClientAuth::kNoClientCert) {
    throw YamlProblem(*client_ca_mark,
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
  CheckTlsPriorities(section, tls, max_version_mark, cipher_suites_mark, curves_mark);
  return tls;
}

void ParseHeaders(const Entry& section, WebConfig& config) {
  ForEachEntry(section.value, section.name, [&](const Entry& entry) {
    const std::string value = entry.value.IsNull() ? "" : Scalar(entry);
    if (entry.key == "X-Frame-Options") {
      const std::string lower = ToLower(value);
      if (!value.empty() && lower != "deny" && lower != "sameorigin") {
        entry.Fail("must be deny or sameorigin, got \"" + value + "\"");
      }
    } else if (entry.key == "X-Content-Type-Options") {
      if (!value.empty() && ToLower(value) != "nosniff") {
        entry.Fail("must be nosniff, got \"" + value + "\"");
      }
    } else if (entry.key != "Content-Security-Policy" && entry.key != "X-XSS-Protection" &&
               entry.key != "Strict-Transport-Security") {
      // As exporter-toolkit: headers such as Content-Type or Authorization
      // would break the responses or the authentication.
      Unknown(entry,
              "Content-Security-Policy, X-Frame-Options, X-Content-Type-Options, "
              "X-XSS-Protection, Strict-Transport-Security");
    }
    if (value.find_first_of("\r\n") != std::string::npos) entry.Fail("must be one line");
    if (!value.empty()) config.headers.emplace_back(entry.key, value);  // blank: unset
  });
}

void ParseHttpServerConfig(const Entry& section, WebConfig& config) {
  ForEachEntry(section.value, section.name, [&](const Entry& entry) {
    if (entry.key == "headers") {
      ParseHeaders(entry, config);
    } else if (entry.key == "http2") {
      const std::string& text = Scalar(entry);
      if (text == "true") Unsupported(entry, "libmicrohttpd serves HTTP/1.1 only; set it to false");
      if (text != "false") entry.Fail("must be true or false, got \"" + text + "\"");
    } else {
      Unknown(entry, "headers, http2");
    }
  });
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

void ParseBasicAuthUsers(const Entry& section, WebConfig& config) {
  ForEachEntry(section.value, section.name, [&](const Entry& entry) {
    if (entry.key.empty() || entry.key.find(':') != std::string::npos) {
      throw YamlProblem(entry.key_mark,
                        section.name + ": user name \"" + entry.key +
                            "\" must be non-empty and without ':' (Basic authentication "
                            "separates user and password with it)");
    }
    const std::string& hash = Scalar(entry);
    if (!IsBcryptHash(hash)) {
      entry.Fail(
          "must be a bcrypt hash ($2y$10$ and 53 more characters), not a password; make one with "
          "htpasswd -nbB USER PASSWORD");
    }
    config.basic_auth_users.emplace(entry.key, hash);
  });
}

WebConfig ParseDocument(const YAML::Node& root) {
  WebConfig config;
  ForEachEntry(root, "", [&](const Entry& entry) {
    if (entry.key == "tls_server_config") {
      config.tls = ParseTls(entry);
    } else if (entry.key == "http_server_config") {
      ParseHttpServerConfig(entry, config);
    } else if (entry.key == "basic_auth_users") {
      ParseBasicAuthUsers(entry, config);
    } else if (entry.key == "rate_limit") {
      Unsupported(entry, "limit clients with a reverse proxy");
    } else {
      Unknown(entry, "tls_server_config, http_server_config, basic_auth_users");
    }
  });
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
  try {
    const std::optional<YAML::Node> root = LoadSingleDocument(std::string(yaml_text));
    return root ? ParseDocument(*root) : WebConfig{};
  } catch (const YamlProblem& problem) {
    return WebConfigError{Located(source_name, problem.mark(), problem.what())};
  } catch (const YAML::Exception& e) {
    return WebConfigError{Located(source_name, e.mark, "invalid YAML: " + e.msg)};
  } catch (const std::exception& e) {
    return WebConfigError{Located(source_name, YAML::Mark::null_mark(), e.what())};
  }
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
