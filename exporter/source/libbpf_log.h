// SPDX-License-Identifier: Apache-2.0
// libbpf's messages, kept instead of printed: the cause of a failed load or
// attach, so that Attach can say why instead of spraying stderr.
#pragma once

#include <string>
#include <string_view>

namespace kvmexit {

// Points libbpf's (process-wide) print callback here. Debug messages are dropped.
void CaptureLibbpfLog();

// The cause of the last failure, and forgets every message so far: the
// verifier's verdict when a program was refused (the last line of its log,
// e.g. "failed to resolve CO-RE relocation ... struct vcpu_svm.vcpu"), else
// the first warning since the last Take (later ones only say what failed
// because of it); "" when libbpf said nothing.
std::string TakeLibbpfWarning();

// The line before "processed N insns" in a verifier log, or "".
std::string VerifierVerdict(std::string_view text);

}  // namespace kvmexit
