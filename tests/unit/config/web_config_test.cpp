// SPDX-License-Identifier: Apache-2.0
#include "config/web_config_file.h"

#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "http/tls_priorities.h"
#include "temp_dir.h"

namespace kvmexit {
namespace {

constexpr std::string_view kSource = "web.yml";
// A syntactically valid bcrypt hash (cost 10).
constexpr std::string_view kHash = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

const std::string kTls = "tls_server_config:\n  cert_file: a\n  key_file: b\n";

WebConfig ParseOk(std::string_view yaml) {
  auto result = ParseWebConfig(yaml, kSource);
  if (const auto* error = std::get_if<WebConfigError>(&result)) {
    ADD_FAILURE() << "unexpected error: " << error->message << "\nfor:\n" << yaml;
    return WebConfig{};
  }
  return std::get<WebConfig>(std::move(result));
}

std::string ParseFails(std::string_view yaml) {
  const auto result = ParseWebConfig(yaml, kSource);
  if (const auto* error = std::get_if<WebConfigError>(&result)) return error->message;
  ADD_FAILURE() << "parsed without error:\n" << yaml;
  return "";
}

TEST(WebConfig, EmptyFileMeansPlainHttpWithoutAuthentication) {
  const WebConfig config = ParseOk("");
  EXPECT_FALSE(config.tls.has_value());
  EXPECT_TRUE(config.basic_auth_users.empty());
  EXPECT_TRUE(config.headers.empty());
  EXPECT_FALSE(ParseOk("tls_server_config:\n").tls.has_value());
}

TEST(WebConfig, ParsesAnExporterToolkitFile) {
  const WebConfig config = ParseOk(
      "tls_server_config:\n"
      "  cert_file: server.crt\n"
      "  key_file: /etc/keys/server.key\n"
      "  client_auth_type: RequireAndVerifyClientCert\n"
      "  client_ca_file: ca.crt\n"
      "  min_version: TLS13\n"
      "  max_version: TLS13\n"
      "http_server_config:\n"
      "  http2: false\n"
      "  headers:\n"
      "    X-Frame-Options: SAMEORIGIN\n"
      "    Strict-Transport-Security: max-age=31536000\n"
      "    Content-Security-Policy:\n"
      "basic_auth_users:\n"
      "  prometheus: " +
      std::string(kHash) + "\n");
  ASSERT_TRUE(config.tls.has_value());
  EXPECT_EQ(config.tls->cert_file, "server.crt");
  EXPECT_EQ(config.tls->key_file, "/etc/keys/server.key");
  EXPECT_EQ(config.tls->client_ca_file, "ca.crt");
  EXPECT_EQ(config.tls->client_auth, ClientAuth::kRequireAndVerifyClientCert);
  EXPECT_EQ(config.tls->min_version, TlsVersion::kTls13);
  EXPECT_TRUE(config.tls->cert_pem.empty()) << "parsing reads no file";
  EXPECT_THAT(config.basic_auth_users,
              testing::ElementsAre(testing::Pair("prometheus", std::string(kHash))));
  // A blank header is unset, as in exporter-toolkit.
  EXPECT_THAT(config.headers,
              testing::ElementsAre(testing::Pair("X-Frame-Options", "SAMEORIGIN"),
                                   testing::Pair("Strict-Transport-Security", "max-age=31536000")));
}

TEST(WebConfig, DefaultsAreTls12AndNoClientCert) {
  const WebConfig config = ParseOk("tls_server_config: {cert_file: a, key_file: b}\n");
  ASSERT_TRUE(config.tls.has_value());
  EXPECT_EQ(config.tls->min_version, TlsVersion::kTls12);
  EXPECT_EQ(config.tls->max_version, TlsVersion::kTls13);
  EXPECT_EQ(config.tls->client_auth, ClientAuth::kNoClientCert);
  EXPECT_TRUE(config.tls->cipher_suites.empty());
  EXPECT_TRUE(config.tls->curve_preferences.empty());
  EXPECT_TRUE(config.tls->prefer_server_cipher_suites) << "exporter-toolkit's default";
}

TEST(WebConfig, ParsesCipherSuitesCurvesAndServerPreference) {
  const WebConfig config = ParseOk(
      "tls_server_config:\n"
      "  cert_file: a\n"
      "  key_file: b\n"
      "  min_version: TLS12\n"
      "  max_version: TLS12\n"
      "  cipher_suites:\n"
      "    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n"
      "    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n"
      "    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n"
      "  curve_preferences: [CurveP384, X25519]\n"
      "  prefer_server_cipher_suites: false\n");
  ASSERT_TRUE(config.tls.has_value());
  EXPECT_EQ(config.tls->max_version, TlsVersion::kTls12);
  EXPECT_THAT(config.tls->cipher_suites,
              testing::ElementsAre("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                                   "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"))
      << "a name given twice counts once";
  EXPECT_THAT(config.tls->curve_preferences, testing::ElementsAre("CurveP384", "X25519"));
  EXPECT_FALSE(config.tls->prefer_server_cipher_suites);
  // An empty list means the defaults, as in Go.
  EXPECT_TRUE(
      ParseOk(kTls + "  cipher_suites: []\n  curve_preferences:\n").tls->cipher_suites.empty());
}

TEST(WebConfig, EveryClientAuthTypeAndTlsVersionIsAccepted) {
  for (const auto& [name, value] :
       {std::pair{"NoClientCert", ClientAuth::kNoClientCert},
        std::pair{"RequestClientCert", ClientAuth::kRequestClientCert},
        std::pair{"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert}}) {
    const WebConfig config = ParseOk(std::string("tls_server_config: {cert_file: a, key_file: b, "
                                                 "client_auth_type: ") +
                                     name + "}\n");
    EXPECT_EQ(config.tls->client_auth, value) << name;
  }
  const WebConfig verify = ParseOk(
      "tls_server_config: {cert_file: a, key_file: b, client_ca_file: c, "
      "client_auth_type: VerifyClientCertIfGiven}\n");
  EXPECT_EQ(verify.tls->client_auth, ClientAuth::kVerifyClientCertIfGiven);
  for (const auto& [name, value] :
       {std::pair{"TLS10", TlsVersion::kTls10}, std::pair{"TLS11", TlsVersion::kTls11},
        std::pair{"TLS12", TlsVersion::kTls12}, std::pair{"TLS13", TlsVersion::kTls13}}) {
    const WebConfig config = ParseOk(
        std::string("tls_server_config: {cert_file: a, key_file: b, min_version: ") + name + "}\n");
    EXPECT_EQ(config.tls->min_version, value) << name;
    EXPECT_EQ(TlsVersionName(value), name);
  }
}

struct BadInput {
  std::string yaml;
  std::string message;
};

void PrintTo(const BadInput& input, std::ostream* out) { *out << input.yaml; }

class WebConfigBadInput : public testing::TestWithParam<BadInput> {};

TEST_P(WebConfigBadInput, IsRefusedWithItsPlace) {
  EXPECT_EQ(ParseFails(GetParam().yaml), GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Messages, WebConfigBadInput,
    testing::Values(
        BadInput{"tls_server_config: [\n",
                 "web.yml:2:1: invalid YAML: end of sequence flow not found"},
        // The walker the configuration shares (yaml_walker.h) says which keys a map
        // takes and what it found instead, where this file said "must be a map".
        BadInput{"- a\n",
                 "web.yml:1:1: the web config must be a map of keys (tls_server_config, "
                 "http_server_config, basic_auth_users), got a list"},
        BadInput{"a: 1\n---\nb: 2\n", "web.yml:3:1: only one YAML document is allowed, found 2"},
        // yaml-cpp 0.7's LoadAll loops forever on it (the config's fuzzer found it).
        BadInput{",\n", "web.yml:1:1: invalid YAML: unexpected \",\" (no value can start with it)"},
        BadInput{"tls_config:\n",
                 "web.yml:1:1: unknown key \"tls_config\"; allowed keys: tls_server_config, "
                 "http_server_config, basic_auth_users"},
        // Where the first one is, as the configuration says it.
        BadInput{"basic_auth_users: {}\nbasic_auth_users: {}\n",
                 "web.yml:2:1: duplicate key \"basic_auth_users\" (first at line 1)"},
        BadInput{"rate_limit:\n  interval: 1s\n",
                 "web.yml:1:1: rate_limit is not supported by kvm_exit_exporter (limit clients "
                 "with a reverse proxy); remove it"},
        BadInput{"tls_server_config:\n  key_file: b\n",
                 "web.yml:1:1: tls_server_config: cert_file is missing; TLS needs cert_file and "
                 "key_file"},
        BadInput{"tls_server_config:\n  cert_file: a\n",
                 "web.yml:1:1: tls_server_config: key_file is missing; TLS needs cert_file and "
                 "key_file"},
        BadInput{"tls_server_config:\n  cert_file:\n  key_file: b\n",
                 "web.yml:2:3: tls_server_config.cert_file: must not be empty"},
        BadInput{"tls_server_config:\n  cert_file: [a]\n  key_file: b\n",
                 "web.yml:2:14: tls_server_config.cert_file must be a file path, got a list"},
        BadInput{kTls + "  client_auth_type: RequireClientCert\n",
                 "web.yml:4:21: tls_server_config.client_auth_type: unknown client auth type "
                 "\"RequireClientCert\"; use one of NoClientCert, RequestClientCert, "
                 "RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"},
        BadInput{kTls + "  client_auth_type: RequireAndVerifyClientCert\n",
                 "web.yml:1:1: tls_server_config: client_auth_type RequireAndVerifyClientCert "
                 "needs client_ca_file, the CA that signs client certificates"},
        BadInput{kTls + "  client_ca_file: ca.crt\n",
                 "web.yml:4:3: tls_server_config.client_ca_file is set but client_auth_type is "
                 "NoClientCert; set client_auth_type to RequireAndVerifyClientCert"},
        BadInput{kTls + "  min_version: TLS1.2\n",
                 "web.yml:4:16: tls_server_config.min_version: unknown TLS version \"TLS1.2\"; "
                 "use one of TLS10, TLS11, TLS12, TLS13"},
        BadInput{kTls + "  max_version: TLS11\n",
                 "web.yml:4:16: tls_server_config.max_version: TLS11 is below min_version TLS12"},
        BadInput{kTls + "  min_version: TLS10\n  max_version: TLS11\n",
                 "web.yml:1:1: tls_server_config: no cipher suite is left for TLS versions TLS10 "
                 "to TLS11: TLS 1.0 and 1.1 have no AEAD suite; name CBC suites in cipher_suites "
                 "or allow TLS12"},
        BadInput{kTls + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, BOGUS]\n",
                 "web.yml:4:58: tls_server_config.cipher_suites: unknown cipher suite \"BOGUS\"; "
                 "use Go's names, such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (docs/deploy.md "
                 "lists them)"},
        // OpenSSL's and GnuTLS's names for a suite are not Go's.
        BadInput{kTls + "  cipher_suites:\n    - ECDHE-RSA-AES128-GCM-SHA256\n",
                 "web.yml:5:7: tls_server_config.cipher_suites: unknown cipher suite "
                 "\"ECDHE-RSA-AES128-GCM-SHA256\"; use Go's names, such as "
                 "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (docs/deploy.md lists them)"},
        BadInput{kTls + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                 "web.yml:4:19: tls_server_config.cipher_suites: TLS_AES_128_GCM_SHA256 is a TLS "
                 "1.3 suite: TLS 1.3 suites are not configurable (as in Go), cipher_suites "
                 "applies to TLS 1.0-1.2 and all three TLS 1.3 suites are always offered; remove "
                 "it"},
        BadInput{kTls + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
                 "web.yml:4:19: tls_server_config.cipher_suites: TLS_RSA_WITH_RC4_128_SHA is one "
                 "of Go's insecure suites, which exporter-toolkit refuses too "
                 "(tls.InsecureCipherSuites); remove it"},
        BadInput{kTls + "  cipher_suites: [TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA]\n",
                 "web.yml:4:19: tls_server_config.cipher_suites: "
                 "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA is one of Go's insecure suites, which "
                 "exporter-toolkit refuses too (tls.InsecureCipherSuites); remove it"},
        BadInput{kTls + "  cipher_suites: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n",
                 "web.yml:4:18: tls_server_config.cipher_suites must be a list of names, got "
                 "\"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\""},
        BadInput{kTls + "  cipher_suites: [TLS_RSA_WITH_AES_128_GCM_SHA256]\n",
                 "web.yml:4:19: tls_server_config.cipher_suites: TLS_RSA_WITH_AES_128_GCM_SHA256 "
                 "is a static RSA key exchange suite, without forward secrecy: Go lists it as "
                 "insecure (tls.InsecureCipherSuites) and exporter-toolkit refuses it too; remove "
                 "it"},
        // GnuTLS offers key exchange x cipher x MAC: these two bring in two more.
        BadInput{kTls + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "
                        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA]\n",
                 "web.yml:4:3: tls_server_config.cipher_suites: GnuTLS offers suites as every "
                 "combination of the key exchanges, ciphers and MACs named, so this list would "
                 "also offer TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, "
                 "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256; add them or leave out the names that "
                 "bring them in"},
        BadInput{kTls + "  min_version: TLS10\n  max_version: TLS11\n"
                        "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n",
                 "web.yml:6:3: tls_server_config.cipher_suites: "
                 "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 cannot be offered with TLS versions TLS10 "
                 "to TLS11 (AEAD suites need TLS12)"},
        BadInput{
            kTls +
                "  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n",
            "web.yml:5:3: tls_server_config.cipher_suites applies to TLS 1.0-1.2 only (TLS "
            "1.3 suites are not configurable), and min_version is TLS13; remove it"},
        BadInput{kTls + "  curve_preferences: [X25519, X448]\n",
                 "web.yml:4:31: tls_server_config.curve_preferences: unknown curve \"X448\"; use "
                 "one of CurveP256, CurveP384, CurveP521, X25519"},
        // Which item, and what it is.
        BadInput{kTls + "  curve_preferences: [[X25519]]\n",
                 "web.yml:4:23: tls_server_config.curve_preferences[0] must be a name, got a "
                 "list"},
        // One boolean rule for both files: unquoted, as Go's yaml reads a bool.
        BadInput{kTls + "  prefer_server_cipher_suites: yes\n",
                 "web.yml:4:32: tls_server_config.prefer_server_cipher_suites must be true or "
                 "false (a YAML boolean, unquoted), got \"yes\""},
        BadInput{kTls + "  prefer_server_cipher_suites: \"false\"\n",
                 "web.yml:4:32: tls_server_config.prefer_server_cipher_suites must be true or "
                 "false (a YAML boolean, unquoted), got \"false\""},
        BadInput{kTls + "  client_allowed_sans: [client]\n",
                 "web.yml:4:3: tls_server_config.client_allowed_sans is not supported by "
                 "kvm_exit_exporter (client certificates are checked against client_ca_file "
                 "only); remove it"},
        BadInput{"tls_server_config:\n  cert: |\n    PEM\n",
                 "web.yml:2:3: tls_server_config.cert is not supported by kvm_exit_exporter "
                 "(inline PEM; put it in a file and use cert_file); remove it"},
        // The key as it is written in the file, then where it is: the allowed
        // names are those of that map.
        BadInput{kTls + "  certfile: x\n",
                 "web.yml:4:3: unknown key \"certfile\" in tls_server_config; allowed keys: "
                 "cert_file, key_file, client_auth_type, client_ca_file, min_version, "
                 "max_version, cipher_suites, curve_preferences, prefer_server_cipher_suites"},
        BadInput{"http_server_config:\n  http2: true\n",
                 "web.yml:2:3: http_server_config.http2 is not supported by kvm_exit_exporter "
                 "(libmicrohttpd serves HTTP/1.1 only; set it to false); remove it"},
        BadInput{"http_server_config:\n  http2: maybe\n",
                 "web.yml:2:10: http_server_config.http2 must be true or false (a YAML boolean, "
                 "unquoted), got \"maybe\""},
        BadInput{"http_server_config:\n  headers:\n    Content-Type: foo\n",
                 "web.yml:3:5: unknown header \"Content-Type\" in http_server_config.headers; "
                 "allowed headers: Content-Security-Policy, X-Frame-Options, "
                 "X-Content-Type-Options, X-XSS-Protection, Strict-Transport-Security"},
        BadInput{"http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                 "web.yml:3:22: http_server_config.headers.X-Frame-Options: must be deny or "
                 "sameorigin, got \"allow\""},
        BadInput{"http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
                 "web.yml:3:29: http_server_config.headers.X-Content-Type-Options: must be "
                 "nosniff, got \"sniff\""},
        BadInput{
            "http_server_config:\n  headers:\n    X-XSS-Protection: \"1\\r\\nSet-Cookie: a\"\n",
            "web.yml:3:23: http_server_config.headers.X-XSS-Protection: must be one line"},
        BadInput{"basic_auth_users:\n  alice: secret\n",
                 "web.yml:2:10: basic_auth_users.alice: must be a bcrypt hash ($2y$10$ and 53 "
                 "more characters), not a password; make one with htpasswd -nbB USER PASSWORD"},
        BadInput{"basic_auth_users:\n  alice: $2y$03$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7"
                 "EsimhC7zG\n",
                 "web.yml:2:10: basic_auth_users.alice: must be a bcrypt hash ($2y$10$ and 53 "
                 "more characters), not a password; make one with htpasswd -nbB USER PASSWORD"},
        BadInput{"basic_auth_users:\n  \"a:b\": " + std::string(kHash) + "\n",
                 "web.yml:2:3: basic_auth_users: user name \"a:b\" must be non-empty and without "
                 "':' (Basic authentication separates user and password with it)"},
        BadInput{"basic_auth_users: [alice]\n",
                 "web.yml:1:19: basic_auth_users must be a map of user names, got a list"},
        BadInput{"basic_auth_users:\n  alice: " + std::string(kHash) +
                     "\n  alice: " + std::string(kHash) + "\n",
                 "web.yml:3:3: duplicate user name \"alice\" in basic_auth_users (first at line "
                 "2)"}));

WebConfig::Tls TlsOf(std::string_view extra_keys) {
  const WebConfig config = ParseOk(kTls + std::string(extra_keys));
  return config.tls.value_or(WebConfig::Tls{});
}

// The defaults: TLS 1.2 and 1.3; on TLS 1.2 only ECDHE with AES-GCM or
// ChaCha20-Poly1305; Go's four curves; the server's order wins. One string
// serves every version, since TLS 1.3's ciphers are the same three.
TEST(TlsPriorities, DefaultsAreForwardSecretAeadOnly) {
  const TlsPriorities priorities = MakeTlsPriorities(TlsOf(""));
  EXPECT_EQ(priorities.handshake,
            "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:"
            "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:-MAC-ALL:+AEAD:"
            "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:"
            "%SERVER_PRECEDENCE");
  EXPECT_EQ(priorities.legacy_versions, "");
  EXPECT_EQ(TlsPrioritiesProblem(TlsOf("")), "");
}

TEST(TlsPriorities, MinAndMaxVersionComposeWithTheSuites) {
  EXPECT_THAT(MakeTlsPriorities(TlsOf("  min_version: TLS13\n")).handshake,
              testing::StartsWith("NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:"));
  const TlsPriorities tls12 = MakeTlsPriorities(TlsOf("  max_version: TLS12\n"));
  EXPECT_THAT(tls12.handshake, testing::StartsWith("NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:"));
  EXPECT_EQ(tls12.legacy_versions, "");
  const TlsPriorities old = MakeTlsPriorities(
      TlsOf("  min_version: TLS10\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n"));
  EXPECT_THAT(old.legacy_versions,
              testing::StartsWith(
                  "NORMAL:-VERS-ALL:+VERS-TLS1.2:+VERS-TLS1.1:+VERS-TLS1.0:-KX-ALL:+ECDHE-RSA:"
                  "-CIPHER-ALL:+AES-128-CBC:-MAC-ALL:+SHA1:"));
}

// GnuTLS has one cipher list for TLS 1.2 and 1.3: narrowing TLS 1.2 to one
// suite keeps TLS 1.3's three ciphers in the handshake string, and a TLS 1.2
// handshake switches to a string with only the configured suite.
TEST(TlsPriorities, CipherSuitesNarrowTls12AndLeaveTls13Alone) {
  const WebConfig::Tls tls = TlsOf(
      "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n"
      "  curve_preferences: [CurveP384]\n"
      "  prefer_server_cipher_suites: false\n");
  const TlsPriorities priorities = MakeTlsPriorities(tls);
  EXPECT_EQ(priorities.handshake,
            "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-KX-ALL:+ECDHE-RSA:-CIPHER-ALL:"
            "+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-GROUP-ALL:"
            "+GROUP-SECP384R1");
  EXPECT_EQ(priorities.legacy_versions,
            "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ECDHE-RSA:-CIPHER-ALL:+AES-256-GCM:"
            "-MAC-ALL:+AEAD:-GROUP-ALL:+GROUP-SECP384R1");
  EXPECT_EQ(TlsPrioritiesProblem(tls), "");
}

// One table, one row per Go name; every row that is offered maps to elements
// this GnuTLS accepts, and alone offers exactly its own suite.
TEST(TlsPriorities, EveryOfferedGoSuiteMapsToExactlyOneGnuTlsSuite) {
  for (const std::string_view name :
       {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"}) {
    const GoCipherSuite* row = FindGoCipherSuite(name);
    ASSERT_NE(row, nullptr) << name;
    EXPECT_EQ(row->refused, "") << name;
    WebConfig::Tls tls;
    tls.cipher_suites = {std::string(name)};
    EXPECT_EQ(TlsPrioritiesProblem(tls), "") << name;
  }
  // Refused as exporter-toolkit refuses them (Go's tls.InsecureCipherSuites),
  // though GnuTLS could offer them.
  for (const std::string_view name :
       {"TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_RC4_128_SHA"}) {
    const GoCipherSuite* row = FindGoCipherSuite(name);
    ASSERT_NE(row, nullptr) << name;
    EXPECT_NE(row->refused, "") << name;
  }
  EXPECT_EQ(FindGoCipherSuite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"), nullptr)
      << "Go's legacy alias is not in tls.CipherSuites(), so exporter-toolkit refuses it";
  for (const auto& [name, group] :
       {std::pair{"X25519", "GROUP-X25519"}, std::pair{"CurveP256", "GROUP-SECP256R1"},
        std::pair{"CurveP384", "GROUP-SECP384R1"}, std::pair{"CurveP521", "GROUP-SECP521R1"}}) {
    const GoCurve* curve = FindGoCurve(name);
    ASSERT_NE(curve, nullptr) << name;
    EXPECT_EQ(curve->group, group);
  }
}

TEST(WebConfigFile, UnreadableFileNamesThePath) {
  const auto result = LoadWebConfigFile("/nonexistent/web.yml");
  ASSERT_TRUE(std::holds_alternative<WebConfigError>(result));
  EXPECT_EQ(std::get<WebConfigError>(result).message,
            "/nonexistent/web.yml: cannot read the web config file: No such file or directory");
}

TEST(WebConfigFile, RelativeCertificatePathsAreResolvedAgainstTheFilesDirectory) {
  const test_util::TempDir dir;
  const std::string path = (dir.path() / "web.yml").string();
  test_util::WriteFile(path,
                       "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
  const auto result = LoadWebConfigFile(path);
  ASSERT_TRUE(std::holds_alternative<WebConfigError>(result));
  EXPECT_EQ(std::get<WebConfigError>(result).message,
            path + ": tls_server_config.cert_file: " + (dir.path() / "server.crt").string() +
                ": cannot read the file: No such file or directory");
}

// A wrong path must not hang the start (a FIFO) nor fill memory (a device):
// the same bounds as the configuration, for the file and its certificates.
TEST(WebConfigFile, OnlyARegularFileOfAtMost1MiBIsRead) {
  const test_util::TempDir dir;
  const std::string fifo = (dir.path() / "web.fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto from_fifo = LoadWebConfigFile(fifo);
  ASSERT_TRUE(std::holds_alternative<WebConfigError>(from_fifo));
  EXPECT_EQ(std::get<WebConfigError>(from_fifo).message,
            fifo + ": the web config file must be a regular file, but this is a FIFO");

  const std::string path = (dir.path() / "web.yml").string();
  test_util::WriteFile(path, "tls_server_config:\n  cert_file: /dev/zero\n  key_file: k\n");
  const auto from_device = LoadWebConfigFile(path);
  ASSERT_TRUE(std::holds_alternative<WebConfigError>(from_device));
  EXPECT_EQ(std::get<WebConfigError>(from_device).message,
            path +
                ": tls_server_config.cert_file: /dev/zero: the file must be a regular file, "
                "but this is a character device");

  test_util::WriteFile(path, "#" + std::string(std::size_t{1024} * 1024, 'x') + "\n");
  const auto too_large = LoadWebConfigFile(path);
  ASSERT_TRUE(std::holds_alternative<WebConfigError>(too_large));
  EXPECT_THAT(std::get<WebConfigError>(too_large).message,
              ::testing::HasSubstr("is larger than the limit of 1048576 bytes"));
}

TEST(WebConfigFile, AFileThatIsNoCertificateIsRefusedAtLoad) {
  const test_util::TempDir dir;
  const std::string path = (dir.path() / "web.yml").string();
  test_util::WriteFile(dir.path() / "server.crt", "not a certificate\n");
  test_util::WriteFile(dir.path() / "server.key", "not a key\n");
  test_util::WriteFile(path,
                       "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
  const auto result = LoadWebConfigFile(path);
  ASSERT_TRUE(std::holds_alternative<WebConfigError>(result));
  EXPECT_THAT(std::get<WebConfigError>(result).message,
              testing::StartsWith(path + ": tls_server_config: cert_file " +
                                  (dir.path() / "server.crt").string() + " and key_file " +
                                  (dir.path() / "server.key").string() +
                                  " are not a matching PEM certificate and key: "));
}

}  // namespace
}  // namespace kvmexit
