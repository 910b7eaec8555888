// SPDX-License-Identifier: Apache-2.0
// kvm_exit_exporter: Prometheus exporter for KVM VM exits.
#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <variant>

#include <CLI/CLI.hpp>

#include "app/exporter_app.h"
#include "build_info.h"
#include "config/config.h"
#include "config/web_config_file.h"
#include "source/pinned_state.h"
#include "util/log.h"

namespace {

struct Flags {
  std::string config_file;
  std::string web_config_file;
  kvmexit::ConfigOverrides overrides;
  bool check_config = false;
  bool release_state = false;
  bool version = false;
};

int Fail(const std::string& message) {
  std::cerr << "kvm_exit_exporter: error: " << message << "\n";
  return 1;
}

// Blocks every signal the main thread handles, in every thread (the threads
// ExporterApp starts inherit the mask), so that none of them ends the process
// without a log line. SIGPIPE is ignored: a client that hangs up is the HTTP
// server's business, not a reason to stop.
sigset_t BlockHandledSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  for (const int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) {
    sigaddset(&signals, signal_number);
  }
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return signals;
}

std::string SignalName(int signal_number) {
  const char* abbreviation = sigabbrev_np(signal_number);
  return abbreviation != nullptr ? std::string("SIG") + abbreviation
                                 : "signal " + std::to_string(signal_number);
}

// SIGHUP: reads --config.file again, with the same flag overrides, as at start.
void ReloadConfig(const Flags& flags, kvmexit::ExporterApp& app) {
  if (flags.config_file.empty()) {
    kvmexit::LogInfo(
        "received SIGHUP: no --config.file was given, the embedded default configuration "
        "cannot change; nothing to reload");
  } else {
    kvmexit::LogInfo("received SIGHUP, reloading the configuration from " + flags.config_file);
  }
  app.Reload(kvmexit::LoadConfig(flags.config_file, flags.overrides));
}

// Handles signals until SIGINT or SIGTERM asks to stop.
void HandleSignalsUntilStop(const sigset_t& signals, const Flags& flags,
                            kvmexit::ExporterApp& app) {
  while (true) {
    int signal_number = 0;
    if (sigwait(&signals, &signal_number) != 0) continue;
    switch (signal_number) {
      case SIGINT:
      case SIGTERM:
        kvmexit::LogInfo("received " + SignalName(signal_number) + ", shutting down");
        return;
      case SIGHUP:
        ReloadConfig(flags, app);
        break;
      default:
        kvmexit::LogWarn("received " + SignalName(signal_number) +
                         ", ignored (SIGTERM or SIGINT stops the exporter, SIGHUP reloads its "
                         "configuration)");
    }
  }
}

int Run(int argc, char** argv) {
  Flags flags;
  CLI::App cli{
      "kvm_exit_exporter: counts every KVM VM exit by reason, VM and vCPU with an eBPF "
      "program on kvm:kvm_exit and serves them as Prometheus metrics.",
      "kvm_exit_exporter"};
  cli.add_option("--config.file", flags.config_file,
                 "YAML configuration file (default: the embedded configuration)");
  cli.add_option("--web.listen-address", flags.overrides.listen_address,
                 "Address to listen on, host:port (overrides web.listen_address; default "
                 "0.0.0.0:9756)");
  cli.add_option("--web.telemetry-path", flags.overrides.telemetry_path,
                 "Path under which to expose metrics (overrides web.telemetry_path; default "
                 "/metrics)");
  cli.add_option("--web.config.file", flags.web_config_file,
                 "TLS and basic authentication, in the Prometheus exporter-toolkit format "
                 "(docs/deploy.md); default: plain HTTP without authentication");
  cli.add_flag("--config.check", flags.check_config,
               "Validate the configuration, print the effective settings and exit");
  cli.add_flag("--state.release", flags.release_state,
               "Remove the BPF state pinned in kernel.state_path and exit: the programs detach "
               "once no exporter runs. For a deliberate stop, so that kvm can be unloaded");
  cli.add_flag("--version", flags.version, "Print the version and exit");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // CLI11 prints the message (or the help text); every usage error exits 1,
    // as the README promises, not with CLI11's own codes.
    return cli.exit(error) == 0 ? 0 : 1;
  }
  if (flags.version) {
    std::cout << "kvm_exit_exporter " << kvmexit::build_info::kVersion << " (revision "
              << kvmexit::build_info::kRevision << ")\n";
    return 0;
  }

  auto loaded = kvmexit::LoadConfig(flags.config_file, flags.overrides);
  if (auto* error = std::get_if<kvmexit::ConfigError>(&loaded)) return Fail(error->message);
  kvmexit::Config config = std::get<kvmexit::Config>(std::move(loaded));
  kvmexit::WebConfig web;
  if (!flags.web_config_file.empty()) {
    auto web_loaded = kvmexit::LoadWebConfigFile(flags.web_config_file);
    if (auto* error = std::get_if<kvmexit::WebConfigError>(&web_loaded)) {
      return Fail(error->message);
    }
    web = std::get<kvmexit::WebConfig>(std::move(web_loaded));
  }
  if (flags.release_state) {
    if (config.kernel.state_path.empty()) {
      std::cout << "kernel.state_path is \"\": nothing is pinned\n";
      return 0;
    }
    if (std::string error = kvmexit::PinnedState::Release(config.kernel.state_path);
        !error.empty()) {
      return Fail("releasing the BPF state: " + error);
    }
    std::cout << "released the BPF state in " << config.kernel.state_path << "\n";
    return 0;
  }
  if (flags.check_config) {
    std::cout << "configuration OK: listen "
              << kvmexit::FormatListenAddress(config.web.listen_address) << ", metrics at "
              << config.web.telemetry_path << (web.tls ? " over TLS" : "")
              << (web.basic_auth_users.empty() ? "" : " with basic auth") << "\n";
    return 0;
  }

  // glibc gives each HTTP worker thread its own malloc arena, which roughly
  // doubled resident memory at 1,000 VMs (docs/benchmarks.md); two are enough.
  mallopt(M_ARENA_MAX, 2);
  const sigset_t handled_signals = BlockHandledSignals();
  kvmexit::ExporterApp app(std::move(config));
  if (std::string error = app.Start(std::move(web)); !error.empty()) return Fail(error);

  HandleSignalsUntilStop(handled_signals, flags, app);
  app.Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& error) {
    // Nothing below is expected to throw; if it does, say what instead of aborting.
    return Fail(std::string("unexpected failure: ") + error.what());
  }
}
