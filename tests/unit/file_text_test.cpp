// The one file reader: bounds, errors, and files that report size 0.
#include "file_text.h"

#include <fcntl.h>

#include <cerrno>
#include <string>

#include <gtest/gtest.h>

#include "temp_dir.h"
#include "unique_fd.h"

namespace kvmexit {
namespace {

using test_util::TempDir;
using test_util::WriteFile;

TEST(ReadFileTextTest, ReadsTheWholeFile) {
  TempDir dir;
  const std::string text(10'000, 'x');  // more than one read buffer
  WriteFile(dir.path() / "f", text);
  const FileText file = ReadFileText((dir.path() / "f").string());
  EXPECT_EQ(file.error, 0);
  EXPECT_EQ(file.text, text);
  EXPECT_FALSE(file.truncated);
}

TEST(ReadFileTextTest, ReadsProcfsFilesThatReportSizeZero) {
  const FileText file = ReadFileText("/proc/self/stat");
  EXPECT_EQ(file.error, 0);
  EXPECT_NE(file.text.find(") "), std::string::npos) << file.text;
}

TEST(ReadFileTextTest, KeepsTheErrnoOfAFailure) {
  TempDir dir;
  EXPECT_EQ(ReadFileText((dir.path() / "missing").string()).error, ENOENT);
  const FileText directory = ReadFileText(dir.path().string());
  EXPECT_EQ(directory.error, EISDIR);
  EXPECT_EQ(directory.text, "");
}

TEST(ReadFileTextTest, AFileOverTheBoundIsAnError) {
  TempDir dir;
  WriteFile(dir.path() / "f", "12345");
  EXPECT_EQ(ReadFileText((dir.path() / "f").string(), 5).text, "12345");
  const FileText file = ReadFileText((dir.path() / "f").string(), 4);
  EXPECT_EQ(file.error, EFBIG);
  EXPECT_EQ(file.text, "");
}

TEST(ReadFileAtTest, KeepsTheFirstMaxBytesOfALongerFile) {
  TempDir dir;
  WriteFile(dir.path() / "f", std::string(5000, 'a') + "b");
  const UniqueFd dir_fd(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(dir_fd.valid());

  const FileText cut = ReadFileAt(dir_fd.get(), "f", 5000);
  EXPECT_EQ(cut.error, 0);
  EXPECT_EQ(cut.text, std::string(5000, 'a'));
  EXPECT_TRUE(cut.truncated);

  const FileText exact = ReadFileAt(dir_fd.get(), "f", 5001);
  EXPECT_EQ(exact.text.size(), 5001u);
  EXPECT_FALSE(exact.truncated);

  EXPECT_EQ(ReadFileAt(dir_fd.get(), "missing", 10).error, ENOENT);
}

}  // namespace
}  // namespace kvmexit
