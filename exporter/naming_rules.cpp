#include "naming_rules.h"

#include <pthread.h>

#include <functional>
#include <regex>
#include <string_view>

#include "label_value.h"

namespace kvmexit {
namespace {

// libstdc++'s std::regex matches by recursion, 400-700 bytes of stack per
// input character for `.*` or `(.|\n)*`: a long command line would overflow a
// normal thread stack and crash the daemon. Rules therefore run on a thread
// with a large (lazily committed) stack, over a bounded text. The bound also
// caps the time of an unanchored leading `.*` that does not match, which is
// quadratic in the text length (seconds at this size, minutes unbounded).
constexpr std::size_t kMaxRuleTextBytes = std::size_t{16} * 1024;
constexpr std::size_t kRuleThreadStackBytes = std::size_t{256} * 1024 * 1024;
// Used only if that thread cannot be created: small enough for any stack.
constexpr std::size_t kMaxInlineRuleTextBytes = std::size_t{2} * 1024;

// Runs `work` on a thread with a kRuleThreadStackBytes stack. False when no
// such thread could be created (the work did not run).
bool RunOnLargeStack(const std::function<void()>& work) {
  pthread_attr_t attributes;
  if (pthread_attr_init(&attributes) != 0) return false;
  const bool sized = pthread_attr_setstacksize(&attributes, kRuleThreadStackBytes) == 0;
  pthread_t thread;
  auto trampoline = [](void* argument) -> void* {
    try {
      (*static_cast<const std::function<void()>*>(argument))();
    } catch (...) {
      // An exception must not cross the thread boundary: the work's result stays unset.
    }
    return nullptr;
  };
  const bool started = sized && pthread_create(&thread, &attributes, trampoline,
                                               const_cast<std::function<void()>*>(&work)) == 0;
  pthread_attr_destroy(&attributes);
  if (started) pthread_join(thread, nullptr);
  return started;
}

std::string JoinArgs(const std::vector<std::string>& argv) {
  std::string joined;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (i > 0) joined += ' ';
    joined += argv[i];
  }
  return joined;
}

// The first rule that matches names the VM; a rule whose name comes out empty
// (say "$2" of a group that did not take part) does not count as a match. A
// rule with an invalid regex never matches (configuration loading reports it).
std::string NameFromRulesOn(const std::vector<NamingRule>& rules, std::string_view cmdline,
                            std::string_view cgroup) noexcept {
  for (const auto& rule : rules) {
    try {
      const std::regex regex(rule.regex, std::regex::ECMAScript);
      const auto text = rule.source == NamingRule::Source::kCgroup ? cgroup : cmdline;
      std::match_results<std::string_view::const_iterator> match;
      if (!std::regex_search(text.begin(), text.end(), match, regex)) continue;
      if (auto name = TrimmedLabelValue(match.format(rule.name)); !name.empty()) return name;
    } catch (...) {
      // std::regex_error, or an allocation failure: skip the rule.
    }
  }
  return {};
}

}  // namespace

std::string NameFromRules(const std::vector<NamingRule>& rules, const ProcessInfo& process) {
  if (rules.empty()) return {};
  const auto cmdline = JoinArgs(process.argv);
  const auto bounded = [&](std::string_view text, std::size_t limit) {
    return text.substr(0, limit);
  };
  std::string name;
  const std::function<void()> work = [&] {
    name = NameFromRulesOn(rules, bounded(cmdline, kMaxRuleTextBytes),
                           bounded(process.cgroup, kMaxRuleTextBytes));
  };
  if (!RunOnLargeStack(work)) {
    name = NameFromRulesOn(rules, bounded(cmdline, kMaxInlineRuleTextBytes),
                           bounded(process.cgroup, kMaxInlineRuleTextBytes));
  }
  return name;
}

}  // namespace kvmexit
