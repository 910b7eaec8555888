// SPDX-License-Identifier: Apache-2.0
// The text of an errno value for messages. libbpf returns negative errno
// values where the bpf() wrappers set errno: both read the same here.
#pragma once

#include <cstring>
#include <string>

namespace kvmexit {

inline std::string ErrnoText(int err) { return std::strerror(err < 0 ? -err : err); }

}  // namespace kvmexit
