// SPDX-License-Identifier: Apache-2.0
#include "util/capabilities.h"

namespace kvmexit {

bool Has(const CapState& state, cap_value_t capability, cap_flag_t flag) {
  cap_flag_value_t value = CAP_CLEAR;
  return cap_get_flag(state.get(), capability, flag, &value) == 0 && value == CAP_SET;
}

bool HasEffectiveCapability(cap_value_t capability) {
  const CapState held(cap_get_proc());
  return held && Has(held, capability, CAP_EFFECTIVE);
}

}  // namespace kvmexit
