// SPDX-License-Identifier: Apache-2.0
// The site's own naming rules (config vms.naming_rules): the first rule whose
// regex matches the process's command line or cgroup path names the VM, with
// the regex's groups inserted into the rule's name. IdentifyVm asks them first,
// so a site can override every built-in source.
//
// Regexes are RE2 (the syntax of Prometheus relabelling): matching takes time
// linear in the text, whatever the pattern, and never recurses on the stack.
// A rule is checked and compiled once, by CompileNamingRule when the
// configuration is loaded; NameFromRules only matches.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <memory>

#include "identity/process_info.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace kvmexit {

// A site's own VM naming rule: the first rule whose regex matches names the VM.
struct NamingRule {
  enum class Source { kCmdline, kCgroup };
  Source source = Source::kCmdline;
  std::string regex;  // RE2 regex, searched (not anchored) in the source text
  std::string name;   // replacement: $0..$9 or ${N} insert groups, $$ a dollar sign
  // `regex` compiled once, when the configuration is loaded (CompileNamingRule
  // in naming_rules.h); shared, so copying a Config does not recompile. A rule
  // without it never matches.
  std::shared_ptr<const re2::RE2> compiled;

  // By text: the compiled regex follows from `regex`.
  friend bool operator==(const NamingRule& a, const NamingRule& b) {
    return a.source == b.source && a.regex == b.regex && a.name == b.name;
  }
};

// The most rules a configuration may hold. Each is a compiled regex tried on
// every new VM; without a cap, a generated file of a million rules took 2.5 GB.
inline constexpr std::size_t kMaxNamingRules = 1000;

// The deepest nesting of parentheses a rule's regex may have: the limit of
// Go's regexp, so a rule Prometheus relabelling accepts is accepted here. The
// RE2 in Debian 12 has no limit of its own.
inline constexpr int kMaxRegexNesting = 1000;

// What is wrong with one part of a rule, for a located configuration error.
struct NamingRuleProblem {
  enum class Part { kRegex, kName };
  Part part;
  std::string message;  // "invalid regular expression \"(a\": missing ): (a"
};

// Checks `rule.regex` and `rule.name` and compiles the regex into
// `rule.compiled`. The name may use $0..$9 (one digit) and ${N} for any group,
// and $$ for a dollar sign; a reference to a group the regex lacks, "$10", a
// stray "$" and "${name}" are problems. nullopt when the rule is usable.
std::optional<NamingRuleProblem> CompileNamingRule(NamingRule& rule);

// The VM name the first matching rule gives `process`, as the rule expands it
// (IdentifyVm makes it a label value); "" when no rule matches. A rule whose
// name comes out blank does not count as a match, and one that
// CompileNamingRule did not accept never matches. Rules see the first 16 KiB
// of the command line and of the cgroup path. May throw std::bad_alloc only;
// IdentifyVm catches it.
std::string NameFromRules(const std::vector<NamingRule>& rules, const ProcessInfo& process);

}  // namespace kvmexit
