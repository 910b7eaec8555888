// The site's naming rules on their own: matching, capture groups, skipping,
// and surviving command lines that would overflow std::regex's recursion.
// Their precedence over the built-in sources: vm_identity_test.
#include "naming_rules.h"

#include <gtest/gtest.h>

namespace kvmexit {
namespace {

NamingRule Rule(NamingRule::Source source, std::string regex, std::string name) {
  return NamingRule{.source = source, .regex = std::move(regex), .name = std::move(name)};
}

ProcessInfo Process(std::vector<std::string> argv, std::string cgroup = "/") {
  return ProcessInfo{.pid = 4242, .argv = std::move(argv), .cgroup = std::move(cgroup)};
}

TEST(NameFromRulesTest, NoRulesNoName) { EXPECT_EQ(NameFromRules({}, Process({"qemu"})), ""); }

TEST(NameFromRulesTest, CmdlineIsTheArgumentsJoinedBySpaces) {
  const std::vector<NamingRule> rules = {
      Rule(NamingRule::Source::kCmdline, R"(-drive file=/vm/(\w+)\.img)", " img-$1 ")};
  EXPECT_EQ(NameFromRules(rules, Process({"qemu", "-drive", "file=/vm/t7.img,if=virtio"})),
            "img-t7");  // trimmed like every name
}

TEST(NameFromRulesTest, CgroupRulesSeeTheCgroupPath) {
  const std::vector<NamingRule> rules = {
      Rule(NamingRule::Source::kCgroup, R"(/tenants/([^/]+)/)", "tenant-$1")};
  EXPECT_EQ(NameFromRules(rules, Process({"qemu"}, "/tenants/acme/vm3")), "tenant-acme");
  EXPECT_EQ(NameFromRules(rules, Process({"/tenants/acme/x"}, "/")), "");
}

TEST(NameFromRulesTest, InvalidRegexAndEmptyNamesDoNotMatch) {
  const std::vector<NamingRule> rules = {
      Rule(NamingRule::Source::kCmdline, "([unclosed", "bad"),
      Rule(NamingRule::Source::kCmdline, "(x)?qemu", "$1"),
      Rule(NamingRule::Source::kCmdline, "qemu", "third"),
  };
  EXPECT_EQ(NameFromRules(rules, Process({"qemu"})), "third");
}

TEST(NameFromRulesTest, RulesSurviveHugeCommandLines) {
  // std::regex recurses once or more per character here: 15,000 characters
  // overflow an 8 MiB stack, so this passes only on the rules' large stack.
  const std::vector<NamingRule> rules = {
      Rule(NamingRule::Source::kCmdline, R"(^(.|\n)*-name (\w+))", "$2"),
      Rule(NamingRule::Source::kCmdline, R"(^(\S+))", "head"),
  };
  auto process = Process({"qemu-system-x86_64", std::string(15'000, 'a'), "-name", "tail"});
  EXPECT_EQ(NameFromRules(rules, process), "tail");
  // Rules see a bounded prefix of the command line: here, not the -name.
  process.argv = {"qemu-system-x86_64", std::string(200'000, 'a'), "-name", "tail"};
  EXPECT_EQ(NameFromRules(rules, process), "head");
}

}  // namespace
}  // namespace kvmexit
