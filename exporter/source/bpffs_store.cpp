// SPDX-License-Identifier: Apache-2.0
// The bpffs directory of kernel.state_path as a StateStore: one pin per name.
#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "source/errno_text.h"
#include "source/state_store.h"

namespace kvmexit {
namespace {

// Opens `path` and takes its lock; "" or why not.
std::string OpenLocked(const std::string& path, UniqueFd* fd) {
  UniqueFd opened(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!opened.valid()) return "opening " + path + " failed: " + ErrnoText(errno);
  if (::flock(opened.get(), LOCK_EX | LOCK_NB) != 0) {
    return errno == EWOULDBLOCK ? "another kvm_exit_exporter uses the BPF state at " + path +
                                      " (kernel.state_path): give each its own, or stop it"
                                : "locking " + path + " failed: " + ErrnoText(errno);
  }
  *fd = std::move(opened);
  return "";
}

std::vector<std::string> Entries(int directory_fd) {
  std::vector<std::string> names;
  UniqueFd copy(::dup(directory_fd));
  if (!copy.valid()) return names;
  DIR* dir = ::fdopendir(copy.get());
  if (dir == nullptr) return names;
  copy.release();  // closedir closes it
  ::rewinddir(dir);
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  return names;
}

class BpffsStore final : public StateStore {
 public:
  BpffsStore(std::string path, UniqueFd directory)
      : path_(std::move(path)), directory_(std::move(directory)) {}

  const std::string& where() const override { return path_; }
  std::vector<std::string> Names() const override { return Entries(directory_.get()); }
  UniqueFd Get(const std::string& name) const override {
    return UniqueFd(bpf_obj_get(PathOf(name).c_str()));
  }
  std::string Put(const std::string& name, int fd) override {
    ::unlinkat(directory_.get(), name.c_str(), 0);  // a stale pin of that name
    if (int err = bpf_obj_pin(fd, PathOf(name).c_str()); err != 0) {
      return "pinning " + PathOf(name) + " failed: " + ErrnoText(err);
    }
    return "";
  }
  bool shared() const override { return true; }
  bool Remove(const std::string& name) override {
    return ::unlinkat(directory_.get(), name.c_str(), 0) == 0 || errno == ENOENT;
  }

 private:
  std::string PathOf(const std::string& name) const { return path_ + "/" + name; }

  std::string path_;
  UniqueFd directory_;  // holds the lock
};

}  // namespace

std::unique_ptr<StateStore> OpenBpffsStore(const std::string& path, std::string* error) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    *error = "creating the BPF state directory " + path + " failed: " + ErrnoText(errno) +
             " (kernel.state_path: a directory on bpffs, e.g. under /sys/fs/bpf)";
    return nullptr;
  }
  struct statfs fs {};
  if (::statfs(path.c_str(), &fs) != 0) {
    *error = "checking " + path + " failed: " + ErrnoText(errno);
    return nullptr;
  }
  if (fs.f_type != BPF_FS_MAGIC) {
    *error = path + " is not on bpffs (kernel.state_path): mount it with `mount -t bpf bpf " +
             "/sys/fs/bpf`, or set kernel.state_path: \"\"";
    return nullptr;
  }
  UniqueFd directory;
  if (std::string locked = OpenLocked(path, &directory); !locked.empty()) {
    *error = std::move(locked);
    return nullptr;
  }
  return std::make_unique<BpffsStore>(path, std::move(directory));
}

std::string ReleaseBpffsStore(const std::string& path,
                              const std::function<bool(const std::string&)>& ours,
                              std::vector<std::string>* left) {
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0 && errno == ENOENT) return "";  // nothing pinned
  UniqueFd directory;
  if (std::string error = OpenLocked(path, &directory); !error.empty()) return error;
  for (const std::string& name : Entries(directory.get())) {
    if (!ours(name) || ::unlinkat(directory.get(), name.c_str(), 0) != 0) left->push_back(name);
  }
  if (left->empty() && ::rmdir(path.c_str()) != 0 && errno != ENOENT) {
    return "removing " + path + " failed: " + ErrnoText(errno);
  }
  return "";
}

}  // namespace kvmexit
