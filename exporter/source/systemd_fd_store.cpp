// SPDX-License-Identifier: Apache-2.0
// Systemd's file descriptor store as a StateStore. systemd keeps a duplicate
// of each descriptor sent with FDSTORE=1 while the service runs, restarts
// (systemctl restart, Restart= after a crash, a package upgrade's restart)
// and passes them back at the next start; it closes them when the service is
// stopped or has failed for good. That is exactly "a restart keeps counting,
// a deliberate stop detaches", decided by the one who knows which it is.
#include <fcntl.h>
#include <systemd/sd-daemon.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <utility>

#include "source/errno_text.h"
#include "source/state_store.h"

namespace kvmexit {
namespace {

// Frees sd_listen_fds_with_names's NULL-terminated list: libsystemd
// allocates it with malloc, so free() is the only way back.
struct NamesDeleter {
  void operator()(char** names) const {
    for (char** name = names; *name != nullptr; ++name) {
      std::free(*name);  // NOLINT(cppcoreguidelines-no-malloc,cppcoreguidelines-owning-memory)
    }
    std::free(names);  // NOLINT(cppcoreguidelines-no-malloc,cppcoreguidelines-owning-memory)
  }
};

class SystemdFdStore final : public StateStore {
 public:
  explicit SystemdFdStore(std::map<std::string, UniqueFd> passed) : fds_(std::move(passed)) {}

  const std::string& where() const override { return where_; }
  std::vector<std::string> Names() const override {
    std::vector<std::string> names;
    for (const auto& [name, fd] : fds_) names.push_back(name);
    return names;
  }
  UniqueFd Get(const std::string& name) const override {
    const auto it = fds_.find(name);
    if (it == fds_.end()) return {};
    return UniqueFd(::fcntl(it->second.get(), F_DUPFD_CLOEXEC, 0));
  }
  std::string Put(const std::string& name, int fd) override {
    // FDPOLL=0: systemd drops a stored fd that polls EPOLLERR, and a BPF
    // map's fd always does (only ring buffers poll): measured, 2 of 25 kept.
    const std::string message = "FDSTORE=1\nFDPOLL=0\nFDNAME=" + name;
    const int sent = sd_pid_notify_with_fds(0, 0, message.c_str(), &fd, 1);
    if (sent <= 0) {
      return "handing " + name + " to systemd's file descriptor store failed: " +
             (sent == 0 ? std::string("NOTIFY_SOCKET is not set") : ErrnoText(sent));
    }
    fds_[name] = UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    return "";
  }
  bool shared() const override { return false; }  // this service's alone
  bool Remove(const std::string& name) override {
    fds_.erase(name);
    const std::string message = "FDSTOREREMOVE=1\nFDNAME=" + name;
    return sd_notify(0, message.c_str()) > 0;
  }

 private:
  std::string where_ = "systemd's file descriptor store";
  std::map<std::string, UniqueFd> fds_;  // what systemd holds, by name: our duplicates
};

}  // namespace

std::unique_ptr<StateStore> OpenSystemdFdStore() {
  // systemd sets NOTIFY_SOCKET only for a unit that accepts notifications
  // (NotifyAccess=); without it there is no store to keep anything in.
  if (std::getenv("NOTIFY_SOCKET") == nullptr) return nullptr;
  std::map<std::string, UniqueFd> passed;
  // The descriptors systemd passed are this process's to take once: the
  // environment is cleared, so a later call (an attach retry) finds none.
  static std::atomic<bool> taken{false};
  if (!taken.exchange(true)) {
    char** raw_names = nullptr;
    const int count = sd_listen_fds_with_names(1, &raw_names);
    const std::unique_ptr<char*, NamesDeleter> names(raw_names);
    for (int i = 0; i < count; ++i) {
      const int fd = SD_LISTEN_FDS_START + i;
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      passed.emplace(names && names.get()[i] != nullptr ? names.get()[i] : "", UniqueFd(fd));
    }
  }
  return std::make_unique<SystemdFdStore>(std::move(passed));
}

}  // namespace kvmexit
