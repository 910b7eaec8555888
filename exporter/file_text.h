// Reading a whole text file, with the errno of a failure kept for messages.
#pragma once

#include <string>

namespace kvmexit {

struct FileText {
  std::string text;
  int error = 0;  // errno of the failed open or read, 0 on success
};

// Reads to EOF instead of trusting the file size: tracefs and procfs files report size 0.
FileText ReadFileText(const std::string& path);

}  // namespace kvmexit
