// SPDX-License-Identifier: Apache-2.0
// libcap states as RAII owners, and the one question every stage may ask:
// does this thread hold a capability? (The BPF source asks it to pick a hook;
// app/privileges.h decides what to keep and drops the rest.)
#pragma once

#include <sys/capability.h>

#include <memory>
#include <type_traits>

namespace kvmexit {

// libcap hands out cap_t states and names it allocated; cap_free releases both.
struct CapFree {
  void operator()(void* object) const { cap_free(object); }
};
using CapState = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;
using CapText = std::unique_ptr<char, CapFree>;

// Whether `state` has `capability` in its `flag` set (effective, permitted...).
bool Has(const CapState& state, cap_value_t capability, cap_flag_t flag);

// Whether the calling thread holds `capability` in its effective set.
bool HasEffectiveCapability(cap_value_t capability);

}  // namespace kvmexit
