// SPDX-License-Identifier: Apache-2.0
// The site's naming rules on their own: compiling and checking a rule (RE2
// syntax, the name's group references), matching, capture groups, skipping,
// and patterns that made std::regex hang or crash. The located messages of a
// configuration: config_test. Precedence over the built-in sources: vm_identity_test.
#include "identity/naming_rules.h"

#include <gtest/gtest.h>

namespace kvmexit {
namespace {

NamingRule Uncompiled(NamingRule::Source source, std::string regex, std::string name) {
  return NamingRule{.source = source, .regex = std::move(regex), .name = std::move(name)};
}

// A rule as configuration loading makes it.
NamingRule Rule(NamingRule::Source source, std::string regex, std::string name) {
  NamingRule rule = Uncompiled(source, std::move(regex), std::move(name));
  if (const auto problem = CompileNamingRule(rule)) {
    ADD_FAILURE() << "rule " << rule.regex << " -> " << rule.name << ": " << problem->message;
  }
  return rule;
}

NamingRule CmdlineRule(std::string regex, std::string name) {
  return Rule(NamingRule::Source::kCmdline, std::move(regex), std::move(name));
}

// What CompileNamingRule says about a rule it refuses; "" if it accepts it.
std::string Problem(std::string regex, std::string name,
                    NamingRuleProblem::Part part = NamingRuleProblem::Part::kName) {
  NamingRule rule = Uncompiled(NamingRule::Source::kCmdline, std::move(regex), std::move(name));
  const auto problem = CompileNamingRule(rule);
  if (!problem) return "";
  EXPECT_EQ(problem->part, part) << problem->message;
  EXPECT_EQ(rule.compiled, nullptr);
  return problem->message;
}

ProcessInfo Process(std::vector<std::string> argv, std::string cgroup = "/") {
  return ProcessInfo{.pid = 4242, .argv = std::move(argv), .cgroup = std::move(cgroup)};
}

std::string Name(const NamingRule& rule, std::vector<std::string> argv) {
  return NameFromRules({rule}, Process(std::move(argv)));
}

TEST(NameFromRulesTest, NoRulesNoName) { EXPECT_EQ(NameFromRules({}, Process({"qemu"})), ""); }

TEST(NameFromRulesTest, CmdlineIsTheArgumentsJoinedBySpaces) {
  const std::vector<NamingRule> rules = {CmdlineRule(R"(-drive file=/vm/(\w+)\.img)", " img-$1 ")};
  EXPECT_EQ(NameFromRules(rules, Process({"qemu", "-drive", "file=/vm/t7.img,if=virtio"})),
            " img-t7 ");  // as expanded: IdentifyVm trims every source's name
}

TEST(NameFromRulesTest, CgroupRulesSeeTheCgroupPath) {
  const std::vector<NamingRule> rules = {
      Rule(NamingRule::Source::kCgroup, R"(/tenants/([^/]+)/)", "tenant-$1")};
  EXPECT_EQ(NameFromRules(rules, Process({"qemu"}, "/tenants/acme/vm3")), "tenant-acme");
  EXPECT_EQ(NameFromRules(rules, Process({"/tenants/acme/x"}, "/")), "");
}

TEST(NameFromRulesTest, UncompiledRulesAndEmptyNamesDoNotMatch) {
  const std::vector<NamingRule> rules = {
      Uncompiled(NamingRule::Source::kCmdline, "qemu", "not-compiled"),
      CmdlineRule("(x)?qemu", "$1"),     // the group took no part: ""
      CmdlineRule("(x)?qemu", " $1\t"),  // blank
      CmdlineRule("qemu", "third"),
  };
  EXPECT_EQ(NameFromRules(rules, Process({"qemu"})), "third");
}

TEST(NameFromRulesTest, NameReferences) {
  const std::vector<std::string> argv = {"qemu", "-name", "web", "-smp", "4"};
  const std::string regex = R"(-name (\w+) -smp (\d+))";
  EXPECT_EQ(Name(CmdlineRule(regex, "$1-$2"), argv), "web-4");
  EXPECT_EQ(Name(CmdlineRule(regex, "${1}-${2}"), argv), "web-4");  // as in Prometheus
  EXPECT_EQ(Name(CmdlineRule(regex, "${1}0"), argv), "web0");
  EXPECT_EQ(Name(CmdlineRule(regex, "$2x"), argv), "4x");  // $N is one digit
  EXPECT_EQ(Name(CmdlineRule(regex, "$$1 $1$$"), argv), "$1 web$");
  EXPECT_EQ(Name(CmdlineRule(regex, "[$0]"), argv), "[-name web -smp 4]");
  EXPECT_EQ(
      Name(CmdlineRule("(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)", "${12}${1}"), {"abcdefghijkl"}),
      "la");
}

TEST(NameFromRulesTest, BacktrackingBombMatchesInLinearTime) {
  // std::regex took 27 s for 28 "a" and four times longer per two more
  // characters; RE2 answers at once.
  const auto rule = CmdlineRule("(a+)+$", "all-a");
  EXPECT_EQ(Name(rule, {std::string(40, 'a') + "!"}), "");
  EXPECT_EQ(Name(rule, {std::string(40, 'a')}), "all-a");
}

TEST(NameFromRulesTest, RulesSeeTheFirst16KiB) {
  const std::vector<NamingRule> rules = {
      CmdlineRule(R"(^(.|\n)*-name (\w+))", "$2"),
      CmdlineRule(R"(^(\S+))", "head"),
  };
  auto process = Process({"qemu-system-x86_64", std::string(15'000, 'a'), "-name", "tail"});
  EXPECT_EQ(NameFromRules(rules, process), "tail");
  process.argv = {"qemu-system-x86_64", std::string(200'000, 'a'), "-name", "tail"};
  EXPECT_EQ(NameFromRules(rules, process), "head");
}

TEST(CompileNamingRuleTest, CompilesTheRegex) {
  auto rule = Uncompiled(NamingRule::Source::kCmdline, "-name (\\S+)", "$1");
  EXPECT_EQ(CompileNamingRule(rule), std::nullopt);
  EXPECT_NE(rule.compiled, nullptr);
}

TEST(CompileNamingRuleTest, InvalidRegexGivesRe2sError) {
  using Part = NamingRuleProblem::Part;
  EXPECT_EQ(Problem("([a-z", "x", Part::kRegex),
            "invalid regular expression \"([a-z\": missing ]: [a-z (RE2 syntax, as in "
            "Prometheus relabelling: no backreferences or lookaround)");
  EXPECT_NE(Problem(R"((\w)\1)", "x", Part::kRegex).find("invalid escape sequence: \\1"),
            std::string::npos);
  EXPECT_NE(Problem("a(?!b)", "x", Part::kRegex).find("invalid perl operator: (?!"),
            std::string::npos);
  // A long pattern is quoted in part, with its size.
  const std::string message = Problem("(" + std::string(5'000, 'a'), "x", Part::kRegex);
  EXPECT_LT(message.size(), 500U) << message;
  EXPECT_NE(message.find("(5001 bytes)"), std::string::npos) << message;
}

TEST(CompileNamingRuleTest, NestingIsLimited) {
  using Part = NamingRuleProblem::Part;
  const auto nested = [](int depth) {
    return std::string(static_cast<std::size_t>(depth), '(') + "a" +
           std::string(static_cast<std::size_t>(depth), ')');
  };
  EXPECT_EQ(Problem(nested(kMaxRegexNesting), "$1"), "");
  EXPECT_EQ(Problem(nested(kMaxRegexNesting + 1), "x", Part::kRegex),
            "regular expression nests parentheses 1001 deep; at most 1000 allowed");
  // Parentheses that are not groups do not count.
  const std::string parentheses = std::string(2000, '(') + ")";
  EXPECT_EQ(Problem("[" + parentheses + "]", "x"), "");
  EXPECT_EQ(Problem("[^]" + parentheses + "]", "x"), "");
  EXPECT_EQ(Problem("[[:alpha:]" + parentheses + "]", "x"), "");
  EXPECT_EQ(Problem("[\\]" + parentheses + "]", "x"), "");
  EXPECT_EQ(Problem("\\Q" + parentheses + "\\E", "x"), "");
  EXPECT_EQ(Problem("x\\Q" + parentheses, "x"), "");  // literal to the end
  std::string escaped;
  for (int i = 0; i < 2000; ++i) escaped += "\\(";
  EXPECT_EQ(Problem(escaped, "x"), "");
}

TEST(CompileNamingRuleTest, NameReferencesAreChecked) {
  EXPECT_EQ(Problem("(a)", "$2"), "\"$2\" refers to group 2, but the regex has 1 capture group(s)");
  EXPECT_EQ(Problem("(a)", "x${2}"),
            "\"${2}\" refers to group 2, but the regex has 1 capture group(s)");
  EXPECT_EQ(Problem("(?:a)", "$1"),
            "\"$1\" refers to group 1, but the regex has 0 capture group(s)");
  EXPECT_EQ(Problem("(a)", "$10"),
            "\"$10\" is ambiguous: write ${1}0 for group 1 then \"0\", or ${10} for group 10");
  EXPECT_EQ(Problem("(a)", "5$"),
            "\"$\" at byte 2: a \"$\" must start $N or ${N} (a group of the match) or $$ (a "
            "dollar sign)");
  EXPECT_NE(Problem("(a)", "$x").find("\"$x\" at byte 1"), std::string::npos);
  EXPECT_EQ(Problem("(?P<vm>a)", "${vm}"),
            "\"${vm}\" is not a group reference: write ${N} with N a group number (named groups "
            "are not supported)");
  EXPECT_NE(Problem("(a)", "${}").find("\"${}\" is not a group reference"), std::string::npos);
  EXPECT_NE(Problem("(a)", "${1").find("\"${1\" is not a group reference"), std::string::npos);
  EXPECT_NE(Problem("(a)", "${99999999999}").find("is not a group reference"), std::string::npos);
  EXPECT_EQ(Problem("(a)", "$$1 $0 ${0} ${1} $1"), "");
}

}  // namespace
}  // namespace kvmexit
