// SPDX-License-Identifier: Apache-2.0
#include "util/file_text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "util/unique_fd.h"

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

// What a non-regular file is, for messages.
const char* FileTypeName(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// O_NONBLOCK so that opening a FIFO returns at once instead of waiting for a
// writer; fstat on the open descriptor, so the file checked is the file read.
FileText ReadRegularFile(const std::string& path, std::size_t max_bytes) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd.valid()) return {{}, errno};
  struct stat status {};
  if (::fstat(fd.get(), &status) != 0) return {{}, errno};
  if (!S_ISREG(status.st_mode)) {
    return {{}, S_ISDIR(status.st_mode) ? EISDIR : EINVAL, false, FileTypeName(status.st_mode)};
  }
  // Refused before a byte is read: a 100 MB file costs no memory at all.
  if (static_cast<std::uintmax_t>(status.st_size) > max_bytes) return {{}, EFBIG};
  return ReadToEnd(fd.get(), max_bytes);
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

FileText ReadFileText(const std::string& path, std::size_t max_bytes, FileKind kind) noexcept {
  FileText file;
  try {
    file = kind == FileKind::kRegular ? ReadRegularFile(path, max_bytes)
                                      : ReadFileAt(AT_FDCWD, path.c_str(), max_bytes);
  } catch (...) {
    return {{}, ENOMEM};  // as in ReadFileAt: only growing the string can throw
  }
  if (file.truncated) return {{}, EFBIG};
  return file;
}

std::string ReadUserFile(const std::string& path, std::string_view what, std::size_t max_bytes,
                         std::string* text) {
  FileText file = ReadFileText(path, max_bytes, FileKind::kRegular);
  const std::string where = path + ": ";
  if (file.not_regular != nullptr) {
    return where + std::string(what) + " must be a regular file, but this is " + file.not_regular;
  }
  if (file.error == EFBIG) {
    return where + std::string(what) + " is larger than the limit of " + std::to_string(max_bytes) +
           " bytes (" + std::to_string(max_bytes / 1024) + " KiB); is this the right file?";
  }
  if (file.error != 0) {
    return where + "cannot read " + std::string(what) + ": " + std::strerror(file.error);
  }
  *text = std::move(file.text);
  return "";
}

}  // namespace kvmexit
