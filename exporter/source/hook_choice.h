// SPDX-License-Identifier: Apache-2.0
// Which hooks Attach tries, in which order, and why the ones before are
// passed over: kernel.hook, the vendor module and its BTF, CAP_SYS_ADMIN.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "source/kernel_checks.h"
#include "source/kernel_hook.h"

namespace kvmexit {

struct HookAttempt {
  KernelHook hook;
  std::string passed_over;  // why the hooks before this one are not used, or ""
};

struct HookChoice {
  std::string error;  // kernel.hook names a hook that cannot count here, or ""
  std::optional<VendorModule> vendor;
  std::vector<HookAttempt> attempts;  // try in this order; the first that attaches counts
};

// `wanted` is kernel.hook; `sys_root` is where /sys is (kernel/btf, module).
HookChoice ChooseHooks(KernelHook wanted, const std::string& sys_root);

}  // namespace kvmexit
