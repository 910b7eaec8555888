#include "file_text.h"

#include <cerrno>
#include <cstdio>
#include <memory>

namespace kvmexit {

FileText ReadFileText(const std::string& path) {
  struct Closer {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  const std::unique_ptr<std::FILE, Closer> file(std::fopen(path.c_str(), "r"));
  if (!file) return {{}, errno};
  FileText result;
  char buffer[4096];
  while (const std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get())) {
    result.text.append(buffer, n);
  }
  if (std::ferror(file.get())) result.error = errno != 0 ? errno : EIO;
  return result;
}

}  // namespace kvmexit
