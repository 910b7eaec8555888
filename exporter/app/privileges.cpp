// SPDX-License-Identifier: Apache-2.0
#include "app/privileges.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

#include "util/capabilities.h"
#include "util/file_text.h"
#include "util/log.h"
#include "util/text.h"

namespace kvmexit {
namespace {

std::string ErrnoText() { return std::strerror(errno); }

std::optional<int> ReadSysctl(const char* path) {
  const FileText file = ReadFileText(path, 64);
  if (file.error != 0) return std::nullopt;
  return ParseDecimal<int>(Trim(file.text));
}

std::string CapabilityName(cap_value_t capability) {
  const CapText name(cap_to_name(capability));
  return name ? name.get() : "cap_" + std::to_string(capability);
}

std::string JoinNames(const std::vector<cap_value_t>& capabilities) {
  std::string text;
  for (const cap_value_t capability : capabilities) {
    text += (text.empty() ? "" : ",") + CapabilityName(capability);
  }
  return text.empty() ? "none" : text;
}

// Threads of this process, counted in /proc/self/task; 0 when unknown.
std::size_t ThreadCount() {
  std::error_code error;
  std::size_t threads = 0;
  for (std::filesystem::directory_iterator it("/proc/self/task", error), end; !error && it != end;
       it.increment(error)) {
    ++threads;
  }
  return error ? 0 : threads;
}

// Removes from the bounding set every capability not in `keep`. Returns the
// error, or "" with *unchanged set when CAP_SETPCAP is missing.
std::string ShrinkBoundingSet(const std::vector<cap_value_t>& keep, bool may_drop,
                              bool* unchanged) {
  // cap_max_bits: what the running kernel knows, which may be more than libcap's headers.
  for (cap_value_t capability = 0; capability < cap_max_bits(); ++capability) {
    if (std::ranges::binary_search(keep, capability) || cap_get_bound(capability) != 1) continue;
    if (!may_drop) {
      *unchanged = true;
      return "";
    }
    if (cap_drop_bound(capability) != 0) {
      return "dropping " + CapabilityName(capability) + " from the bounding set: " + ErrnoText();
    }
  }
  return "";
}

}  // namespace

PrivilegeNeeds ProbePrivilegeNeeds(KernelHook hook) {
  PrivilegeNeeds needs;
  needs.root = ::geteuid() == 0;
  // Unreadable: keep the upstream default.
  needs.perf_event_paranoid = ReadSysctl("/proc/sys/kernel/perf_event_paranoid").value_or(2);
  needs.hook = hook;
  return needs;
}

std::vector<cap_value_t> CapabilitiesToKeep(const PrivilegeNeeds& needs) {
  std::vector<cap_value_t> keep = {CAP_BPF, CAP_PERFMON};
  if (needs.hook == KernelHook::kTpBtf ||
      (needs.hook == KernelHook::kTracepoint && needs.perf_event_paranoid > 2)) {
    keep.push_back(CAP_SYS_ADMIN);
  }
  if (!needs.root) keep.push_back(CAP_DAC_READ_SEARCH);
  std::ranges::sort(keep);
  return keep;
}

std::string DropCapabilities(const std::vector<cap_value_t>& keep_unsorted) {
  std::vector<cap_value_t> keep = keep_unsorted;
  std::ranges::sort(keep);
  if (const std::size_t threads = ThreadCount(); threads != 1) {
    return "cannot drop capabilities: they belong to each thread, and this process has " +
           (threads == 0 ? std::string("an unknown number of") : std::to_string(threads)) +
           " threads (drop them before starting any)";
  }
  // Before anything else: from here on no exec can gain a privilege.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return "cannot set no_new_privs: " + ErrnoText();
  }
  const CapState held(cap_get_proc());
  if (!held) return "cannot read this process's capabilities: " + ErrnoText();

  bool bounding_unchanged = false;
  if (std::string error =
          ShrinkBoundingSet(keep, Has(held, CAP_SETPCAP, CAP_EFFECTIVE), &bounding_unchanged);
      !error.empty()) {
    return "cannot drop capabilities: " + error;
  }
  // Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK, and libbpf raises
  // the limit only when it first loads, which a late attach does after this
  // drop: raise it now, while CAP_SYS_RESOURCE allows (a pod cannot set it).
  if (Has(held, CAP_SYS_RESOURCE, CAP_EFFECTIVE)) {
    const rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
    ::setrlimit(RLIMIT_MEMLOCK, &unlimited);  // best effort: attach says why if it matters
  }
  if (cap_reset_ambient() != 0) return "cannot clear the ambient capabilities: " + ErrnoText();

  // Keep only what is both wanted and held: a capability cannot be added.
  std::vector<cap_value_t> kept;
  std::vector<cap_value_t> missing;
  for (const cap_value_t capability : keep) {
    (Has(held, capability, CAP_PERMITTED) ? kept : missing).push_back(capability);
  }
  const CapState wanted(cap_init());  // every set empty
  if (!wanted) return "cannot drop capabilities: " + ErrnoText();
  if (!kept.empty() && (cap_set_flag(wanted.get(), CAP_EFFECTIVE, static_cast<int>(kept.size()),
                                     kept.data(), CAP_SET) != 0 ||
                        cap_set_flag(wanted.get(), CAP_PERMITTED, static_cast<int>(kept.size()),
                                     kept.data(), CAP_SET) != 0)) {
    return "cannot drop capabilities: " + ErrnoText();
  }
  if (cap_set_proc(wanted.get()) != 0) return "cannot drop capabilities: " + ErrnoText();

  LogInfo(
      "dropped capabilities; kept " + JoinNames(kept) +
      (missing.empty() ? "" : " (not held, so attaching may fail: " + JoinNames(missing) + ")") +
      (bounding_unchanged ? "; bounding set unchanged (no CAP_SETPCAP)"
                          : "; bounding set reduced to the wanted ones") +
      "; no_new_privs set");
  return "";
}

}  // namespace kvmexit
