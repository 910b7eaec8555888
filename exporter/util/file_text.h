// SPDX-License-Identifier: Apache-2.0
// Reading a whole file into memory: the one file reader of the exporter, used
// for /proc files, the configuration, tracefs formats and Proxmox VM configs.
// Reads to EOF instead of trusting the file size (procfs and tracefs report
// size 0), stops at a byte bound, and keeps the errno of a failure for messages.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kvmexit {

struct FileText {
  std::string text;        // empty when error != 0
  int error = 0;           // errno of the failed open or read, 0 on success
  bool truncated = false;  // the file holds more than the max_bytes in `text`
  // With FileKind::kRegular, what the path named instead of a regular file
  // ("a FIFO", "a directory", "a character device"...); error is then EINVAL,
  // or EISDIR for a directory. nullptr otherwise.
  const char* not_regular = nullptr;
};

// Which files ReadFileText reads. kRegular is for files a user names (the
// configuration): a FIFO would block the read forever and /dev/zero never
// ends, so anything but a regular file is refused before the first read.
enum class FileKind { kAny, kRegular };

// Bound of ReadFileText: far above any configuration or tracepoint format
// (kilobytes), low enough that a wrong path (say a disk image) cannot
// exhaust memory.
inline constexpr std::size_t kMaxFileTextBytes = std::size_t{16} * 1024 * 1024;

// Reads `name`, relative to the directory `dir_fd` (or AT_FDCWD), into `text`:
// at most `max_bytes` of it; a longer file sets `truncated` and keeps its
// first max_bytes bytes. Reading through a directory handle is how
// /proc/PID/* files are read without the pid being reused in between.
FileText ReadFileAt(int dir_fd, const char* name, std::size_t max_bytes) noexcept;

// Reads the whole file at `path`. A file longer than `max_bytes` is an error
// (EFBIG, empty text): a configuration or format cut short would parse as a
// different one. With FileKind::kRegular the file is opened without blocking
// and its type checked first; a regular file whose size already exceeds
// max_bytes is refused without reading it.
FileText ReadFileText(const std::string& path, std::size_t max_bytes = kMaxFileTextBytes,
                      FileKind kind = FileKind::kAny) noexcept;

// Reads a file a user named (the configuration, the web configuration, a
// certificate): a regular file of at most `max_bytes`. Returns "" with the
// text in *text, or "<path>: <why>" naming `what` ("the config file"), e.g.
// "/dev/zero: the config file must be a regular file, but this is a character
// device".
std::string ReadUserFile(const std::string& path, std::string_view what, std::size_t max_bytes,
                         std::string* text);

}  // namespace kvmexit
