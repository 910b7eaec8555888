// SPDX-License-Identifier: Apache-2.0
// Writes the vCPU time families (collector.vcpu_time) from the sampler's
// accounts, for the VMs a scrape's view gives their own series.
#pragma once

#include <cstdint>
#include <map>

#include "model/vcpu_time.h"
#include "model/vm_tracker.h"
#include "render/exposition_writer.h"

namespace kvmexit {

// kvm_vm_vcpu_seconds_total{vm,pid,mode}, and with `per_vcpu`
// kvm_vcpu_thread_seconds_total{vm,pid,tid,mode}. Only VMs with their own
// series and a vCPU thread in their account (a sample has seen one) are written; the
// folded vm="other" has none: its VMs are not sampled.
void WriteVcpuTimeFamilies(const VmView& view, const std::map<std::uint32_t, VcpuTimeVm>& accounts,
                           bool per_vcpu, ExpositionWriter& out);

}  // namespace kvmexit
