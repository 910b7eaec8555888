#include "file_text.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "unique_fd.h"

namespace kvmexit {
namespace {

FileText ReadToEnd(int fd, std::size_t max_bytes) {
  FileText result;
  char buffer[4096];
  for (;;) {
    const ssize_t count = ::read(fd, buffer, sizeof(buffer));
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return {{}, errno};
    if (count == 0) break;
    const std::size_t room = max_bytes - result.text.size();
    const auto got = static_cast<std::size_t>(count);
    // Reading on past max_bytes is how a file that is exactly max_bytes long
    // is told apart from a longer one.
    if (got > room) {
      result.text.append(buffer, room);
      result.truncated = true;
      break;
    }
    result.text.append(buffer, got);
  }
  return result;
}

}  // namespace

FileText ReadFileAt(int dir_fd, const char* name, std::size_t max_bytes) noexcept {
  try {
    const UniqueFd fd(::openat(dir_fd, name, O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return {{}, errno};
    return ReadToEnd(fd.get(), max_bytes);
  } catch (...) {
    // Only growing the string can throw, and only for want of memory.
    return {{}, ENOMEM};
  }
}

FileText ReadFileText(const std::string& path, std::size_t max_bytes) noexcept {
  FileText file = ReadFileAt(AT_FDCWD, path.c_str(), max_bytes);
  if (file.truncated) return {{}, EFBIG};
  return file;
}

}  // namespace kvmexit
