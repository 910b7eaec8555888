// SPDX-License-Identifier: Apache-2.0
#include "identity/naming_rules.h"

#include <re2/re2.h>

#include <algorithm>
#include <memory>
#include <string_view>

#include "identity/label_value.h"
#include "util/text.h"

namespace kvmexit {
namespace {

// Rules see a bounded prefix of the command line and the cgroup path (the
// bound std::regex needed, kept so that names do not change). RE2 is linear in
// the text, but a command line can be megabytes and up to kMaxNamingRules
// rules run on every new VM: the bound keeps that in milliseconds.
constexpr std::size_t kMaxRuleTextBytes = std::size_t{16} * 1024;

// Regexes and names are quoted this far in messages: a pattern can be huge.
constexpr std::size_t kMaxQuotedBytes = 120;

std::string QuotedExcerpt(std::string_view text) {
  std::string quoted = "\"" + SanitizeLabelValue(text, kMaxQuotedBytes) + "\"";
  if (text.size() > kMaxQuotedBytes) quoted += " (" + std::to_string(text.size()) + " bytes)";
  return quoted;
}

bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// The deepest nesting of parentheses in `pattern` as RE2 reads it: escaped
// characters, \Q...\E literals and character classes hold no groups. A plain
// loop over any text, so it runs before RE2 sees the pattern.
int ParenthesisDepth(std::string_view pattern) {
  int depth = 0;
  int deepest = 0;
  std::size_t i = 0;
  while (i < pattern.size()) {
    const char c = pattern[i];
    if (c == '\\') {
      if (pattern.substr(i + 1).starts_with('Q')) {
        const auto end = pattern.find("\\E", i + 2);
        if (end == std::string_view::npos) break;  // the rest is literal
        i = end + 2;
      } else {
        i += 2;
      }
    } else if (c == '[') {
      // A class: "]" first (after an optional "^") is a literal, as are
      // "(" and ")" anywhere in it; "[:alpha:]" is a class inside the class.
      std::size_t j = i + 1;
      if (pattern.substr(j).starts_with('^')) ++j;
      if (pattern.substr(j).starts_with(']')) ++j;
      while (j < pattern.size() && pattern[j] != ']') {
        const auto posix_end = pattern.substr(j).starts_with("[:") ? pattern.find(":]", j + 2)
                                                                   : std::string_view::npos;
        if (posix_end != std::string_view::npos) {
          j = posix_end + 2;
        } else {
          j += pattern[j] == '\\' ? 2 : 1;
        }
      }
      i = j + 1;
    } else {
      if (c == '(') deepest = std::max(deepest, ++depth);
      if (c == ')' && depth > 0) --depth;
      ++i;
    }
  }
  return deepest;
}

// One piece of a rule's name: literal text, or a group of the match.
struct NamePiece {
  std::string_view text;  // the literal, or the reference as written ("$1", "${12}")
  int group = -1;         // >= 0: insert this group of the match
};

struct ParsedName {
  std::vector<NamePiece> pieces;
  int highest_group = -1;
  std::string problem;  // what is wrong with the name, "" when nothing is
};

// What a "$" in a rule's name starts: a piece (a group, or "$$"'s dollar
// sign) and how many bytes it takes, or a problem quoting the offending text.
struct Reference {
  NamePiece piece;
  std::size_t length = 0;
  std::string problem;
};

// The reference at name[at], which is "$": $0..$9 (one digit, as before RE2),
// ${N} for any group (as Prometheus writes it), or $$ for a dollar sign. "$10"
// is refused rather than guessed (group 10 to std::regex, group 1 then "0" to
// other readers), and "${name}" because named groups are not supported.
Reference ParseReference(std::string_view name, std::size_t at) {
  const std::string_view rest = name.substr(at + 1);
  if (rest.starts_with('$')) return {.piece = {name.substr(at, 1)}, .length = 2};
  if (!rest.empty() && IsAsciiDigit(rest[0])) {
    if (rest.size() == 1 || !IsAsciiDigit(rest[1])) {
      return {.piece = {name.substr(at, 2), rest[0] - '0'}, .length = 2};
    }
    const std::string_view first = rest.substr(0, 1);
    const std::string_view second = rest.substr(1, 1);
    const std::string_view both = rest.substr(0, 2);
    std::string problem = QuotedExcerpt(name.substr(at, 3));
    problem.append(" is ambiguous: write ${").append(first).append("}").append(second);
    problem.append(" for group ").append(first).append(" then \"").append(second);
    problem.append("\", or ${").append(both).append("} for group ").append(both);
    return {.problem = std::move(problem)};
  }
  if (rest.starts_with('{')) {
    // "${" to the closing "}", or to the end when there is none.
    const auto close = rest.find('}');
    const bool closed = close != std::string_view::npos;
    const auto digits = closed ? rest.substr(1, close - 1) : std::string_view{};
    const auto group = IsDigits(digits) ? ParseDecimal<int>(digits) : std::nullopt;
    const auto written = name.substr(at, closed ? close + 2 : std::string_view::npos);
    if (group) return {.piece = {written, *group}, .length = written.size()};
    return {.problem = QuotedExcerpt(written) +
                       " is not a group reference: write ${N} with N a group number (named "
                       "groups are not supported)"};
  }
  return {.problem = QuotedExcerpt(name.substr(at, 2)) + " at byte " + std::to_string(at + 1) +
                     ": a \"$\" must start $N or ${N} (a group of the match) or $$ (a dollar "
                     "sign)"};
}

// Splits a rule's name into literals and group references.
ParsedName ParseName(std::string_view name) {
  ParsedName parsed;
  std::size_t literal_start = 0;
  std::size_t i = 0;
  while (i < name.size()) {
    if (name[i] != '$') {
      ++i;
      continue;
    }
    if (i > literal_start) parsed.pieces.push_back({name.substr(literal_start, i - literal_start)});
    Reference reference = ParseReference(name, i);
    if (!reference.problem.empty()) return {.problem = std::move(reference.problem)};
    parsed.pieces.push_back(reference.piece);
    parsed.highest_group = std::max(parsed.highest_group, reference.piece.group);
    i += reference.length;
    literal_start = i;
  }
  if (literal_start < name.size()) parsed.pieces.push_back({name.substr(literal_start)});
  return parsed;
}

std::optional<NamingRuleProblem> RegexProblem(std::string message) {
  return NamingRuleProblem{NamingRuleProblem::Part::kRegex, std::move(message)};
}

std::string JoinArgs(const std::vector<std::string>& argv) {
  std::string joined;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (i > 0) joined += ' ';
    joined += argv[i];
  }
  return joined;
}

// The name `rule` gives `text`, unbounded; "" when it does not match or is blank.
std::string NameFromRule(const NamingRule& rule, std::string_view text) {
  if (!rule.compiled) return {};
  const re2::RE2& regex = *rule.compiled;
  const ParsedName name = ParseName(rule.name);
  if (!name.problem.empty() || name.highest_group > regex.NumberOfCapturingGroups()) return {};
  // Only the groups the name uses: RE2 is fastest when asked for fewest.
  std::vector<re2::StringPiece> groups(static_cast<std::size_t>(name.highest_group + 1));
  if (!regex.Match(text, 0, text.size(), re2::RE2::UNANCHORED, groups.data(),
                   static_cast<int>(groups.size()))) {
    return {};
  }
  std::string expanded;
  for (const NamePiece& piece : name.pieces) {
    // A group that took no part in the match is empty.
    expanded += piece.group < 0 ? piece.text
                                : std::string_view(groups[static_cast<std::size_t>(piece.group)]);
  }
  // Blank is no name, so the next rule gets its turn; IdentifyVm makes the
  // name a label value.
  return Trim(expanded).empty() ? std::string() : expanded;
}

}  // namespace

std::optional<NamingRuleProblem> CompileNamingRule(NamingRule& rule) {
  rule.compiled.reset();
  if (const int depth = ParenthesisDepth(rule.regex); depth > kMaxRegexNesting) {
    return RegexProblem("regular expression nests parentheses " + std::to_string(depth) +
                        " deep; at most " + std::to_string(kMaxRegexNesting) + " allowed");
  }
  re2::RE2::Options options;
  options.set_log_errors(false);  // the error goes into the configuration error instead
  auto compiled = std::make_shared<const re2::RE2>(rule.regex, options);
  if (!compiled->ok()) {
    return RegexProblem("invalid regular expression " + QuotedExcerpt(rule.regex) + ": " +
                        SanitizeLabelValue(compiled->error(), kMaxQuotedBytes) +
                        " (RE2 syntax, as in Prometheus relabelling: no backreferences or "
                        "lookaround)");
  }
  const ParsedName name = ParseName(rule.name);
  if (!name.problem.empty()) return NamingRuleProblem{NamingRuleProblem::Part::kName, name.problem};
  const int groups = compiled->NumberOfCapturingGroups();
  for (const NamePiece& piece : name.pieces) {
    if (piece.group > groups) {
      return NamingRuleProblem{NamingRuleProblem::Part::kName,
                               QuotedExcerpt(piece.text) + " refers to group " +
                                   std::to_string(piece.group) + ", but the regex has " +
                                   std::to_string(groups) + " capture group(s)"};
    }
  }
  rule.compiled = std::move(compiled);
  return std::nullopt;
}

std::string NameFromRules(const std::vector<NamingRule>& rules, const ProcessInfo& process) {
  if (rules.empty()) return {};
  const auto cmdline = JoinArgs(process.argv);
  const auto bounded = [](std::string_view text) { return text.substr(0, kMaxRuleTextBytes); };
  for (const auto& rule : rules) {
    const std::string& text = rule.source == NamingRule::Source::kCgroup ? process.cgroup : cmdline;
    if (auto name = NameFromRule(rule, bounded(text)); !name.empty()) return name;
  }
  return {};
}

}  // namespace kvmexit
