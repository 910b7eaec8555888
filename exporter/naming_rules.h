// The site's own naming rules (config vms.naming_rules): the first rule whose
// regex matches the process's command line or cgroup path names the VM, with
// $1..$9 taken from the match. Rules come first in IdentifyVm: they let a site
// override every built-in source.
//
// The matching engine (std::regex today) stays behind NameFromRules.
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
