// SPDX-License-Identifier: Apache-2.0
// Label values: valid, bounded UTF-8 whatever the input.
#include "identity/label_value.h"

#include <string>

#include <gtest/gtest.h>

namespace kvmexit {
namespace {

TEST(SanitizeLabelValueTest, KeepsValidUtf8) {
  EXPECT_EQ(SanitizeLabelValue("web-01 \xc3\xa9t\xc3\xa9 \xf0\x9f\x96\xa5"),
            "web-01 \xc3\xa9t\xc3\xa9 \xf0\x9f\x96\xa5");
}

TEST(SanitizeLabelValueTest, ReplacesInvalidBytesAndControlCharacters) {
  EXPECT_EQ(SanitizeLabelValue("a\xff"
                               "b\nc\x7f"
                               "d"),
            "a_b_c_d");
  EXPECT_EQ(SanitizeLabelValue("\xc0\xaf"), "__");       // overlong '/'
  EXPECT_EQ(SanitizeLabelValue("\xed\xa0\x80"), "___");  // surrogate
  EXPECT_EQ(SanitizeLabelValue("x\xe2\x82"), "x__");     // truncated sequence
}

TEST(SanitizeLabelValueTest, CapsLengthWithoutSplittingACharacter) {
  EXPECT_EQ(SanitizeLabelValue(std::string(300, 'a')).size(), kMaxVmLabelBytes);
  EXPECT_EQ(SanitizeLabelValue("ab\xc3\xa9", 3), "ab");
}

TEST(TrimmedLabelValueTest, TrimsThenSanitizes) {
  EXPECT_EQ(TrimmedLabelValue("  web\t01 \n"), "web_01");
  EXPECT_EQ(TrimmedLabelValue(" \t\n"), "");
}

// Found by tests/fuzz/fuzz_vm_identity: the cap used to cut "aaa... b" right
// after the space, and the VM name ended in it.
TEST(TrimmedLabelValueTest, NoSpaceLeftAtTheCut) {
  const std::string text = std::string(kMaxVmLabelBytes - 1, 'a') + " b";
  EXPECT_EQ(TrimmedLabelValue(text), std::string(kMaxVmLabelBytes - 1, 'a'));
}

}  // namespace
}  // namespace kvmexit
