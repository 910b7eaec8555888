// SPDX-License-Identifier: Apache-2.0
#include "web_config.h"

#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "temp_dir.h"

namespace kvmexit {
namespace {

constexpr std::string_view kSource = "web.yml";
// A syntactically valid bcrypt hash (cost 10).
constexpr std::string_view kHash = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

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
  EXPECT_EQ(config.tls->client_auth, ClientAuth::kNoClientCert);
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

const std::string kTls = "tls_server_config:\n  cert_file: a\n  key_file: b\n";

INSTANTIATE_TEST_SUITE_P(
    Messages, WebConfigBadInput,
    testing::Values(
        BadInput{"tls_server_config: [\n",
                 "web.yml:2:1: invalid YAML: end of sequence flow not found"},
        BadInput{"- a\n", "web.yml:1:1: the web config must be a map"},
        BadInput{"a: 1\n---\nb: 2\n", "web.yml:3:1: only one YAML document is allowed, found 2"},
        // yaml-cpp 0.7's LoadAll loops forever on it (the config's fuzzer found it).
        BadInput{",\n", "web.yml:1:1: invalid YAML: unexpected \",\" (no value can start with it)"},
        BadInput{"tls_config:\n",
                 "web.yml:1:1: unknown key \"tls_config\"; allowed: tls_server_config, "
                 "http_server_config, basic_auth_users"},
        BadInput{"basic_auth_users: {}\nbasic_auth_users: {}\n",
                 "web.yml:2:1: the web config: key \"basic_auth_users\" is given twice"},
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
                 "web.yml:2:14: tls_server_config.cert_file: must be a string"},
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
        BadInput{kTls + "  max_version: TLS12\n",
                 "web.yml:4:3: tls_server_config.max_version is not supported by "
                 "kvm_exit_exporter (only TLS13, the default, can be given); remove it"},
        BadInput{kTls + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                 "web.yml:4:3: tls_server_config.cipher_suites is not supported by "
                 "kvm_exit_exporter (GnuTLS chooses ciphers and curves from its system "
                 "priorities); remove it"},
        BadInput{kTls + "  curve_preferences: [X25519]\n",
                 "web.yml:4:3: tls_server_config.curve_preferences is not supported by "
                 "kvm_exit_exporter (GnuTLS chooses ciphers and curves from its system "
                 "priorities); remove it"},
        BadInput{kTls + "  prefer_server_cipher_suites: true\n",
                 "web.yml:4:3: tls_server_config.prefer_server_cipher_suites is not supported by "
                 "kvm_exit_exporter (GnuTLS chooses ciphers and curves from its system "
                 "priorities); remove it"},
        BadInput{kTls + "  client_allowed_sans: [client]\n",
                 "web.yml:4:3: tls_server_config.client_allowed_sans is not supported by "
                 "kvm_exit_exporter (client certificates are checked against client_ca_file "
                 "only); remove it"},
        BadInput{"tls_server_config:\n  cert: |\n    PEM\n",
                 "web.yml:2:3: tls_server_config.cert is not supported by kvm_exit_exporter "
                 "(inline PEM; put it in a file and use cert_file); remove it"},
        BadInput{kTls + "  certfile: x\n",
                 "web.yml:4:3: unknown key \"tls_server_config.certfile\"; allowed: cert_file, "
                 "key_file, client_auth_type, client_ca_file, min_version"},
        BadInput{"http_server_config:\n  http2: true\n",
                 "web.yml:2:3: http_server_config.http2 is not supported by kvm_exit_exporter "
                 "(libmicrohttpd serves HTTP/1.1 only; set it to false); remove it"},
        BadInput{"http_server_config:\n  http2: maybe\n",
                 "web.yml:2:10: http_server_config.http2: must be true or false, got \"maybe\""},
        BadInput{"http_server_config:\n  headers:\n    Content-Type: foo\n",
                 "web.yml:3:5: unknown key \"http_server_config.headers.Content-Type\"; allowed: "
                 "Content-Security-Policy, X-Frame-Options, X-Content-Type-Options, "
                 "X-XSS-Protection, Strict-Transport-Security"},
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
        BadInput{"basic_auth_users: [alice]\n", "web.yml:1:19: basic_auth_users must be a map"}));

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
