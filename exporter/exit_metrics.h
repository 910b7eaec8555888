// Writes the exporter's metric families as exposition text straight from a VM
// view: no registry, no per-series objects, nothing kept between scrapes.
#pragma once

#include <map>
#include <string>

#include "exposition_writer.h"
#include "reason_names.h"
#include "vm_tracker.h"

namespace kvmexit {

struct RateView {
  bool ready = false;  // false until two samples span some time
  std::map<ReasonKey, double> per_reason;
  double total = 0.0;
};

// The exporter's own health, exported next to the exit figures.
struct SelfView {
  bool attached = false;
  std::string hook;  // "tp_btf" or "tracepoint" once attached
  std::uint64_t vm_map_entries = 0;
  std::uint64_t vm_map_capacity = 0;
  std::uint64_t overflow_entries = 0;
  std::uint64_t overflow_capacity = 0;
  std::uint64_t overflow_exits = 0;
  std::uint64_t lost_exits = 0;
  double last_scrape_seconds = 0.0;
  std::map<std::string, std::uint64_t> errors;  // by kind; every known kind present
  std::uint64_t prog_run_count = 0;
  std::uint64_t prog_run_time_ns = 0;
  std::uint64_t prog_missed = 0;
  std::string reason_names_origin;
  std::uint64_t tracked_vms = 0;
  std::uint64_t folded_vms = 0;
};

struct FamilyOptions {
  bool per_vm = true;
  bool per_vcpu = false;
};

// The exit families, in this order: kvm_exits_total; with per_vm the per-VM,
// per-vCPU (with per_vcpu), identity, start time and boot families; the rates.
void WriteExitFamilies(const VmView& view, const RateView& rates,
                       const BootHistogram& boot_histogram, const ReasonNames& names,
                       const FamilyOptions& options, ExpositionWriter& out);

// The exporter's own health families.
void WriteSelfFamilies(const SelfView& self, ExpositionWriter& out);

}  // namespace kvmexit
