// SPDX-License-Identifier: Apache-2.0
// What the TLS server offers, as GnuTLS priority strings built from the web
// config's tls_server_config: versions, TLS 1.0-1.2 cipher suites, curves and
// whose preference wins. The keys and names are exporter-toolkit's (Go's
// crypto/tls names); this file holds the one table that maps them to GnuTLS.
//
// Defaults, as strict as Go's crypto/tls: TLS 1.2 and 1.3; on TLS 1.2 only
// forward-secret AEAD suites (ECDHE with AES-GCM or ChaCha20-Poly1305); TLS
// 1.3 with its three suites; curves X25519, P-256, P-384, P-521.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "http/web_config.h"

namespace kvmexit {

// One of Go's cipher suite names and the GnuTLS priority elements that offer
// it. GnuTLS enables suites as a product, key exchange x cipher x MAC, not one
// by one: MakeTlsPriorities offers the product of the configured rows and
// TlsPrioritiesProblem refuses a list whose product holds more than the list.
struct GoCipherSuite {
  std::string_view go_name;  // "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
  std::uint16_t id;          // IANA number, to compare with what GnuTLS offers
  std::string_view kx;       // "ECDHE-RSA"; empty for a TLS 1.3 suite
  std::string_view cipher;   // "AES-128-GCM"
  std::string_view mac;      // "AEAD", "SHA1"
  std::string_view refused;  // why this exporter refuses the name; empty: offered
};

// The row of Go's name `name`; nullptr when Go has no such suite.
const GoCipherSuite* FindGoCipherSuite(std::string_view name);

// A curve_preferences name and its GnuTLS group.
struct GoCurve {
  std::string_view go_name;  // "CurveP256"
  std::string_view group;    // "GROUP-SECP256R1"
};

// The row of `name`; nullptr when exporter-toolkit has no such curve.
const GoCurve* FindGoCurve(std::string_view name);

// "CurveP256, CurveP384, CurveP521, X25519", for messages.
std::string GoCurveNames();

struct TlsPriorities {
  // For MHD_OPTION_HTTPS_PRIORITIES: every handshake starts with it.
  std::string handshake;
  // Set when cipher_suites is given and TLS 1.3 is offered: GnuTLS has one
  // list of ciphers for TLS 1.2 and 1.3, so the handshake string must keep
  // TLS 1.3's ciphers, and a handshake that settles on TLS 1.2 or lower
  // switches to this string, which offers only the configured suites, before
  // its suite is chosen. Empty: the handshake string is exact for all versions.
  std::string legacy_versions;
};

TlsPriorities MakeTlsPriorities(const WebConfig::Tls& tls);

// Why GnuTLS cannot offer exactly what `tls` asks for (a priority string it
// refuses, cipher_suites whose product holds suites the list does not name,
// or a version range without any suite); empty when it can.
std::string TlsPrioritiesProblem(const WebConfig::Tls& tls);

}  // namespace kvmexit
