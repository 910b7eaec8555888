// SPDX-License-Identifier: Apache-2.0
#include "http/tls_priorities.h"

#include <gnutls/gnutls.h>

#include <algorithm>
#include <memory>
#include <map>
#include <vector>

namespace kvmexit {
namespace {

constexpr std::string_view kTls13NotConfigurable =
    "a TLS 1.3 suite: TLS 1.3 suites are not configurable (as in Go), cipher_suites applies to "
    "TLS 1.0-1.2 and all three TLS 1.3 suites are always offered";
constexpr std::string_view kInsecure =
    "one of Go's insecure suites, which exporter-toolkit refuses too (tls.InsecureCipherSuites)";
constexpr std::string_view kStaticRsa =
    "a static RSA key exchange suite, without forward secrecy: Go lists it as insecure "
    "(tls.InsecureCipherSuites) and exporter-toolkit refuses it too";

// Every name Go's crypto/tls knows (tls.CipherSuites() and
// tls.InsecureCipherSuites() of current Go), one row each. exporter-toolkit takes
// only tls.CipherSuites(); the others are refused with the reason. The
// GnuTLS elements of refused rows are kept for reference (and the tests).
constexpr GoCipherSuite kGoCipherSuites[] = {
    // TLS 1.3: Go offers all three whatever the configuration says.
    {"TLS_AES_128_GCM_SHA256", 0x1301, "", "AES-128-GCM", "AEAD", kTls13NotConfigurable},
    {"TLS_AES_256_GCM_SHA384", 0x1302, "", "AES-256-GCM", "AEAD", kTls13NotConfigurable},
    {"TLS_CHACHA20_POLY1305_SHA256", 0x1303, "", "CHACHA20-POLY1305", "AEAD",
     kTls13NotConfigurable},
    // Forward secret and AEAD: the defaults.
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xc02b, "ECDHE-ECDSA", "AES-128-GCM", "AEAD", ""},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xc02f, "ECDHE-RSA", "AES-128-GCM", "AEAD", ""},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 0xc02c, "ECDHE-ECDSA", "AES-256-GCM", "AEAD", ""},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 0xc030, "ECDHE-RSA", "AES-256-GCM", "AEAD", ""},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", 0xcca9, "ECDHE-ECDSA", "CHACHA20-POLY1305",
     "AEAD", ""},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xcca8, "ECDHE-RSA", "CHACHA20-POLY1305",
     "AEAD", ""},
    // Forward secret, CBC with HMAC-SHA1: only when named.
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xc009, "ECDHE-ECDSA", "AES-128-CBC", "SHA1", ""},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", 0xc00a, "ECDHE-ECDSA", "AES-256-CBC", "SHA1", ""},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xc013, "ECDHE-RSA", "AES-128-CBC", "SHA1", ""},
    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 0xc014, "ECDHE-RSA", "AES-256-CBC", "SHA1", ""},
    // Go's insecure list: static RSA key exchange (no forward secrecy) ...
    {"TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009c, "RSA", "AES-128-GCM", "AEAD", kStaticRsa},
    {"TLS_RSA_WITH_AES_256_GCM_SHA384", 0x009d, "RSA", "AES-256-GCM", "AEAD", kStaticRsa},
    {"TLS_RSA_WITH_AES_128_CBC_SHA", 0x002f, "RSA", "AES-128-CBC", "SHA1", kStaticRsa},
    {"TLS_RSA_WITH_AES_256_CBC_SHA", 0x0035, "RSA", "AES-256-CBC", "SHA1", kStaticRsa},
    // ... RC4, 3DES and CBC with HMAC-SHA256 (no Lucky13 countermeasures in Go).
    {"TLS_RSA_WITH_RC4_128_SHA", 0x0005, "RSA", "ARCFOUR-128", "SHA1", kInsecure},
    {"TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x000a, "RSA", "3DES-CBC", "SHA1", kInsecure},
    {"TLS_RSA_WITH_AES_128_CBC_SHA256", 0x003c, "RSA", "AES-128-CBC", "SHA256", kInsecure},
    {"TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", 0xc007, "ECDHE-ECDSA", "ARCFOUR-128", "SHA1", kInsecure},
    {"TLS_ECDHE_RSA_WITH_RC4_128_SHA", 0xc011, "ECDHE-RSA", "ARCFOUR-128", "SHA1", kInsecure},
    {"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", 0xc012, "ECDHE-RSA", "3DES-CBC", "SHA1", kInsecure},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 0xc023, "ECDHE-ECDSA", "AES-128-CBC", "SHA256",
     kInsecure},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xc027, "ECDHE-RSA", "AES-128-CBC", "SHA256",
     kInsecure},
};

// The TLS 1.0-1.2 suites offered when cipher_suites is not given: the six
// forward-secret AEAD rows above (Mozilla's "intermediate" profile).
constexpr std::string_view kDefaultCipherSuites[] = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",       "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",       "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
};

// The ciphers of TLS 1.3's suites, which must stay in the cipher list
// whatever cipher_suites says.
constexpr std::string_view kTls13Ciphers[] = {"AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305"};

// exporter-toolkit's curve names; the default is all four in this order (Go's).
constexpr GoCurve kGoCurves[] = {
    {"X25519", "GROUP-X25519"},
    {"CurveP256", "GROUP-SECP256R1"},
    {"CurveP384", "GROUP-SECP384R1"},
    {"CurveP521", "GROUP-SECP521R1"},
};

// Names in the order first given, each once.
class OrderedSet {
 public:
  void Add(std::string_view name) {
    if (std::find(names_.begin(), names_.end(), name) == names_.end()) names_.push_back(name);
  }
  bool Contains(std::string_view name) const {
    return std::find(names_.begin(), names_.end(), name) != names_.end();
  }
  const std::vector<std::string_view>& names() const { return names_; }

 private:
  std::vector<std::string_view> names_;
};

// The rows of cipher_suites, or of the defaults when it is empty.
std::vector<const GoCipherSuite*> ChosenSuites(const WebConfig::Tls& tls) {
  std::vector<const GoCipherSuite*> rows;
  const auto add = [&](std::string_view name) {
    if (const GoCipherSuite* row = FindGoCipherSuite(name); row != nullptr && row->refused.empty())
      rows.push_back(row);
  };
  if (tls.cipher_suites.empty()) {
    for (const std::string_view name : kDefaultCipherSuites) add(name);
  } else {
    for (const std::string& name : tls.cipher_suites) add(name);
  }
  return rows;
}

// The key exchanges, ciphers and MACs whose product GnuTLS offers on TLS 1.0-1.2.
struct SuiteElements {
  OrderedSet kx;
  OrderedSet ciphers;
  OrderedSet macs;
};

SuiteElements ElementsOf(const std::vector<const GoCipherSuite*>& rows) {
  SuiteElements elements;
  for (const GoCipherSuite* row : rows) {
    elements.kx.Add(row->kx);
    elements.ciphers.Add(row->cipher);
    elements.macs.Add(row->mac);
  }
  return elements;
}

// "-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2" for the versions from `low` to `high`.
std::string Versions(TlsVersion low, TlsVersion high) {
  std::string text = "-VERS-ALL";
  for (const auto& [version, name] :
       {std::pair{TlsVersion::kTls13, "TLS1.3"}, std::pair{TlsVersion::kTls12, "TLS1.2"},
        std::pair{TlsVersion::kTls11, "TLS1.1"}, std::pair{TlsVersion::kTls10, "TLS1.0"}}) {
    if (version >= low && version <= high) text.append(":+VERS-").append(name);
  }
  return text;
}

// ":-KX-ALL:+ECDHE-RSA", one list of priority elements replacing GnuTLS's own.
std::string Only(std::string_view all, const std::vector<std::string_view>& elements) {
  std::string text = ":-";
  text.append(all).append("-ALL");
  for (const std::string_view element : elements) text.append(":+").append(element);
  return text;
}

std::vector<std::string_view> Groups(const WebConfig::Tls& tls) {
  std::vector<std::string_view> groups;
  if (tls.curve_preferences.empty()) {
    for (const GoCurve& curve : kGoCurves) groups.push_back(curve.group);
  }
  for (const std::string& name : tls.curve_preferences) {
    if (const GoCurve* curve = FindGoCurve(name)) groups.push_back(curve->group);
  }
  return groups;
}

// Starts from NORMAL so that what is not configured here (signature
// algorithms, safe renegotiation) stays GnuTLS's vetted default.
std::string PriorityString(const WebConfig::Tls& tls, TlsVersion high,
                           const SuiteElements& suites) {
  std::string text = "NORMAL:" + Versions(tls.min_version, high);
  text += Only("KX", suites.kx.names());
  text += Only("CIPHER", suites.ciphers.names());
  text += Only("MAC", suites.macs.names());
  text += Only("GROUP", Groups(tls));
  if (tls.prefer_server_cipher_suites) text += ":%SERVER_PRECEDENCE";
  return text;
}

struct PriorityDeleter {
  void operator()(gnutls_priority_st* priority) const { gnutls_priority_deinit(priority); }
};
using PriorityPtr = std::unique_ptr<gnutls_priority_st, PriorityDeleter>;

// The priority cache of `text`, or nullptr and *error saying where GnuTLS stopped.
PriorityPtr ParsePriority(const std::string& text, std::string* error) {
  gnutls_priority_t raw = nullptr;
  const char* error_at = nullptr;
  if (const int status = gnutls_priority_init(&raw, text.c_str(), &error_at); status < 0) {
    *error = "GnuTLS refuses the priority string \"" + text + "\"";
    if (error_at != nullptr) *error += std::string(" at \"") + error_at + "\"";
    *error += std::string(": ") + gnutls_strerror(status);
    return nullptr;
  }
  return PriorityPtr(raw);
}

// The TLS 1.0-1.2 suites `priority` offers: IANA number -> GnuTLS's name.
using SuiteList = std::map<std::uint16_t, std::string>;

SuiteList OfferedLegacySuites(gnutls_priority_t priority) {
  SuiteList suites;
  for (unsigned index = 0;; ++index) {
    unsigned suite = 0;
    const int status = gnutls_priority_get_cipher_suite_index(priority, index, &suite);
    if (status == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) break;
    if (status < 0) continue;  // a suite this GnuTLS build leaves out
    unsigned char id[2] = {0, 0};
    gnutls_protocol_t min_version = GNUTLS_VERSION_UNKNOWN;
    const char* name = gnutls_cipher_suite_info(suite, id, nullptr, nullptr, nullptr, &min_version);
    if (name != nullptr && min_version < GNUTLS_TLS1_3) {
      suites.emplace(static_cast<std::uint16_t>(id[0] << 8 | id[1]), name);
    }
  }
  return suites;
}

// "A, B": Go's names where Go has the suite, else GnuTLS's.
std::string Names(const SuiteList& suites) {
  std::string text;
  for (const auto& [id, gnutls_name] : suites) {
    if (!text.empty()) text += ", ";
    const auto row = std::find_if(std::begin(kGoCipherSuites), std::end(kGoCipherSuites),
                                  [id = id](const GoCipherSuite& suite) { return suite.id == id; });
    text += row != std::end(kGoCipherSuites) ? std::string(row->go_name) : gnutls_name;
  }
  return text;
}

// The entries of `a` whose number `b` lacks.
SuiteList Minus(const SuiteList& a, const SuiteList& b) {
  SuiteList difference;
  for (const auto& [id, name] : a) {
    if (!b.contains(id)) difference.emplace(id, name);
  }
  return difference;
}

}  // namespace

const GoCipherSuite* FindGoCipherSuite(std::string_view name) {
  for (const GoCipherSuite& row : kGoCipherSuites) {
    if (row.go_name == name) return &row;
  }
  return nullptr;
}

const GoCurve* FindGoCurve(std::string_view name) {
  for (const GoCurve& curve : kGoCurves) {
    if (curve.go_name == name) return &curve;
  }
  return nullptr;
}

std::string GoCurveNames() {
  std::vector<std::string_view> names;
  for (const GoCurve& curve : kGoCurves) names.push_back(curve.go_name);
  std::sort(names.begin(), names.end());
  std::string text;
  for (const std::string_view name : names) {
    if (!text.empty()) text += ", ";
    text += name;
  }
  return text;
}

TlsPriorities MakeTlsPriorities(const WebConfig::Tls& tls) {
  const SuiteElements legacy = ElementsOf(ChosenSuites(tls));
  const bool offers_tls13 = tls.max_version == TlsVersion::kTls13;
  const bool offers_legacy = tls.min_version < TlsVersion::kTls13;
  if (!offers_tls13) return {PriorityString(tls, tls.max_version, legacy), ""};
  SuiteElements with_tls13 = legacy;
  for (const std::string_view cipher : kTls13Ciphers) with_tls13.ciphers.Add(cipher);
  with_tls13.macs.Add("AEAD");
  if (!offers_legacy) return {PriorityString(tls, TlsVersion::kTls13, with_tls13), ""};
  // TLS 1.3 suites need no key exchange element: its KX list is TLS 1.2's.
  const bool exact = with_tls13.ciphers.names() == legacy.ciphers.names() &&
                     with_tls13.macs.names() == legacy.macs.names();
  if (exact) return {PriorityString(tls, TlsVersion::kTls13, legacy), ""};
  return {PriorityString(tls, TlsVersion::kTls13, with_tls13),
          PriorityString(tls, TlsVersion::kTls12, legacy)};
}

std::string TlsPrioritiesProblem(const WebConfig::Tls& tls) {
  const TlsPriorities priorities = MakeTlsPriorities(tls);
  std::string error;
  const PriorityPtr handshake = ParsePriority(priorities.handshake, &error);
  if (!handshake) return error;
  PriorityPtr legacy;
  if (!priorities.legacy_versions.empty()) {
    legacy = ParsePriority(priorities.legacy_versions, &error);
    if (!legacy) return error;
  }
  const SuiteList offered = OfferedLegacySuites(legacy ? legacy.get() : handshake.get());
  const std::string versions = std::string(TlsVersionName(tls.min_version)) + " to " +
                               std::string(TlsVersionName(tls.max_version));
  if (tls.cipher_suites.empty()) {
    if (tls.max_version < TlsVersion::kTls13 && offered.empty()) {
      return "no cipher suite is left for TLS versions " + versions +
             ": TLS 1.0 and 1.1 have no AEAD suite; name CBC suites in cipher_suites or allow "
             "TLS12";
    }
    return "";
  }
  SuiteList wanted;
  for (const GoCipherSuite* row : ChosenSuites(tls)) wanted.emplace(row->id, row->go_name);
  if (const SuiteList extra = Minus(offered, wanted); !extra.empty()) {
    return "GnuTLS offers suites as every combination of the key exchanges, ciphers and MACs "
           "named, so this list would also offer " +
           Names(extra) + "; add them or leave out the names that bring them in";
  }
  if (const SuiteList missing = Minus(wanted, offered); !missing.empty()) {
    return Names(missing) + " cannot be offered with TLS versions " + versions +
           " (AEAD suites need TLS12)";
  }
  return "";
}

}  // namespace kvmexit
