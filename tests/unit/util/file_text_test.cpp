// SPDX-License-Identifier: Apache-2.0
// The one file reader: bounds, errors, and files that report size 0.
#include "util/file_text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <gtest/gtest.h>

#include "temp_dir.h"
#include "util/unique_fd.h"

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

TEST(ReadFileTextRegularTest, ReadsARegularFile) {
  TempDir dir;
  WriteFile(dir.path() / "f", "web: {}\n");
  const FileText file = ReadFileText((dir.path() / "f").string(), 100, FileKind::kRegular);
  EXPECT_EQ(file.error, 0);
  EXPECT_EQ(file.text, "web: {}\n");
  EXPECT_EQ(file.not_regular, nullptr);
}

// A FIFO with no writer: opened without O_NONBLOCK, open() would wait for a
// writer forever (config_test checks that with a deadline, through LoadConfigFile).
TEST(ReadFileTextRegularTest, RefusesAFifoWithoutWaitingForAWriter) {
  TempDir dir;
  const std::string fifo = (dir.path() / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const FileText file = ReadFileText(fifo, 100, FileKind::kRegular);
  EXPECT_EQ(file.error, EINVAL);
  ASSERT_NE(file.not_regular, nullptr);
  EXPECT_STREQ(file.not_regular, "a FIFO");
}

TEST(ReadFileTextRegularTest, RefusesDevicesAndDirectories) {
  const FileText zero = ReadFileText("/dev/zero", 100, FileKind::kRegular);
  EXPECT_EQ(zero.error, EINVAL);
  ASSERT_NE(zero.not_regular, nullptr);
  EXPECT_STREQ(zero.not_regular, "a character device");
  EXPECT_EQ(zero.text, "");

  TempDir dir;
  const FileText directory = ReadFileText(dir.path().string(), 100, FileKind::kRegular);
  EXPECT_EQ(directory.error, EISDIR);
  ASSERT_NE(directory.not_regular, nullptr);
  EXPECT_STREQ(directory.not_regular, "a directory");
}

TEST(ReadFileTextRegularTest, RefusesAFileLargerThanTheBoundBySize) {
  TempDir dir;
  // Sparse: 1 TiB that takes no disk, and could not be read in a test's time.
  const std::string huge = (dir.path() / "huge").string();
  WriteFile(huge, "");
  ASSERT_EQ(::truncate(huge.c_str(), off_t{1} << 40), 0);
  const FileText file = ReadFileText(huge, 1024, FileKind::kRegular);
  EXPECT_EQ(file.error, EFBIG);
  EXPECT_EQ(file.text, "");

  WriteFile(dir.path() / "exact", std::string(1024, 'x'));
  EXPECT_EQ(ReadFileText((dir.path() / "exact").string(), 1024, FileKind::kRegular).text.size(),
            1024u);
}

TEST(ReadFileTextRegularTest, MissingFileKeepsItsErrno) {
  TempDir dir;
  const FileText file = ReadFileText((dir.path() / "missing").string(), 100, FileKind::kRegular);
  EXPECT_EQ(file.error, ENOENT);
  EXPECT_EQ(file.not_regular, nullptr);
}

}  // namespace
}  // namespace kvmexit
