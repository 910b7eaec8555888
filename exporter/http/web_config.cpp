// SPDX-License-Identifier: Apache-2.0
#include "http/web_config.h"

namespace kvmexit {

std::string_view TlsVersionName(TlsVersion version) {
  switch (version) {
    case TlsVersion::kTls10:
      return "TLS10";
    case TlsVersion::kTls11:
      return "TLS11";
    case TlsVersion::kTls12:
      return "TLS12";
    case TlsVersion::kTls13:
      return "TLS13";
  }
  return "TLS12";
}

}  // namespace kvmexit
