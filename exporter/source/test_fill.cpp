// SPDX-License-Identifier: Apache-2.0
#include "source/test_fill.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cstdint>
#include <map>
#include <utility>

#include "kvm_exit.skel.h"
#include "source/errno_text.h"

namespace kvmexit {

std::string FillMapsForTesting(const kvm_exit_bpf& skeleton, CounterPool& counters,
                               const std::vector<VmExitCount>& counts,
                               const std::vector<DrilldownCount>& drilldown) {
  const int directory_fd = bpf_map__fd(skeleton.maps.counter_index);
  const int free_fd = bpf_map__fd(skeleton.maps.free_counters);
  for (const VmExitCount& entry : counts) {
    // A counter taken from the free list as the program takes one.
    std::uint32_t index = 0;
    if (bpf_map_lookup_elem(directory_fd, &entry.key, &index) != 0) {
      if (bpf_map_lookup_and_delete_elem(free_fd, nullptr, &index) != 0 &&
          (!counters.FreeMore(skeleton).empty() ||
           bpf_map_lookup_and_delete_elem(free_fd, nullptr, &index) != 0)) {
        return "filling the counters failed: no free counter";
      }
      if (int err = bpf_map_update_elem(directory_fd, &entry.key, &index, BPF_NOEXIST); err != 0) {
        return "filling the counters failed: " + ErrnoText(err);
      }
    }
    counters.exits().Set(index, entry.count);
  }
  // Each VM's slots filled as the program fills them, then written once.
  std::map<std::pair<std::uint32_t, std::uint32_t>, drilldown_items> entries;
  for (const DrilldownCount& count : drilldown) {
    const DrilldownItem what = count.what();
    drilldown_items& items = entries[{count.tgid(), what.kind}];
    const bool own_slot =
        !count.in_other() && what.item + 1 != 0 &&
        kvm_drilldown_add(items.items, KVM_DRILLDOWN_ITEM_SLOTS, what.item + 1, count.count()) == 0;
    if (!own_slot &&
        kvm_drilldown_add(items.other, KVM_DRILLDOWN_OTHER_SLOTS,
                          kvm_drilldown_other_item(what.kind, what.item) + 1, count.count()) != 0) {
      return "filling drilldown failed: more than " + std::to_string(KVM_DRILLDOWN_OTHER_SLOTS) +
             " \"other\" items";
    }
  }
  const int drilldown_fd = bpf_map__fd(skeleton.maps.drilldown);
  for (const auto& [vm_kind, items] : entries) {
    const drilldown_key key{vm_kind.first, vm_kind.second};
    if (int err = bpf_map_update_elem(drilldown_fd, &key, &items, BPF_ANY); err != 0) {
      return "filling drilldown failed: " + ErrnoText(err);
    }
  }
  return "";
}

}  // namespace kvmexit
