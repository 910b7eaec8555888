// SPDX-License-Identifier: Apache-2.0
// Accept-Encoding as RFC 9110 section 12.5.3 defines it, reduced to the one
// question the HTTP server asks: may the response be gzip-compressed?
#pragma once

#include <string_view>

namespace kvmexit {

// True when `accept_encoding` (the field value; several fields joined by ",")
// gives gzip (or x-gzip, or "*" when gzip is not named) a non-zero qvalue.
// Codings are case-insensitive tokens: "xgzip" or "gzipfoo" are other codings.
// A member with a malformed qvalue is ignored rather than guessed at.
bool AcceptsGzip(std::string_view accept_encoding);

}  // namespace kvmexit
