// The site's own naming rules (config vms.naming_rules): the first rule whose
// regex matches the process's command line or cgroup path names the VM, with
// $1..$9 from the match. IdentifyVm asks them first, so a site can override
// every built-in source. The regex engine (std::regex today) is not part of
// the interface: callers see only NameFromRules.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "process_info.h"

namespace kvmexit {

// The VM name the first matching rule gives `process`, as a label value; ""
// when no rule matches. A rule whose name comes out empty does not count as a
// match, and one with an invalid regex never matches (configuration loading
// reports it). May throw std::bad_alloc only; IdentifyVm catches it.
std::string NameFromRules(const std::vector<NamingRule>& rules, const ProcessInfo& process);

}  // namespace kvmexit
