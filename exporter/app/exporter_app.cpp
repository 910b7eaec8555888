// SPDX-License-Identifier: Apache-2.0
#include "app/exporter_app.h"

#include <algorithm>
#include <ctime>
#include <string_view>
#include <utility>

#include "app/privileges.h"
#include "config/config_reload.h"
#include "config/duration.h"
#include "identity/vm_identity.h"
#include "render/exit_metrics.h"
#include "render/vcpu_time_metrics.h"
#include "util/log.h"

namespace kvmexit {
namespace {

constexpr const char* kProcRoot = "/proc";
constexpr const char* kProxmoxRoot = "/etc/pve";

// Unix time of boot, to the microsecond. /proc/stat's btime is whole seconds,
// which made start times up to 1 s early and let a VM started just after the
// attach look older than it, losing its boot window.
double BootTimeSeconds() {
  timespec realtime{};
  timespec since_boot{};
  ::clock_gettime(CLOCK_REALTIME, &realtime);
  ::clock_gettime(CLOCK_BOOTTIME, &since_boot);
  auto seconds = [](const timespec& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
  };
  return seconds(realtime) - seconds(since_boot);
}

ProcessResolver MakeResolver(std::vector<NamingRule> rules) {
  return [rules = std::move(rules)](std::uint32_t pid) -> std::optional<VmProcess> {
    std::optional<ProcessInfo> info = ReadProcessInfo(kProcRoot, pid);
    if (!info) return std::nullopt;
    return VmProcess{
        .identity = IdentifyVm(*info, rules, kProxmoxRoot),
        .start_ticks = info->start_ticks,
        .start_time_seconds = BootTimeSeconds() + static_cast<double>(info->start_ticks) /
                                                      static_cast<double>(ClockTicksPerSecond()),
    };
  };
}

// "2026-12-06T19:50:29Z" for a log line.
std::string FormatUnixTime(std::uint64_t unix_ns) {
  const auto seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  std::tm utc{};
  char text[32] = "";
  if (gmtime_r(&seconds, &utc) == nullptr ||
      std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc) == 0) {
    return std::to_string(seconds);
  }
  return text;
}

std::vector<DrilldownKind> KindsThatFollowStorms(const Config::Collector& collector) {
  std::vector<DrilldownKind> kinds;
  for (const auto& entry : collector.FollowedKinds()) kinds.push_back(entry.kind);
  return kinds;
}

std::string OriginName(ReasonNames::Origin origin) {
  return origin == ReasonNames::Origin::kKernelTracepoint ? "kernel" : "uapi";
}

}  // namespace

ExporterApp::ExporterApp(Config config)
    : config_(std::move(config)),
      source_(BpfSourceOptions{.tracefs_root = config_.kernel.tracefs_path,
                               .vm_map_capacity = config_.collector.vm_map_capacity,
                               .per_vcpu = config_.collector.per_vcpu,
                               .exit_handling_time = config_.collector.exit_handling_time,
                               .hook = config_.kernel.hook,
                               .drilldown = config_.collector.drilldown,
                               .drilldown_follow = KindsThatFollowStorms(config_.collector),
                               .state_path = config_.kernel.state_path}),
      names_(ReasonNames::FromUapiHeaders()),
      tracker_(VmTrackerOptions{.max_vms = config_.vms.max_vms,
                                .grace_period = config_.vms.grace_period,
                                .boot_window = config_.vms.boot_window,
                                .drilldown_max_keys = config_.collector.drilldown_max_keys,
                                .on_boot_window_closed =
                                    [this](std::uint64_t exits) {
                                      self_.BootWindowClosed(exits);
                                      source_.KeepBootWindow(BootExitsBucket(exits), exits);
                                    }},
               MakeResolver(config_.vms.naming_rules),
               [](std::uint32_t pid) { return ReadStartTicks(kProcRoot, pid); }),
      rates_(config_.rates.window) {
  self_.ReasonNamesFrom(OriginName(names_.origin()));
  std::vector<std::pair<std::string, std::string>> drilldown_modes;
  for (const DrilldownKind kind : config_.collector.DrilldownLoaded()) {
    drilldown_modes.emplace_back(DrilldownKindName(kind),
                                 config_.collector.DrilldownOn(kind) ? "always" : "auto");
  }
  self_.DrilldownKinds(drilldown_modes);
  // As Prometheus does: the timestamp says when the running configuration was
  // loaded, from the start on.
  self_.ConfigLoaded(true);
}

ExporterApp::~ExporterApp() { Stop(); }

std::string ExporterApp::Start(WebConfig web) {
  // Bind first: a daemon that cannot serve must exit before it loads a BPF
  // program into the kernel, not after. Binding before the drop below also
  // means a port under 1024 needs no capability for the rest of the run.
  std::string error;
  UniqueFd listening_socket = Listen(config_.web.listen_address, &error);
  if (!listening_socket.valid()) return error;
  {
    std::lock_guard lock(mutex_);
    TryAttach();
  }
  // Capabilities belong to threads: drop them before the server's and the
  // sampler's threads start, so that none of them ever holds more.
  if (error = DropCapabilities(CapabilitiesToKeep(ProbePrivilegeNeeds(config_.kernel.hook)));
      !error.empty()) {
    return error;
  }
  http_ = HttpServer::Start(
      std::move(listening_socket),
      HttpServerOptions{.listen_address = config_.web.listen_address,
                        .telemetry_path = config_.web.telemetry_path,
                        .web = std::move(web),
                        .text_buffers = text_buffers_},
      [this] { return Scrape(); }, &error);
  if (!http_) return error;
  sampler_ = std::thread([this] { SampleLoop(); });
  LogInfo("listening on " + FormatListenAddress(config_.web.listen_address) + ", metrics at " +
          config_.web.telemetry_path);
  return "";
}

void ExporterApp::Stop() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_signal_.notify_all();
  if (sampler_.joinable()) sampler_.join();
  http_.reset();  // waits for in-flight requests
}

// Called with mutex_ held.
void ExporterApp::TryAttach() {
  if (source_.attached()) return;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attach_attempt_) return;
  next_attach_attempt_ = now + config_.kernel.attach_retry_interval;
  std::string error = source_.Attach();
  if (!error.empty()) {
    self_.AttachFailed();
    if (error != last_attach_error_) {
      LogWarn("BPF program not attached: " + error + " (retrying every " +
              std::to_string(config_.kernel.attach_retry_interval.count()) + "ms)");
    }
    last_attach_error_ = std::move(error);
    return;
  }
  // Counting began when the programs attached: earlier than now when this
  // process adopted pinned ones that counted through its restart.
  attach_time_ = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(source_.counting_since_ns())));
  last_attach_error_.clear();
  self_.Attached(source_.hook());
  self_.BpfStateStarted(StateStartName(source_.state_start()),
                        static_cast<double>(source_.counting_since_ns()) / 1e9);
  if (source_.state_start() == StateStart::kAdopted) {
    // The boot windows closed before this process: the histogram goes on.
    const BpfExitSource::BootExitsKept kept = source_.KeptBootExits();
    self_.BootWindowsBefore(std::vector<double>(kept.buckets.begin(), kept.buckets.end()),
                            static_cast<double>(kept.sum));
  }
  // The kernel's own reason names are readable now that kvm is loaded.
  std::string note;
  names_ = ReasonNames::Load(config_.kernel.tracefs_path, &note);
  self_.ReasonNamesFrom(OriginName(names_.origin()));
  LogInfo("BPF program attached to kvm:kvm_exit (" + std::string(source_.hook()) +
          (source_.hook_note().empty() ? "" : ": " + source_.hook_note()) +
          "); exit reason names from " + OriginName(names_.origin()) +
          (note.empty() ? "" : " (" + note + ")") +
          (source_.core_btf_note().empty() ? "" : "; " + source_.core_btf_note()));
  if (!source_.absent_drilldown().empty()) {
    std::string kinds;
    for (const DrilldownKind kind : source_.absent_drilldown()) {
      kinds += std::string(kinds.empty() ? "" : ", ") + std::string(DrilldownKindName(kind)) +
               " (kvm:" + std::string(DrilldownKindRow(kind).tracepoint) + ")";
    }
    LogWarn("drill-down kinds without their tracepoint on this kernel, not counted: " + kinds);
  }
  StartFollowingStorms();
  switch (source_.state_start()) {
    case StateStart::kAdopted:
      LogInfo("BPF state: adopted the programs and counts kept in " + source_.state_where() +
              "; counting without a reset since " + FormatUnixTime(source_.counting_since_ns()));
      break;
    case StateStart::kFresh:
      LogInfo("BPF state: started fresh, kept in " + source_.state_where() + " (" +
              source_.state_note() + ")");
      break;
    case StateStart::kUnpinned:
      break;
  }
}

void ExporterApp::StartFollowingStorms() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<DrilldownTrigger> triggers;
  for (const Config::Collector::DrilldownAuto::Kind& entry : config_.collector.FollowedKinds()) {
    if (std::ranges::find(source_.absent_drilldown(), entry.kind) !=
        source_.absent_drilldown().end()) {
      continue;  // nothing to attach on this kernel
    }
    DrilldownTrigger trigger{.kind = entry.kind, .reasons = {}};
    // Every isa's codes of the name: only this host's isa counts exits.
    for (const std::string& reason : entry.reasons) {
      for (const std::uint32_t isa : kKnownIsas) {
        if (const std::optional<std::uint32_t> code = names_.Code(isa, reason)) {
          trigger.reasons.push_back({isa, *code});
        }
      }
    }
    triggers.push_back(std::move(trigger));
  }
  follower_ =
      DrilldownFollower(triggers, static_cast<double>(config_.collector.drilldown_auto.threshold),
                        config_.collector.drilldown_auto.hold);
  for (const DrilldownKind kind : config_.collector.DrilldownLoaded()) {
    const bool attached = source_.DrilldownAttached(kind);
    if (follower_.follows(kind)) follower_.Confirm(kind, attached, now);
    self_.DrilldownAttached(DrilldownKindName(kind), attached, false);
  }
}

void ExporterApp::FollowStorms(const ExitSnapshot& snapshot) {
  const auto now = std::chrono::steady_clock::now();
  for (const DrilldownFollower::Switch& change : follower_.Sample(snapshot.vm_counts, now)) {
    const std::string error = source_.SetDrilldownAttached(change.kind, change.attach);
    const bool attached = source_.DrilldownAttached(change.kind);
    follower_.Confirm(change.kind, attached, now);
    const std::string_view kind = DrilldownKindName(change.kind);
    std::string message = "drill-down ";
    message += kind;
    if (!error.empty()) {
      self_.DrilldownSwitchFailed();
      // Tried again at every sample while the storm lasts: logged once.
      if (std::exchange(last_follow_error_[change.kind], error) != error) {
        LogWarn(message.append(" (collector.drilldown_auto): ").append(error));
      }
      continue;
    }
    last_follow_error_.erase(change.kind);
    self_.DrilldownAttached(kind, attached, true);
    const auto& follow = config_.collector.drilldown_auto;
    if (change.attach) {
      message.append(" attached: a VM made ")
          .append(std::to_string(static_cast<std::uint64_t>(change.rate)))
          .append(" exits/s of its reasons (collector.drilldown_auto.threshold ");
    } else {
      message.append(" detached: every VM at or below ");
    }
    message.append(std::to_string(follow.threshold));
    message.append(change.attach ? ")"
                                 : " exits/s of its reasons for " + FormatDuration(follow.hold));
    LogInfo(message);
  }
}

void ExporterApp::SampleLoop() {
  std::unique_lock stop_lock(stop_mutex_);
  while (!stopping_) {
    stop_lock.unlock();
    const std::chrono::milliseconds interval = SampleOnce();
    stop_lock.lock();
    stop_signal_.wait_for(stop_lock, interval, [this] { return stopping_; });
  }
}

std::optional<ExitSnapshot> ExporterApp::ReadSnapshot() {
  ExitSnapshot snapshot;
  if (!source_.attached()) return snapshot;
  if (std::string error = source_.Read(&snapshot); !error.empty()) {
    self_.MapReadFailed();
    LogWarn("reading BPF maps: " + error);
    return std::nullopt;
  }
  return snapshot;
}

std::chrono::milliseconds ExporterApp::SampleOnce() {
  std::chrono::milliseconds interval;
  std::optional<std::vector<VcpuTimeProcess>> vcpu_processes;  // set when a vCPU sample is due
  {
    std::lock_guard lock(mutex_);
    interval = SampleExits();
    const auto now = std::chrono::steady_clock::now();
    // Only per-VM series carry vCPU time: with per_vm off there is nothing to read for.
    if (!config_.collector.vcpu_time || !config_.collector.per_vm) {
      vcpu_time_.Clear();
      next_vcpu_time_sample_ = {};
    } else if (now >= next_vcpu_time_sample_) {
      // On a steady cadence, not `now + interval`: the sampler wakes every
      // rates.sample_interval, and samples drifting by up to one of those
      // each time would make counters advance unevenly between scrapes.
      const auto every = config_.collector.vcpu_time_interval;
      next_vcpu_time_sample_ =
          now - next_vcpu_time_sample_ < every ? next_vcpu_time_sample_ + every : now + every;
      vcpu_processes = tracker_.OwnSeriesProcesses();
    }
  }
  // collector.vcpu_time, every vcpu_time_interval: without mutex_, because
  // the /proc reads take milliseconds at 1,000 VMs and a scrape must not wait
  // for them (the sampler has its own lock, held only to merge the readings).
  if (vcpu_processes) {
    const auto start = std::chrono::steady_clock::now();
    vcpu_time_.Sample(*vcpu_processes);
    self_.VcpuTimeSampleTook(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return interval;
}

std::chrono::milliseconds ExporterApp::SampleExits() {
  TryAttach();
  const std::optional<ExitSnapshot> snapshot = ReadSnapshot();
  if (!snapshot) return config_.rates.sample_interval;
  const auto wall_now = std::chrono::system_clock::now();
  if (std::string error = source_.ReplenishFreeCounters(snapshot->vm_counts.size());
      !error.empty()) {
    self_.CounterReuseFailed();
    LogWarn("BPF counters: " + error);
  }
  FollowStorms(*snapshot);
  const SnapshotByVm by_vm(*snapshot);
  tracker_.Observe(by_vm, wall_now, attach_time_);
  // Totals before retiring: the removed counts move from the per-VM counters
  // into the retired counts, which the next snapshot reads.
  rates_.AddSample(std::chrono::steady_clock::now(), tracker_.HostTotals(by_vm));
  std::vector<std::uint32_t> expired_drilldown;
  const std::vector<vm_exit_key> expired =
      tracker_.ExpiredKeys(*snapshot, wall_now, &expired_drilldown);
  if (!expired_drilldown.empty()) source_.RemoveDrilldown(expired_drilldown);
  if (!expired.empty()) {
    const std::uint32_t withheld = source_.counters_withheld();
    const std::vector<VmExitCount> removed = source_.Remove(expired);
    if (removed.size() != expired.size()) self_.MapDeleteFailed();
    if (source_.counters_withheld() != withheld) {
      self_.CounterReuseFailed();
      LogWarn("BPF counters: the kernel refused to wait for running programs; " +
              std::to_string(source_.counters_withheld()) +
              " counters of ended VMs are kept out of use until restart");
    }
  }
  return config_.rates.sample_interval;
}

bool ExporterApp::Reload(const std::variant<Config, ConfigError>& loaded) {
  std::lock_guard lock(mutex_);
  if (const auto* error = std::get_if<ConfigError>(&loaded)) return RefuseReload(error->message);
  const auto& reloaded = std::get<Config>(loaded);
  const ConfigChanges changes = DiffConfig(config_, reloaded);
  if (std::string why = RestartRequiredMessage(changes); !why.empty()) return RefuseReload(why);

  tracker_.SetLimits(reloaded.vms.max_vms, reloaded.vms.grace_period, reloaded.vms.boot_window);
  if (reloaded.vms.naming_rules != config_.vms.naming_rules) {
    tracker_.Reidentify(MakeResolver(reloaded.vms.naming_rules));
  }
  // A new window starts empty: exit rates are absent until the next two samples.
  if (reloaded.rates.window != config_.rates.window) rates_ = RateTracker(reloaded.rates.window);
  config_ = reloaded;
  self_.ConfigLoaded(true);
  LogInfo("configuration reloaded; changed: " + JoinKeys(changes.live));
  return true;
}

bool ExporterApp::RefuseReload(const std::string& why) {
  self_.ConfigLoaded(false);
  LogError("configuration reload failed, the running configuration is kept: " + why);
  return false;
}

std::string ExporterApp::FillMapsForTesting(const std::vector<VmExitCount>& counts,
                                            const std::vector<DrilldownCount>& drilldown) {
  std::lock_guard lock(mutex_);
  return source_.FillForTesting(counts, drilldown);
}

std::string ExporterApp::Scrape() {
  const auto started = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  // Reserve at the last scrape's size plus headroom, so megabytes of text are
  // written without the string growing (and copying itself) a dozen times.
  ExpositionWriter out(text_buffers_->Take(), last_exposition_bytes_ + last_exposition_bytes_ / 16);
  if (std::optional<ExitSnapshot> snapshot = ReadSnapshot()) {
    self_.Observe(*snapshot);
    // Grouped once, for both the tracker's bookkeeping and the series.
    SnapshotByVm by_vm(*snapshot);
    // Its megabytes (160,000 drill-down counts at 1,000 VMs) are not needed
    // while the text is written.
    snapshot.reset();
    tracker_.Observe(by_vm, std::chrono::system_clock::now(), attach_time_);
    const VmView view = tracker_.View(std::move(by_vm));
    self_.ObserveVms(view.tracked_vms, view.folded_vms);
    const RateView rate_view{
        .ready = rates_.Ready(), .per_reason = rates_.Rates(), .total = rates_.TotalRate()};
    WriteExitFamilies(view, rate_view, names_,
                      FamilyOptions{.per_vm = config_.collector.per_vm,
                                    .per_vcpu = config_.collector.per_vcpu,
                                    .exit_handling_time = config_.collector.exit_handling_time,
                                    .exit_buckets = SelectExitBuckets(
                                        config_.collector.exit_handling_buckets.min,
                                        config_.collector.exit_handling_buckets.max),
                                    .drilldown = config_.collector.DrilldownLoaded(),
                                    .drilldown_max_keys = config_.collector.drilldown_max_keys},
                      out);
    if (config_.collector.vcpu_time && config_.collector.per_vm) {
      WriteVcpuTimeFamilies(view, vcpu_time_.View(), config_.collector.per_vcpu, out);
    }
  }
  self_.Observe(source_.ProgramStats());
  self_.ScrapeTook(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  std::string text = out.Take();
  self_.AppendTo(text);
  last_exposition_bytes_ = text.size();
  return text;
}

}  // namespace kvmexit
